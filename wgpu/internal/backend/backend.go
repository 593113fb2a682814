// Package backend is the interface between package wgpu and the WebGPU
// implementations it runs over: go-webgpu (wgpu-native 0.17, linked into
// the binary) and Dawn (loaded at run time). Package wgpu keeps what does
// not depend on the implementation (typed uploads and downloads, argument
// checks, the pipeline caches, the choice of runtime); a runtime
// implements adapters, devices, buffers, pipelines and dispatches.
//
// Buffers and pipelines are opaque handles. Every handle's Release is
// idempotent and safe from several goroutines, and after its device was
// closed; every other call on a closed or lost device returns an error
// wrapping ErrClosed or ErrDeviceLost.
package backend

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors shared by every runtime; package wgpu exports them.
var (
	// ErrDeviceLost is wrapped by every error returned after the device
	// was lost (driver reset, GPU removed, out of memory).
	ErrDeviceLost = errors.New("wgpu: device lost")
	// ErrClosed is wrapped by every error returned for work on a device
	// after Close.
	ErrClosed = errors.New("wgpu: device closed")
	// ErrNoAdapter: the runtime found no usable adapter.
	ErrNoAdapter = errors.New("wgpu: no WebGPU adapter found (on Debian: apt-get install mesa-vulkan-drivers libvulkan1)")
	// ErrReleased: a buffer or pipeline was used after its Release.
	ErrReleased = errors.New("wgpu: used after release")
)

// Options are what a runtime needs of package wgpu's options.
type Options struct {
	IncludeGL bool // also list OpenGL adapters (go-webgpu)
	Verbose   bool // let the runtime's and the driver's log through to stderr
	// DisableRobustness turns off the runtime's own bounds checks on
	// buffer accesses where it has a switch for them (Dawn).
	DisableRobustness bool
}

// Limits are the adapter limits that matter for compute kernels.
type Limits struct {
	MaxStorageBufferBindingSize uint64
	MaxBufferSize               uint64
	MaxWorkgroupStorageSize     uint32
	MaxInvocationsPerWorkgroup  uint32
	MaxWorkgroupSizeX           uint32
	MaxWorkgroupsPerDimension   uint32
	MaxStorageBuffersPerStage   uint32
}

// MatrixConfig is one subgroup-matrix configuration: an M×K left matrix of
// Component elements times a K×N right one, accumulated into an M×N
// matrix of Result elements. Component and Result are WGSL scalar type
// names ("f16", "f32", "i8", "u8", "i32", "u32").
type MatrixConfig struct {
	M, N, K           int
	Component, Result string
}

func (c MatrixConfig) String() string {
	return fmt.Sprintf("%dx%dx%d %s->%s", c.M, c.N, c.K, c.Component, c.Result)
}

// Info describes an adapter as one runtime sees it.
type Info struct {
	Runtime            string // "go-webgpu" or "dawn"
	Name, Vendor       string
	VendorID, DeviceID uint32
	Backend            string // Vulkan, Metal, D3D12, OpenGL
	Type               string // DiscreteGPU, IntegratedGPU, CPU, ...
	Driver             string
	Limits             Limits
	Timestamps         bool
	// TimestampPeriod is the nanoseconds one tick lasts, as the Vulkan
	// driver reports it, or 0 where unknown. Dawn applies it itself; its
	// Timing is in nanoseconds whatever this says.
	TimestampPeriod float64
	F16             bool // WGSL `enable f16;`
	Subgroups       bool // WGSL `enable subgroups;`
	// SubgroupMinSize and SubgroupMaxSize bound @builtin(subgroup_size)
	// (0 where unknown).
	SubgroupMinSize, SubgroupMaxSize uint32
	// MatrixConfigs are the subgroup-matrix configurations (WGSL `enable
	// chromium_experimental_subgroup_matrix;`), nil without them.
	MatrixConfigs []MatrixConfig
}

