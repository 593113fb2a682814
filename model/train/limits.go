package train

import (
	"errors"
	"fmt"
	"math"

	"github.com/coreattn/coreattn/model"
	"github.com/coreattn/coreattn/wgpu"
)

// ErrTooLarge is wrapped by the error of a model or step size that does
// not fit the adapter's limits.
var ErrTooLarge = errors.New("train: too large for the adapter")

// Need is the device memory a trainer allocates.
type Need struct {
	// Total is every buffer's bytes: the trainer's own and, estimated from
	// above, the attention launches' scratch of a step.
	Total uint64
	// Largest is the largest single buffer, named by LargestName.
	Largest     uint64
	LargestName string
}

// Requirements computes the memory a trainer of c with tokens tokens per
// step needs, from the same allocation code the trainer runs.
func Requirements(c model.Config, tokens int) Need {
	var n Need
	count := func(label string, elems int) (*wgpu.Buffer, error) {
		b := uint64(max(elems, 1)) * 4
		n.Total += b
		if b > n.Largest {
			n.Largest, n.LargestName = b, label
		}
		return nil, nil
	}
	flat := newParamLayout(c).total
	for _, name := range []string{"parameters", "gradients", "adam m", "adam v"} {
		count(name, flat)
	}
	count("rope table", tokens*c.HeadDim)
	newRank(c, tokens, count)
	// The attention backward's scratch, one per layer while the step runs:
	// the fixed-point dQ accumulator (6 bytes per element of dQ) or the
	// stored dS (at most DSScratch).
	acc := 6 * uint64(tokens) * uint64(c.QDim())
	n.Total += uint64(c.Layers) * max(acc, DSScratch)
	if acc > n.Largest {
		n.Largest, n.LargestName = acc, "attention dQ accumulator"
	}
	return n
}

// CheckLimits returns an error wrapping [ErrTooLarge], naming the buffer
// and the most tokens per step that would fit, where a trainer of c with
// tokens tokens per step needs a buffer larger than the adapter binds, or
// an index beyond 32 bits.
func CheckLimits(c model.Config, tokens int, a wgpu.AdapterInfo) error {
	if tokens < 1 || tokens > math.MaxInt32/4 {
		return fmt.Errorf("%w: %d tokens per step, want 1..%d", ErrTooLarge, tokens, math.MaxInt32/4)
	}
	limit := min(a.Limits.MaxBufferSize, a.Limits.MaxStorageBufferBindingSize, math.MaxUint32)
	need := Requirements(c, tokens)
	if need.Largest <= limit {
		return nil
	}
	// The largest buffers grow with the tokens: find the most that fit.
	fit := 0
	for lo, hi := 1, tokens; lo <= hi; {
		mid := (lo + hi) / 2
		if Requirements(c, mid).Largest <= limit {
			fit, lo = mid, mid+1
		} else {
			hi = mid - 1
		}
	}
	hint := fmt.Sprintf("at most %d tokens per step fit", fit)
	if fit == 0 {
		hint = "the model itself does not fit: choose a smaller preset"
	}
	return fmt.Errorf("%w: %s with %d tokens per step needs a buffer of %d bytes (%s); %s binds at most %d: %s",
		ErrTooLarge, c, tokens, need.Largest, need.LargestName, a.Name, limit, hint)
}
