package gpu

import (
	"errors"
	"fmt"
	"strings"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/attention/tc"
	"github.com/coreattn/coreattn/shaders"
	"github.com/coreattn/coreattn/wgpu"
)

// Tensor cores. Where the device offers f16→f32 subgroup matrices (Dawn
// on an NVIDIA GPU, or on Mesa 26's lavapipe), the Op can run the
// tensor-core kernels of package attention/tc: the same conventions and
// tensors, f16 operands with f32 accumulation, so results carry f16's
// rounding (relative error of O about 1e-3 rather than 1e-6). Which
// family runs is Options.Kernels'; Call.Kernels reports it.

// Kernels chooses the kernel family an Op runs.
type Kernels int

const (
	// KernelsAuto runs the tensor-core kernels for float16 storage where
	// the device offers them and the call suits them, and the FFMA kernels
	// otherwise: float32 and bfloat16 callers keep float32 products (and
	// their 1e-6 accuracy) unless they ask for tensor cores, and so do
	// calls whose options fix an FFMA tiling or a DQ mode other than
	// DQAuto.
	KernelsAuto Kernels = iota
	// KernelsFFMA always runs the FFMA kernels (float32 products).
	KernelsFFMA
	// KernelsTensorCore always runs the tensor-core kernels: float16
	// operands (float32 tensors are converted on the device), float32
	// accumulation. A device or call they do not handle is an error
	// wrapping ErrNoTensorCores.
	KernelsTensorCore
)

// ErrNoTensorCores reports a device without f16→f32 subgroup matrices, or a
// call the tensor-core kernels do not handle (bfloat16, a head dimension
// that is not a multiple of 8 or above MaxTensorCoreHeadDim).
var ErrNoTensorCores = shaders.ErrNoTensorCores

// MaxTensorCoreHeadDim is the largest head dimension the tensor-core path
// takes (the one its tests and measurements cover).
const MaxTensorCoreHeadDim = 128

// String names the family as --kernels does: "auto", "ffma" or "tensor-core".
func (k Kernels) String() string {
	switch k {
	case KernelsAuto:
		return "auto"
	case KernelsFFMA:
		return "ffma"
	case KernelsTensorCore:
		return "tensor-core"
	}
	return fmt.Sprintf("Kernels(%d)", int(k))
}

// ParseKernels is the family that String names s.
func ParseKernels(s string) (Kernels, error) {
	all := []Kernels{KernelsAuto, KernelsFFMA, KernelsTensorCore}
	names := make([]string, len(all))
	for i, k := range all {
		if s == k.String() {
			return k, nil
		}
		names[i] = k.String()
	}
	return KernelsAuto, fmt.Errorf("attention: kernels %q: want one of %s", s, strings.Join(names, ", "))
}

// TensorCoreDevice describes a device for package attention/tc: its
// f16→f32 subgroup-matrix shapes, subgroup size and limits. It returns an
// error wrapping ErrNoTensorCores where the device has none the kernels use.
func TensorCoreDevice(info wgpu.AdapterInfo) (tc.Device, error) {
	var shapes []shaders.MatrixShape
	for _, c := range info.MatrixConfigs {
		if c.Component == "f16" && c.Result == "f32" {
			shapes = append(shapes, shaders.MatrixShape{M: c.M, N: c.N, K: c.K})
		}
	}
	switch {
	case !info.F16 || !info.Subgroups || len(shapes) == 0:
		return tc.Device{}, fmt.Errorf("attention: %w: %s on %s offers no f16->f32 subgroup matrices (it has: %s; Dawn offers them on NVIDIA GPUs and on Mesa 26's lavapipe: docs/tensorcores.md)", ErrNoTensorCores, info.Name, info.Runtime, info.Capabilities())
	case info.SubgroupMinSize != info.SubgroupMaxSize:
		return tc.Device{}, fmt.Errorf("attention: %w: %s has subgroups of %d to %d invocations; the kernels need one size", ErrNoTensorCores, info.Name, info.SubgroupMinSize, info.SubgroupMaxSize)
	}
	lim := info.Limits
	dev := tc.Device{
		Target: shaders.TCTarget{
			Shapes:         shapes,
			SubgroupSize:   int(info.SubgroupMaxSize),
			WorkgroupBytes: int(lim.MaxWorkgroupStorageSize),
			MaxThreads:     int(lim.MaxInvocationsPerWorkgroup),
			CPU:            info.IsCPU(),
		},
		MaxBufferBytes:            min(lim.MaxBufferSize, lim.MaxStorageBufferBindingSize),
		MaxWorkgroupsPerDimension: int(lim.MaxWorkgroupsPerDimension),
		MaxStorageBuffers:         int(lim.MaxStorageBuffersPerStage),
		CPU:                       info.IsCPU(),
	}
	if !dev.CPU {
		dev.Target.MaxRegisters = shaders.TCRegisterBudget
	}
	return dev, nil
}

