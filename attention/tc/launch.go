package tc

import (
	"encoding/binary"
	"fmt"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/shaders"
)

// Launch is a planned call: passes over named buffers, run in order.
type Launch struct {
	// Tiling names the kernels' tile shapes, for reports.
	Tiling string
	// Tensors are the call's buffers, with the bytes each must hold at
	// least; Written marks the outputs.
	Tensors []Tensor
	// Buffers are the buffers the launch owns.
	Buffers []Buffer
	// Dispatches are the passes, in order.
	Dispatches []Dispatch
}

// Tensor is one of the call's buffers.
type Tensor struct {
	Name    string
	Bytes   uint64
	Written bool
}

// Buffer is a buffer the launch owns: a uniform buffer of parameters, or
// a storage buffer holding Init (words, little-endian) or, with Init nil,
// scratch whose first use writes it (WebGPU zeroes new buffers; no kernel
// relies on it).
type Buffer struct {
	Name    string
	Bytes   uint64 // a positive multiple of 16
	Uniform bool
	Init    []uint32
}

// InitBytes is Init as the bytes to write, or nil.
func (b Buffer) InitBytes() []byte {
	if b.Init == nil {
		return nil
	}
	out := make([]byte, 4*len(b.Init))
	for i, w := range b.Init {
		binary.LittleEndian.PutUint32(out[4*i:], w)
	}
	return out
}

// Module is a WGSL module; launches share modules, and runners compile
// each Source once.
type Module struct {
	Label  string
	Source string
}

// Dispatch is one compute pass: entry point Entry of Module over
// Workgroups, with Bindings at @group(0).
type Dispatch struct {
	Label      string
	Module     *Module
	Entry      string
	Bindings   []Binding
	Workgroups [3]uint32
}

// Binding binds buffer Name (a tensor or one of the launch's buffers) at
// @binding(Slot).
type Binding struct {
	Slot uint32
	Name string
}

// bind lists names at slots 0, 1, 2, ...
func bind(names ...string) []Binding {
	out := make([]Binding, len(names))
	for i, n := range names {
		out[i] = Binding{Slot: uint32(i), Name: n}
	}
	return out
}

// Device is what a Planner needs to know of an adapter.
type Device struct {
	// Target is the adapter's subgroup-matrix shapes, subgroup size and
	// workgroup limits.
	Target shaders.TCTarget
	// MaxBufferBytes is the largest buffer the adapter binds.
	MaxBufferBytes uint64
	// MaxWorkgroupsPerDimension bounds each dimension of a dispatch.
	MaxWorkgroupsPerDimension int
	// MaxStorageBuffers is the adapter's limit of storage buffers per
	// shader stage (0: not checked); the kernels bind up to
	// maxStorageBindings.
	MaxStorageBuffers int
	// CPU marks a CPU adapter (lavapipe): no automatic split-KV.
	CPU bool
}

// maxStorageBindings is the most storage buffers a kernel binds (dkv_main).
const maxStorageBindings = 9

// checkBindings reports an adapter that cannot bind the kernels' buffers.
func (d Device) checkBindings() error {
	if d.MaxStorageBuffers > 0 && d.MaxStorageBuffers < maxStorageBindings {
		return fmt.Errorf("attention: tensor cores: %w: the kernels bind %d storage buffers; the adapter allows %d", shaders.ErrNoTensorCores, maxStorageBindings, d.MaxStorageBuffers)
	}
	return nil
}

// Options tune a Planner. The zero value chooses everything from the
// device.
type Options struct {
	// Forward, if its NS is non-zero, fixes the forward's tiling (D and
	// Out come from the call); for tests and benchmarks.
	Forward shaders.TCFwdTiling
	// Backward, if its NP is non-zero, fixes the backward's tiling in the
	// same way (D and DT from the call).
	Backward shaders.TCBwdTiling
	// SplitKV is the forward's split-KV piece length in keys (rounded up
	// to the key tile): 0 splits where the work calls for it, on GPUs
	// only; a negative value never splits.
	SplitKV int
	// DSScratch caps the backward's dS scratch in bytes (0: 2 GiB, never
	// above MaxBufferBytes); the backward runs in passes over the KV
	// heads whose tiles fit.
	DSScratch int64
}