// Capabilities formats the WGSL features on one line, as `coreattn
// devices` shows them: "f16 subgroups[32..32] subgroup-matrix[16x16x16
// f16->f32, ...]", or "-".
func (i Info) Capabilities() string {
	var parts []string
	if i.F16 {
		parts = append(parts, "f16")
	}
	if i.Subgroups {
		parts = append(parts, fmt.Sprintf("subgroups[%d..%d]", i.SubgroupMinSize, i.SubgroupMaxSize))
	}
	if len(i.MatrixConfigs) > 0 {
		cs := make([]string, len(i.MatrixConfigs))
		for j, c := range i.MatrixConfigs {
			cs[j] = c.String()
		}
		parts = append(parts, "subgroup-matrix["+strings.Join(cs, ", ")+"]")
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

// Runtime is one WebGPU implementation.
type Runtime interface {
	// Name is "go-webgpu" or "dawn".
	Name() string
	// Adapters lists the runtime's adapters, best first; it returns an
	// error wrapping ErrNoAdapter when there are none.
	Adapters(opts Options) ([]Info, error)
	// Open opens adapter index of Adapters' list with the adapter's own
	// limits and every feature coreattn uses that it has.
	Open(index int, opts Options) (Device, error)
}

// Kind is what a buffer is for.
type Kind int

const (
	// Storage buffers are bound as storage and copied from and to.
	Storage Kind = iota
	// Uniform buffers hold kernel parameters.
	Uniform
	// Staging buffers are mapped for reading (see Device.Read).
	Staging
)

// Buffer is a buffer handle.
type Buffer interface{ Release() }

// Pipeline is a compiled compute pipeline handle.
type Pipeline interface{ Release() }

// Binding binds a buffer at @group(0) @binding(Slot).
type Binding struct {
	Slot   uint32
	Buffer Buffer
}

// Dispatch is one compute pass: a pipeline, its bindings (all of the
// buffer) and the workgroup grid. Package wgpu has checked the grid
// against the limits and the bindings for nil and for their device.
type Dispatch struct {
	Label      string
	Pipeline   Pipeline
	Bindings   []Binding
	Workgroups [3]uint32
}

// Timing is what Run measured.
type Timing struct {
	Wall   time.Duration   // submission to the queue going idle
	Passes []time.Duration // per dispatch, nil without timestamp queries
	// PeriodKnown: Passes are in nanoseconds (the period was known or
	// applied by the runtime), not ticks taken as nanoseconds.
	PeriodKnown bool
}

// Device is an open device with its queue. It is safe for concurrent use.
type Device interface {
	// Info describes the adapter, with the limits the device enforces.
	Info() Info
	// Err reports why the device cannot take work (ErrClosed,
	// ErrDeviceLost wrapped), or nil.
	Err() error
	// NewBuffer creates a buffer of size bytes (a positive multiple of 16)
	// holding init (len(init) <= size; the rest is zero), or zeros.
	NewBuffer(label string, size uint64, kind Kind, init []byte) (Buffer, error)
	// Write copies data into a storage or uniform buffer at byte offset
	// off through the queue, ordered before work submitted afterwards.
	Write(b Buffer, off uint64, data []byte) error
	// Read copies len(dst) bytes (a multiple of 4) of src from byte
	// offset off (a multiple of 4) into dst after all work submitted
	// before it, through staging (a Staging buffer of at least len(dst)
	// bytes rounded up to 16) or, where staging is nil, a buffer of its
	// own.
	Read(ctx context.Context, src Buffer, off uint64, dst []byte, staging Buffer) error
	// Copy copies n bytes of src at srcOff into dst at dstOff (multiples
	// of 4; dst and src distinct) on the queue.
	Copy(dst Buffer, dstOff uint64, src Buffer, srcOff, n uint64) error
	// Pipeline compiles WGSL source and creates the pipeline of entry.
	Pipeline(label, source, entry string) (Pipeline, error)
	// CheckModule compiles and validates source without a pipeline.
	CheckModule(label, source string) error
	// Submit encodes each dispatch in its own compute pass of one command
	// buffer and submits it without waiting.
	Submit(ds []Dispatch) error
	// Run submits like Submit, waits, and times the dispatches.
	Run(ctx context.Context, ds []Dispatch) (Timing, error)
	// SubmitCopy submits ds, then a copy of the first n bytes of src
	// into dst, and returns without waiting (a Staging dst on go-webgpu,
	// a Storage one on Dawn: see package wgpu's Readback).
	SubmitCopy(ds []Dispatch, src, dst Buffer, n uint64) error
	// Wait blocks until all submitted work has finished.
	Wait(ctx context.Context) error
	// WaitTime is the total time calls have spent waiting for the device:
	// polling or waiting for its work, mapping buffers, and submitting.
	WaitTime() time.Duration
	// BuffersCreated counts the device buffers created so far, of every
	// kind the runtime makes itself (storage, uniform, staging, timestamps).
	BuffersCreated() int64
	// Close releases the device; handles created from it stay safe to
	// Release. Idempotent.
	Close()
}
