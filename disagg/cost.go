package disagg

import (
	"fmt"
	"math"
	"sort"
)

// CostModel predicts how long one attention server takes to run CA-tasks.
// Implementations must be deterministic and safe for concurrent use.
type CostModel interface {
	// TaskTime returns the predicted seconds of one layer's core attention for
	// a bottom-right causal segment of qLen queries against kLen keys
	// (0 <= qLen <= kLen), as part of a fused batch, for pass.
	TaskTime(qLen, kLen int, pass Pass) float64
}

// FLOPModel is the fallback cost model: a task takes its attention FLOPs
// divided by a sustained throughput.
type FLOPModel struct {
	// Arch gives the head shapes that turn pairs into FLOPs.
	Arch Arch
	// FLOPS is the server's sustained core-attention throughput in FLOP/s.
	FLOPS float64
}

// NewFLOPModel returns a FLOPModel after checking its arguments.
func NewFLOPModel(m Arch, flops float64) (FLOPModel, error) {
	if err := m.Validate(); err != nil {
		return FLOPModel{}, err
	}
	if !(flops > 0) || math.IsInf(flops, 0) {
		return FLOPModel{}, fmt.Errorf("disagg: attention throughput %g FLOP/s must be positive and finite", flops)
	}
	return FLOPModel{Arch: m, FLOPS: flops}, nil
}

// TaskTime implements CostModel.
func (f FLOPModel) TaskTime(qLen, kLen int, pass Pass) float64 {
	return f.Arch.AttentionFLOPs(qLen, kLen, pass) / f.FLOPS
}

// bilinear interpolates z (indexed z[i][j] for xs[i], ys[j]) at (x, y) over the
// rectilinear grid xs × ys, both strictly ascending. Outside the grid each
// coordinate is clamped to the nearest edge, so the surface extends flat.
// A single-point axis is constant along that axis.
func bilinear(xs, ys []float64, z [][]float64, x, y float64) float64 {
	i, tx := bracket(xs, x)
	j, ty := bracket(ys, y)
	i1, j1 := min(i+1, len(xs)-1), min(j+1, len(ys)-1)
	a := z[i][j]*(1-ty) + z[i][j1]*ty
	b := z[i1][j]*(1-ty) + z[i1][j1]*ty
	return a*(1-tx) + b*tx
}

// bracket returns the index i of the grid cell [xs[i], xs[i+1]] holding x and
// the fraction t of the way across it, with x clamped to the grid.
func bracket(xs []float64, x float64) (int, float64) {
	n := len(xs)
	if n == 1 || !(x > xs[0]) { // also catches NaN
		return 0, 0
	}
	if x >= xs[n-1] {
		return n - 2, 1
	}
	i := sort.SearchFloat64s(xs, x) // first xs[i] >= x, 1 <= i <= n-1
	if xs[i] == x {
		if i == n-1 {
			return n - 2, 1
		}
		return i, 0
	}
	i--
	return i, (x - xs[i]) / (xs[i+1] - xs[i])
}