// tensorCores returns the planner for a call that runs on tensor cores,
// or nil where the FFMA kernels run it (the error then is non-nil only
// where Options.Kernels asked for tensor cores and they cannot run it).
// ffmaFixed reports options that fix the FFMA kernels of the pass.
func (op *Op) tensorCores(a *attention.Args, ffmaFixed bool) (*tc.Planner, error) {
	switch op.opts.Kernels {
	case KernelsFFMA:
		return nil, nil
	case KernelsAuto:
		if a.DType != attention.Float16 || ffmaFixed {
			return nil, nil
		}
	case KernelsTensorCore:
	default:
		return nil, fmt.Errorf("attention: Options.Kernels %d does not exist", int(op.opts.Kernels))
	}
	dev, err := TensorCoreDevice(op.dev.Info())
	if err == nil && (a.HeadDim > MaxTensorCoreHeadDim || a.HeadDim%8 != 0) {
		err = fmt.Errorf("attention: %w: head dim %d: the tensor-core path takes multiples of 8 up to %d", ErrNoTensorCores, a.HeadDim, MaxTensorCoreHeadDim)
	}
	if err != nil {
		if op.opts.Kernels == KernelsTensorCore {
			return nil, err
		}
		return nil, nil
	}
	return tc.New(dev, tc.Options{
		Forward:   op.opts.TensorCoreForward,
		Backward:  op.opts.TensorCoreBackward,
		SplitKV:   op.opts.SplitKV,
		DSScratch: op.opts.DSScratch,
	}), nil
}

// tcCall plans a call with plan and binds its launch to tensors; ok is
// false where KernelsAuto falls back to the FFMA kernels (a call the
// tensor-core kernels do not handle).
func (op *Op) tcCall(plan func() (*tc.Launch, error), tensors map[string]*wgpu.Buffer) (call *Call, ok bool, err error) {
	l, err := plan()
	if errors.Is(err, ErrNoTensorCores) && op.opts.Kernels == KernelsAuto {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, fmt.Errorf("attention: %w", err)
	}
	call, err = op.bind(l, tensors)
	return call, true, err
}

// tcForward is the forward's tensor-core launch, or ok false for the FFMA
// kernels. The tensors were checked by the caller.
func (op *Op) tcForward(a *attention.Args, t ForwardTensors) (*Call, bool, error) {
	p, err := op.tensorCores(a, op.opts.ForwardTiling.TX != 0)
	if p == nil || err != nil {
		return nil, err != nil, err
	}
	return op.tcCall(func() (*tc.Launch, error) { return p.Forward(a) },
		map[string]*wgpu.Buffer{"q": t.Q, "k": t.K, "v": t.V, "o": t.O, "lse": t.LSE})
}

// tcBackward is the backward's tensor-core launch, or ok false for the
// FFMA kernels.
func (op *Op) tcBackward(a *attention.Args, t BackwardTensors) (*Call, bool, error) {
	o := op.opts
	p, err := op.tensorCores(a, o.BackwardDQ.TX != 0 || o.BackwardDKV.TX != 0 || o.DQ != DQAuto)
	if p == nil || err != nil {
		return nil, err != nil, err
	}
	if err := checkBuffers(a, op.dev, map[string]*wgpu.Buffer{
		"q": t.Q, "k": t.K, "v": t.V, "o": t.O, "do": t.DO, "dq": t.DQ, "dk": t.DK, "dv": t.DV,
	}, int64(a.DType.Size())); err != nil {
		return nil, true, err
	}
	if err := checkBuffer(op.dev, "lse", t.LSE, int64(a.NumHeadsQ)*int64(a.TotalQ())*4); err != nil {
		return nil, true, err
	}
	if err := checkDistinctOutputs(t); err != nil {
		return nil, true, err
	}
	return op.tcCall(func() (*tc.Launch, error) { return p.Backward(a) },
		map[string]*wgpu.Buffer{"q": t.Q, "k": t.K, "v": t.V, "o": t.O, "lse": t.LSE, "do": t.DO, "dq": t.DQ, "dk": t.DK, "dv": t.DV})
}

