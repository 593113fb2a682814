package wgpu

import (
	"fmt"

	"github.com/coreattn/coreattn/wgpu/internal/backend"
)

// Options selects the runtime and the adapters that are visible, and how
// chatty the layers below are.
type Options struct {
	// Runtime is the WebGPU implementation to use (see [Runtime]); empty
	// means $COREATTN_RUNTIME, or RuntimeAuto where that is unset.
	Runtime Runtime
	// IncludeGL also lists OpenGL adapters (go-webgpu). They duplicate the
	// Vulkan ones on Linux and lack compute features, so they are hidden by
	// default.
	IncludeGL bool
	// Verbose lets the runtime's own log (warnings and errors) and the
	// driver's through to stderr.
	Verbose bool
	// DisableRobustness turns off Dawn's bounds checks on buffer accesses
	// and its zeroing of workgroup memory (toggles disable_robustness and
	// disable_workgroup_init): faster kernels, and an out-of-bounds access
	// becomes undefined. For measured, trusted kernels (benchmarks); it
	// changes nothing on go-webgpu, whose wgpu relies on Vulkan's robust
	// buffer access.
	DisableRobustness bool
}

func (o Options) backend() backend.Options {
	return backend.Options{IncludeGL: o.IncludeGL, Verbose: o.Verbose, DisableRobustness: o.DisableRobustness}
}

// Limits are the adapter limits that matter for compute kernels.
type Limits struct {
	MaxStorageBufferBindingSize uint64 // bytes one storage binding may cover
	MaxBufferSize               uint64 // bytes of one buffer
	MaxWorkgroupStorageSize     uint32 // bytes of var<workgroup> memory
	MaxInvocationsPerWorkgroup  uint32
	MaxWorkgroupSizeX           uint32
	MaxWorkgroupsPerDimension   uint32
	MaxStorageBuffersPerStage   uint32
}

// MatrixConfig is one subgroup-matrix configuration an adapter runs (WGSL
// chromium_experimental_subgroup_matrix; Vulkan cooperative matrices): an
// M×K left matrix of Component elements times a K×N right one,
// accumulated into an M×N matrix of Result elements. Component and Result
// are WGSL scalar types: "f16", "f32", "i8", "u8", "i32", "u32".
type MatrixConfig struct {
	M, N, K           int
	Component, Result string
}

func (c MatrixConfig) String() string {
	return fmt.Sprintf("%dx%dx%d %s->%s", c.M, c.N, c.K, c.Component, c.Result)
}

// AdapterInfo describes one adapter as one runtime sees it. Kernels choose
// their variants from its feature fields (F16, Subgroups, the subgroup
// sizes, MatrixConfigs), never from Runtime.
type AdapterInfo struct {
	Index   int     // position in the list returned by Adapters; pass it to Open
	Runtime Runtime // the WebGPU implementation: RuntimeGoWebGPU or RuntimeDawn
	Name    string  // e.g. "NVIDIA H200", "llvmpipe (LLVM 15.0.6, 256 bits)"
	Vendor  string
	Backend string // Vulkan, Metal, D3D12, OpenGL
	Type    string // DiscreteGPU, IntegratedGPU, CPU, ...
	Driver  string
	// VendorID and DeviceID are the PCI IDs (0x10de, ...), or Mesa's for
	// lavapipe.
	VendorID, DeviceID uint32
	Limits             Limits
	Timestamps         bool // timestamp queries are available
	// TimestampPeriod is the nanoseconds one tick of the adapter's
	// timestamps lasts, as its Vulkan driver reports it, or 0 where it
	// cannot be read. On go-webgpu, timings then assume 1 (see
	// Timing.PeriodKnown); Dawn applies the period itself.
	TimestampPeriod float64
	// F16 reports WGSL `enable f16;` (shader-f16).
	F16 bool
	// Subgroups reports WGSL `enable subgroups;`; SubgroupMinSize and
	// SubgroupMaxSize bound @builtin(subgroup_size) (0 without subgroups).
	Subgroups                        bool
	SubgroupMinSize, SubgroupMaxSize uint32
	// MatrixConfigs are the subgroup-matrix configurations (tensor cores on
	// NVIDIA GPUs), nil where the adapter or runtime has none.
	MatrixConfigs []MatrixConfig
	// Chosen is set by [AllAdapters] on the rows that RuntimeAuto uses.
	Chosen bool

	local int // the adapter's index in its runtime's own list
}

// String formats the adapter on one line.
func (a AdapterInfo) String() string {
	return fmt.Sprintf("[%d] %s (%s, %s)", a.Index, a.Name, a.Backend, a.Type)
}

// IsCPU reports whether the adapter is a software rasteriser such as lavapipe.
func (a AdapterInfo) IsCPU() bool { return a.Type == "CPU" }

// HasMatrices reports whether the adapter offers a subgroup-matrix
// configuration with component and result types as named, e.g. ("f16",
// "f32").
func (a AdapterInfo) HasMatrices(component, result string) bool {
	for _, c := range a.MatrixConfigs {
		if c.Component == component && c.Result == result {
			return true
		}
	}
	return false
}

// Capabilities formats the WGSL features on one line: "f16
// subgroups[32..32] subgroup-matrix[16x16x16 f16->f32, ...]", or "-".
func (a AdapterInfo) Capabilities() string {
	return a.backendInfo().Capabilities()
}

func (a AdapterInfo) backendInfo() backend.Info {
	b := backend.Info{F16: a.F16, Subgroups: a.Subgroups, SubgroupMinSize: a.SubgroupMinSize, SubgroupMaxSize: a.SubgroupMaxSize}
	for _, c := range a.MatrixConfigs {
		b.MatrixConfigs = append(b.MatrixConfigs, backend.MatrixConfig(c))
	}
	return b
}

// infoOf converts a runtime's description of adapter index (local in its
// own list).
func infoOf(b backend.Info, index, local int) AdapterInfo {
	a := AdapterInfo{
		Index:           index,
		Runtime:         Runtime(b.Runtime),
		Name:            b.Name,
		Vendor:          b.Vendor,
		Backend:         b.Backend,
		Type:            b.Type,
		Driver:          b.Driver,
		VendorID:        b.VendorID,
		DeviceID:        b.DeviceID,
		Limits:          Limits(b.Limits),
		Timestamps:      b.Timestamps,
		TimestampPeriod: b.TimestampPeriod,
		F16:             b.F16,
		Subgroups:       b.Subgroups,
		SubgroupMinSize: b.SubgroupMinSize,
		SubgroupMaxSize: b.SubgroupMaxSize,
		local:           local,
	}
	for _, c := range b.MatrixConfigs {
		a.MatrixConfigs = append(a.MatrixConfigs, MatrixConfig(c))
	}
	return a
}

// ErrNoAdapter is returned when no usable adapter exists.
var ErrNoAdapter = backend.ErrNoAdapter
