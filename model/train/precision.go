package train

import (
	"errors"
	"fmt"
	"math"

	"github.com/coreattn/coreattn/attention/gpu"
	"github.com/coreattn/coreattn/gemm"
	"github.com/coreattn/coreattn/wgpu"
)

// ErrPrecision reports an invalid [Precision].
var ErrPrecision = errors.New("train: invalid precision setting")

// Precision is how a trainer multiplies: which kernels run the GEMMs and
// core attention, and the loss scale that keeps small gradients
// representable in their operands. The zero value is all f32 on FMA.
type Precision struct {
	// TensorCores runs the GEMMs and core attention on the adapter's
	// subgroup matrices (tensor cores): operands rounded to f16 as they
	// are staged, products accumulated in f32; weights, optimizer state,
	// activations in memory and every other kernel stay f32 (PyTorch's
	// autocast to float16). The adapter needs f16→f32 subgroup matrices
	// (Dawn's runtime on NVIDIA GPUs or Mesa 26's lavapipe); building a
	// trainer fails with an error wrapping gpu.ErrNoTensorCores and
	// gemm.ErrNoTensorCores where it has none. With a caller's
	// [Options].Attention only the GEMMs follow.
	TensorCores bool
	// LossScale multiplies the loss gradient, and the gradient norm and
	// the update divide it back out, so that gradients far below f16's
	// normal range (6e-5) survive the f16 operands. 0 chooses 1 on FMA
	// and, with TensorCores, the largest power of two not above the
	// tokens of a step (the gradient of the summed loss). A power of two
	// changes no f32 result.
	LossScale float64
}

// Check reports an adapter without the subgroup matrices that p's tensor
// cores need, as an error wrapping both gemm.ErrNoTensorCores and
// gpu.ErrNoTensorCores; [New] and [NewCluster] call it, callers may call
// it before loading data.
func (p Precision) Check(info wgpu.AdapterInfo) error {
	if !p.TensorCores {
		return nil
	}
	if _, err := gpu.TensorCoreDevice(info); err != nil {
		return fmt.Errorf("train: tensor cores: %w (%w)", err, gemm.ErrNoTensorCores)
	}
	if len(gemm.TensorCoreShapes(info)) == 0 {
		return fmt.Errorf("train: tensor cores: %w: %s has no configuration the GEMMs use (%w)", gemm.ErrNoTensorCores, info.Name, gpu.ErrNoTensorCores)
	}
	return nil
}

// lossScale resolves p's loss scale for steps of tokens tokens.
func (p Precision) lossScale(tokens int) (float64, error) {
	s := p.LossScale
	switch {
	case math.IsNaN(s) || math.IsInf(s, 0) || s < 0:
		return 0, fmt.Errorf("%w: loss scale %v: want a positive finite number (0 chooses one)", ErrPrecision, s)
	case s > 0:
		return s, nil
	case !p.TensorCores || tokens < 1:
		return 1, nil
	}
	return math.Ldexp(1, int(math.Floor(math.Log2(float64(tokens))))), nil
}

// gemmOptions are the GEMM operator's options under p.
func (p Precision) gemmOptions() gemm.Options {
	if p.TensorCores {
		return gemm.Options{Kernels: gemm.KernelsTensorCore}
	}
	return gemm.Options{}
}

// attention sets the attention operator's kernels under p.
func (p Precision) attention(o gpu.Options) gpu.Options {
	if p.TensorCores {
		o.Kernels = gpu.KernelsTensorCore
	}
	return o
}

// String describes p for logs, such as "f32 on FMA" or "f16 operands on
// tensor cores, f32 accumulation, loss scale 1024".
func (p Precision) String() string {
	s := "f32 on FMA"
	if p.TensorCores {
		s = "f16 operands on tensor cores, f32 accumulation"
	}
	if p.LossScale != 0 {
		s += fmt.Sprintf(", loss scale %g", p.LossScale)
	}
	return s
}
