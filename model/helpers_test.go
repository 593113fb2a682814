package model

import (
	"math"
	"math/rand/v2"
)

func sqrt(x float64) float64 { return math.Sqrt(x) }

// randn returns n normals of standard deviation std.
func randn(r *rand.Rand, n int, std float64) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = std * r.NormFloat64()
	}
	return x
}

// relErr is ‖got-want‖/‖want‖.
func relErr(got, want []float64) float64 {
	num, den := 0.0, 0.0
	for i := range want {
		d := got[i] - want[i]
		num += d * d
		den += want[i] * want[i]
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

// numGrad returns the central finite-difference gradient of f at x for the
// coordinates idx (all when idx is nil), restoring x.
func numGrad(f func() float64, x []float64, idx []int, h float64) []float64 {
	if idx == nil {
		idx = make([]int, len(x))
		for i := range idx {
			idx[i] = i
		}
	}
	g := make([]float64, len(idx))
	for k, i := range idx {
		old := x[i]
		x[i] = old + h
		fp := f()
		x[i] = old - h
		fm := f()
		x[i] = old
		g[k] = (fp - fm) / (2 * h)
	}
	return g
}

// pick returns the entries idx of x.
func pick(x []float64, idx []int) []float64 {
	out := make([]float64, len(idx))
	for k, i := range idx {
		out[k] = x[i]
	}
	return out
}