// Planner plans launches for one device.
type Planner struct {
	dev  Device
	opts Options
}

// New returns a Planner for dev.
func New(dev Device, opts Options) *Planner { return &Planner{dev: dev, opts: opts} }

// checkCall validates a, the storage type and the adapter's bindings.
func (p *Planner) checkCall(a *attention.Args) error {
	if err := a.Validate(); err != nil {
		return err
	}
	if err := p.dev.checkBindings(); err != nil {
		return err
	}
	if a.DType != attention.Float32 && a.DType != attention.Float16 {
		return fmt.Errorf("attention: tensor cores: %w: dtype %v (f16 operands cannot hold bfloat16's range)", shaders.ErrNoTensorCores, a.DType)
	}
	return nil
}

// elems is the number of elements of a Q-shaped and a KV-shaped tensor.
func elems(a *attention.Args) (q, kv int) {
	return a.TotalQ() * a.NumHeadsQ * a.HeadDim, a.TotalK() * a.NumHeadsKV * a.HeadDim
}

// bytesOf is the size of n elements of dtype dt, rounded up to 16 and at
// least 16 (buffers are bound whole, and WebGPU rejects empty bindings).
func bytesOf(n int, dt attention.DType) uint64 {
	return uint64(max(16, roundUp16(n*dt.Size())))
}

func roundUp16(n int) int { return (n + 15) / 16 * 16 }

// f16Operand returns the name of the f16 operand the kernels read for
// tensor name of n elements: name itself for f16 calls; for f32 calls an
// f16 copy the launch owns, with the pass that converts it.
func (l *Launch) f16Operand(a *attention.Args, name string, n int, maxWG int) string {
	if a.DType == attention.Float16 {
		return name
	}
	copyName := name + " as f16"
	vec4s := n / 4
	grid := rowGrid(vec4s, shaders.TCCastWorkgroup, maxWG)
	params := "cast " + name + " params"
	l.Buffers = append(l.Buffers,
		Buffer{Name: copyName, Bytes: bytesOf(n, attention.Float16)},
		Buffer{Name: params, Bytes: 16, Uniform: true, Init: shaders.TCCastParams{N: uint32(vec4s), GridX: grid[0]}.Words()},
	)
	if vec4s > 0 {
		l.Dispatches = append(l.Dispatches, Dispatch{
			Label:      "tc cast " + name,
			Module:     castModule,
			Entry:      shaders.TCCastEntry,
			Bindings:   bind(params, name, copyName),
			Workgroups: grid,
		})
	}
	return copyName
}

var castModule = &Module{Label: "tc cast", Source: shaders.TCCastSource}

// rowGrid is the grid of a pass with one invocation per item, n items, in
// workgroups of wg: as many along x as allowed, the rest along y.
func rowGrid(n, wg, maxWG int) [3]uint32 {
	wgs := max(1, (n+wg-1)/wg)
	x := max(1, min(wgs, maxWG))
	return [3]uint32{uint32(x), uint32((wgs + x - 1) / x), 1}
}

// tileGrid is the grid of a pass over heads × tiles: heads along x, the
// tiles along y and z (tile = y + z * gridY); it returns the grid and gridY.
func tileGrid(heads, tiles, maxWG int) ([3]uint32, int) {
	gy := max(1, min(tiles, maxWG))
	return [3]uint32{uint32(heads), uint32(gy), uint32(max(1, (tiles+gy-1)/gy))}, gy
}

func boolU32(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// infBits is +Inf as f32 bits, passed to kernels in their parameters.
const infBits = 0x7f800000
