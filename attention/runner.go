package attention

import (
	"context"
	"time"
)

// Runner runs varlen core attention on host-resident tensors laid out as the
// package documents. The GPU operator (package attention/gpu) is one, the
// attention-server pool (package disagg/pool) another, [Reference] a third;
// the command line and the trainer are written against this interface.
//
// Implementations validate a and the tensor sizes and return an error naming
// the bad value; they are safe for concurrent use.
type Runner interface {
	// Forward returns O [total_q, Hq, D] and LSE [Hq, total_q].
	Forward(ctx context.Context, a *Args, q, k, v []float32) (o, lse []float32, err error)
	// Backward returns dQ [total_q, Hq, D], dK and dV [total_k, Hkv, D] from
	// the forward's inputs, its outputs O and LSE, and the upstream dO.
	Backward(ctx context.Context, a *Args, q, k, v, o, lse, do []float32) (dq, dk, dv []float32, err error)
}

// Stats is how long one run took.
type Stats struct {
	// Total is the whole call: uploads, kernels and downloads.
	Total time.Duration `json:"total_ns"`
	// Kernel is the host's view of the kernels alone: from submission until
	// the device went idle.
	Kernel time.Duration `json:"kernel_ns"`
	// GPU is the kernels' time from timestamp queries; 0 where the device
	// has none.
	GPU time.Duration `json:"gpu_ns,omitempty"`
}

// Add accumulates o into s.
func (s *Stats) Add(o Stats) {
	s.Total += o.Total
	s.Kernel += o.Kernel
	s.GPU += o.GPU
}

// Reference is the float64 CPU reference as a [Runner]: it computes in
// float64 ([ReferenceForward], [ReferenceBackward]) and rounds the results to
// float32. It ignores a.DType. It exists for tests and small checks; it is
// slow.
type Reference struct{}

// Forward implements [Runner].
func (Reference) Forward(ctx context.Context, a *Args, q, k, v []float32) (o, lse []float32, err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	o64, lse64, err := ReferenceForward(a, q, k, v)
	if err != nil {
		return nil, nil, err
	}
	return to32(o64), to32(lse64), nil
}

// Backward implements [Runner]. O and LSE are checked for size but not
// read: the reference recomputes them.
func (Reference) Backward(ctx context.Context, a *Args, q, k, v, o, lse, do []float32) (dq, dk, dv []float32, err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, nil, err
	}
	if err := a.Validate(); err != nil {
		return nil, nil, nil, err
	}
	if err := a.CheckBackwardSizes(len(q), len(k), len(v), len(o), len(lse), len(do)); err != nil {
		return nil, nil, nil, err
	}
	dq64, dk64, dv64, err := ReferenceBackward(a, q, k, v, do)
	if err != nil {
		return nil, nil, nil, err
	}
	return to32(dq64), to32(dk64), to32(dv64), nil
}

func to32(x []float64) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = float32(v)
	}
	return y
}
