package gemm

import (
	"errors"
	"fmt"
	"strings"

	"github.com/coreattn/coreattn/shaders"
	"github.com/coreattn/coreattn/wgpu"
)

// Tensor cores: the hook for a subgroup-matrix engine (issue 21, point 4).
//
// Where to plug it in: tensorCoreTiling below is the one place that
// chooses it. It asks the device the same feature question as the
// attention operator (f16, one subgroup size, f16→f32 MatrixConfigs; see
// TensorCoreShapes), then would pick the engine's tiling for the product.
// On main no such engine exists yet (branch gemm carries one:
// shaders.GemmMMA and ChooseGemmMMA, f16 operands rounded from the f32
// matrices as they are staged), so every product runs on the FMA engine
// (gemm.wgsl): KernelsAuto changes nothing, and KernelsTensorCore fails
// with ErrNoTensorCores, saying why.

// Kernels chooses the engine an Op runs.
type Kernels int

const (
	// KernelsAuto runs the subgroup-matrix engine where the device offers
	// tensor cores and the engine exists, the FMA engine otherwise.
	KernelsAuto Kernels = iota
	// KernelsFMA always runs the FMA engine (f32 products).
	KernelsFMA
	// KernelsTensorCore always runs the subgroup-matrix engine; an error
	// wrapping ErrNoTensorCores where it cannot.
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

// ErrNoTensorCores reports a product the subgroup-matrix engine cannot
// run: no engine in this build, or a device without f16→f32 subgroup
// matrices.
var ErrNoTensorCores = errors.New("gemm: no tensor-core engine")

// TensorCoreShapes lists the f16→f32 subgroup-matrix shapes the device
// offers the kernels (nil without f16 or with a variable subgroup size):
// the feature query every tensor-core path makes.
func TensorCoreShapes(info wgpu.AdapterInfo) []shaders.MatrixShape {
	if !info.F16 || !info.Subgroups || info.SubgroupMinSize != info.SubgroupMaxSize {
		return nil
	}
	var out []shaders.MatrixShape
	for _, c := range info.MatrixConfigs {
		if c.Component == "f16" && c.Result == "f32" {
			out = append(out, shaders.MatrixShape{M: c.M, N: c.N, K: c.K})
		}
	}
	return out
}

// tensorCoreTiling is the hook: the subgroup-matrix tiling for s, with ok
// true, where Options.Kernels and the device call for it. With no engine
// on main it returns ok false (the FMA engine runs), or ErrNoTensorCores
// where KernelsTensorCore was asked for.
func (g *Op) tensorCoreTiling(s Spec) (t shaders.GemmTiling, ok bool, err error) {
	switch g.opts.Kernels {
	case KernelsFMA, KernelsAuto:
		return t, false, nil
	case KernelsTensorCore:
	default:
		return t, false, fmt.Errorf("gemm: Options.Kernels %d does not exist", int(g.opts.Kernels))
	}
	info := g.dev.Info()
	var shapes []string
	for _, sh := range TensorCoreShapes(info) {
		shapes = append(shapes, sh.String())
	}
	if len(shapes) == 0 {
		return t, false, fmt.Errorf("%w: %s on %s offers no f16->f32 subgroup matrices (it has: %s)", ErrNoTensorCores, info.Name, info.Runtime, info.Capabilities())
	}
	return t, false, fmt.Errorf("%w: %s offers %s, but this build has no subgroup-matrix GEMM engine yet (see gemm/tensorcore.go)", ErrNoTensorCores, info.Name, strings.Join(shapes, ", "))
}