// bind gives launch l its own buffers (from the Op's workspace, or the
// call's), compiles (or fetches) its kernels and returns its dispatches
// over tensors, with explicit binding slots.
func (op *Op) bind(l *tc.Launch, tensors map[string]*wgpu.Buffer) (*Call, error) {
	call := &Call{Tiling: l.Tiling, Kernels: KernelsTensorCore}
	bufs := make(map[string]*wgpu.Buffer, len(tensors)+len(l.Buffers))
	for _, t := range l.Tensors {
		b := tensors[t.Name]
		switch {
		case b == nil:
			return nil, fmt.Errorf("attention: tensor %s is missing", t.Name)
		case b.Device() != op.dev:
			return nil, fmt.Errorf("attention: tensor %s lives on another device", t.Name)
		case max(16, (b.Size()+15)&^15) < t.Bytes:
			return nil, fmt.Errorf("attention: tensor %s holds %d bytes, the tensor-core kernels read %d", t.Name, b.Size(), t.Bytes)
		}
		bufs[t.Name] = b
	}
	for _, spec := range l.Buffers {
		var b *wgpu.Buffer
		var err error
		switch { // the Op's workspace's buffers, or the call's own (workspace.go)
		case spec.Uniform:
			b, err = op.uniform(call, spec.Name, initWords(spec))
		case spec.Init != nil:
			b, err = op.table(call, spec.Name, initWords(spec))
		default: // scratch: no host copy (it can be gigabytes)
			b, err = op.scratch(call, spec.Name, spec.Bytes)
		}
		if err != nil {
			call.Release()
			return nil, fmt.Errorf("attention: %w", err)
		}
		bufs[spec.Name] = b
	}
	for _, d := range l.Dispatches {
		pipe, err := op.dev.Pipeline(d.Module.Label+" "+d.Entry, d.Module.Source, d.Entry)
		if err != nil {
			call.Release()
			return nil, fmt.Errorf("attention: %w", err)
		}
		disp := wgpu.Dispatch{Label: d.Label, Pipeline: pipe, Workgroups: d.Workgroups}
		for _, bd := range d.Bindings {
			b, ok := bufs[bd.Name]
			if !ok {
				call.Release()
				return nil, fmt.Errorf("attention: %s: binding %d names buffer %q, which the launch neither owns nor lists", d.Label, bd.Slot, bd.Name)
			}
			disp.Buffers = append(disp.Buffers, b)
			disp.Bindings = append(disp.Bindings, bd.Slot)
		}
		call.dispatches = append(call.dispatches, disp)
	}
	return call, nil
}

// initWords is spec's initial contents padded with zeros to its size.
func initWords(spec tc.Buffer) []uint32 {
	words := make([]uint32, spec.Bytes/4)
	copy(words, spec.Init)
	return words
}

// TCSweep lists tensor-core tilings to check and measure.
type TCSweep struct {
	Forward  []shaders.TCFwdTiling
	Backward []shaders.TCBwdTiling
}

// TensorCoreSweep lists, for head dimension d and storage dt on dev, the
// first n tilings of the choosers' lists for the preferred matrix shape
// and the first of every other shape the device offers (all for n <= 0),
// forward and backward: what benchmarks sweep.
func TensorCoreSweep(d int, dt attention.DType, dev tc.Device, n int) (TCSweep, error) {
	fwd, err := shaders.TCFwdTilings(d, dt, dev.Target)
	if err != nil {
		return TCSweep{}, err
	}
	bwd, err := shaders.TCBwdTilings(d, dt, dev.Target)
	if err != nil {
		return TCSweep{}, err
	}
	return TCSweep{
		Forward:  sweep(fwd, func(t shaders.TCFwdTiling) shaders.MatrixShape { return t.Shape }, n),
		Backward: sweep(bwd, func(t shaders.TCBwdTiling) shaders.MatrixShape { return t.Shape }, n),
	}, nil
}

// sweep picks from a chooser's list (ordered by shape preference, then by
// the chooser's order) the first n of the first shape and the first of
// each other shape; all for n <= 0.
func sweep[T any](all []T, shape func(T) shaders.MatrixShape, n int) []T {
	if n <= 0 || len(all) == 0 {
		return all
	}
	var out []T
	seen := map[shaders.MatrixShape]int{}
	first := shape(all[0])
	for _, t := range all {
		s := shape(t)
		limit := 1
		if s == first {
			limit = n
		}
		if seen[s] < limit {
			out = append(out, t)
		}
		seen[s]++
	}
	return out
}
