package train

import (
	"math"

	"github.com/coreattn/coreattn/model"
)

// The per-step host data. The batch buffer holds, as int32, the tokens
// [T], then the targets [T] (-1 where a row predicts nothing), then the
// RoPE positions [T].

// batchInts lays b out as the batch buffer.
func batchInts(b model.Batch) []int32 {
	t := len(b.Tokens)
	out := make([]int32, 3*t)
	copy(out, b.Tokens)
	copy(out[t:], b.Targets())
	copy(out[2*t:], b.Positions())
	return out
}

// embedIndex is the embedding gradient's CSR index of tokens: offsets
// [Vocab+1] (id v's rows are entries offsets[v]..offsets[v+1] of the
// list), then the list of rows, grouped by id, each group in increasing
// row order, so that the kernel's sums have a fixed order.
func embedIndex(tokens []int32) []uint32 {
	idx := make([]uint32, model.Vocab+1+len(tokens))
	off, rows := idx[:model.Vocab+1], idx[model.Vocab+1:]
	for _, t := range tokens {
		off[t+1]++
	}
	for v := range model.Vocab {
		off[v+1] += off[v]
	}
	next := make([]uint32, model.Vocab)
	copy(next, off[:model.Vocab])
	for r, t := range tokens {
		rows[next[t]] = uint32(r)
		next[t]++
	}
	return idx
}

// ropeTable is (cos, sin) of position p times frequency i for p < maxPos
// and i < dh/2, computed in float64 as the reference does.
func ropeTable(maxPos, dh int, theta float64) []float64 {
	half := dh / 2
	t := make([]float64, 2*maxPos*half)
	for p := range maxPos {
		for i := range half {
			s, c := math.Sincos(float64(p) * model.RopeFreq(i, dh, theta))
			t[2*(p*half+i)], t[2*(p*half+i)+1] = c, s
		}
	}
	return t
}

// The step buffer's slots, written by the host before each step.
const (
	stepInvTargets = iota // 1/N, N the batch's targets
	stepLR                // the learning rate
	stepSize              // lr / (1 - beta1^t)
	stepSqrtBC2           // sqrt(1 - beta2^t)
	stepDecay             // 1 - lr * weight_decay
	stepGradScale         // S/N: the loss gradient's factor, S the loss scale
	stepUnscale           // 1/S: the gradient norm and the update undo the loss scale
	stepSlots
)

// stepValues computes the step buffer for a batch of nTargets targets at
// optimizer step t (1-based), learning rate lr and loss scale S, in float64.
func stepValues(nTargets int, lr float64, o model.Optimizer, t int, S float64) []float32 {
	v := make([]float32, stepSlots)
	if nTargets > 0 {
		v[stepInvTargets] = float32(1 / float64(nTargets))
		v[stepGradScale] = float32(S / float64(nTargets))
	}
	v[stepUnscale] = float32(1 / S)
	bc1, bc2 := o.BiasCorrections(max(t, 1))
	v[stepLR] = float32(lr)
	v[stepSize] = float32(lr / bc1)
	v[stepSqrtBC2] = float32(math.Sqrt(bc2))
	v[stepDecay] = float32(1 - lr*o.WeightDecay)
	return v
}

// The scalars buffer's slots, written by the device.
const (
	scalarLoss     = iota // mean loss
	scalarLossSum         // sum of the rows' losses
	scalarGradNorm        // global gradient norm before clipping
	scalarClip            // clip factor
	scalarSlots
)

func to32(x []float64) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = float32(v)
	}
	return y
}
