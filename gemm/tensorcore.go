package gemm

import (
	"errors"
	"fmt"

	"github.com/coreattn/coreattn/shaders"
	"github.com/coreattn/coreattn/wgpu"
)

// Tensor cores. The subgroup-matrix engine (shaders.GemmMMA,
// gemm_sgmat.wgsl: f16 operands rounded from the f32 matrices as they are
// staged, f32 accumulation) runs where the device answers the same feature
// question as the attention operator's tensor-core path: f16, one subgroup
// size and f16→f32 subgroup-matrix configurations (TensorCoreShapes).
// Options.Kernels decides whether it runs: its operands carry f16's
// rounding (relative error about 1e-3 rather than 1e-6), so the default
// keeps the f32 FMA engine, as the attention operator keeps its f32
// callers on f32 products; KernelsTensorCore asks for it.

// Kernels chooses the engine an Op runs.
type Kernels int

const (
	// KernelsAuto runs the FMA engine: the Op's matrices are f32, and
	// their products stay f32-accurate unless tensor cores are asked for.
	// A forced Options.Tiling runs as given (an MMA one included).
	KernelsAuto Kernels = iota
	// KernelsFMA always runs the FMA engine (f32 products).
	KernelsFMA
	// KernelsTensorCore runs the subgroup-matrix engine with the tiling
	// shaders.ChooseGemmMMA picks for the device; an error wrapping
	// ErrNoTensorCores where the device has no f16→f32 subgroup matrices
	// or no tiling fits it.
	KernelsTensorCore
)

func (k Kernels) String() string {
	switch k {
	case KernelsAuto:
		return "auto"
	case KernelsFMA:
		return "fma"
	case KernelsTensorCore:
		return "tensor-core"
	}
	return fmt.Sprintf("Kernels(%d)", int(k))
}

// ParseKernels is the engine choice that String names s.
func ParseKernels(s string) (Kernels, error) {
	for _, k := range []Kernels{KernelsAuto, KernelsFMA, KernelsTensorCore} {
		if s == k.String() {
			return k, nil
		}
	}
	return KernelsAuto, fmt.Errorf("gemm: kernels %q: want auto, fma or tensor-core", s)
}

// ErrNoTensorCores reports a device the subgroup-matrix engine cannot run
// on.
var ErrNoTensorCores = errors.New("gemm: no tensor cores")

// TensorCoreShapes lists the f16→f32 subgroup-matrix configurations the
// device offers the engine (nil without f16 or subgroups, or with a
// variable subgroup size): the feature query every tensor-core path makes.
func TensorCoreShapes(info wgpu.AdapterInfo) []shaders.MMAConfig {
	if !info.F16 || !info.Subgroups || info.SubgroupMinSize != info.SubgroupMaxSize {
		return nil
	}
	var out []shaders.MMAConfig
	for _, c := range info.MatrixConfigs {
		if c.Component == "f16" && c.Result == "f32" {
			out = append(out, shaders.MMAConfig{M: c.M, N: c.N, K: c.K})
		}
	}
	return out
}

// tensorCoreTiling is the subgroup-matrix tiling for the device, with ok
// true, where Options.Kernels asks for tensor cores; ok false where the
// FMA engine (or a forced tiling) runs.
func (g *Op) tensorCoreTiling() (t shaders.GemmTiling, ok bool, err error) {
	switch g.opts.Kernels {
	case KernelsFMA, KernelsAuto:
		return t, false, nil
	case KernelsTensorCore:
	default:
		return t, false, fmt.Errorf("gemm: Options.Kernels %d does not exist", int(g.opts.Kernels))
	}
	if g.opts.Tiling.BM != 0 {
		if !g.opts.Tiling.MMA.On() {
			return t, false, fmt.Errorf("gemm: Options.Kernels tensor-core with the FMA tiling %s: give an MMA tiling or none", g.opts.Tiling.Shape())
		}
		return t, false, nil // the forced MMA tiling
	}
	info := g.dev.Info()
	configs := TensorCoreShapes(info)
	if len(configs) == 0 {
		return t, false, fmt.Errorf("%w: %s on %s offers no f16->f32 subgroup matrices (it has: %s)", ErrNoTensorCores, info.Name, info.Runtime, info.Capabilities())
	}
	lim := info.Limits
	t, ok = shaders.ChooseGemmMMA(configs, int(info.SubgroupMaxSize), int(lim.MaxWorkgroupStorageSize), int(lim.MaxInvocationsPerWorkgroup))
	if !ok {
		return t, false, fmt.Errorf("%w: no subgroup-matrix tiling fits %s (%d bytes of workgroup memory, %d invocations, subgroups of %d)", ErrNoTensorCores, info.Name, lim.MaxWorkgroupStorageSize, lim.MaxInvocationsPerWorkgroup, info.SubgroupMaxSize)
	}
	return t, true, nil
}
