package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/coreattn/coreattn/attention"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// project is the scalar objective Σ y·r used to check a backward: its
// gradient with respect to y is r.
func project(y, r []float64) float64 { return dotf(y, r) }

// TestOpsFiniteDifferences checks every op's backward against central
// finite differences of Σ f(x)·r, for every input coordinate.
func TestOpsFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const rows, d, eps = 5, 8, 1e-5
	cu := []int32{0, 2, 5}
	pos := []int32{0, 1, 0, 1, 2}
	for _, tt := range []struct {
		name string
		// inputs are perturbed in place; run computes the outputs and
		// back returns the analytic gradient of every input for upstream r.
		inputs [][]float64
		run    func(in [][]float64) []float64
		back   func(in [][]float64, r []float64) [][]float64
	}{
		{
			name:   "rmsnorm",
			inputs: [][]float64{randn(rng, rows*d, 1), randn(rng, d, 1)},
			run: func(in [][]float64) []float64 {
				y, _ := RMSNormForward(in[0], in[1], d, eps)
				return y
			},
			back: func(in [][]float64, r []float64) [][]float64 {
				_, s := RMSNormForward(in[0], in[1], d, eps)
				dx, dw := RMSNormBackward(in[0], in[1], s, r, d)
				return [][]float64{dx, dw}
			},
		},
		{
			name:   "rope",
			inputs: [][]float64{randn(rng, rows*2*8, 1)},
			run:    func(in [][]float64) []float64 { return RopeForward(in[0], pos, 2, 8, 10000) },
			back: func(in [][]float64, r []float64) [][]float64 {
				return [][]float64{RopeBackward(r, pos, 2, 8, 10000)}
			},
		},
		{
			name:   "swiglu",
			inputs: [][]float64{randn(rng, 12, 2), randn(rng, 12, 1)},
			run:    func(in [][]float64) []float64 { return SwiGLUForward(in[0], in[1]) },
			back: func(in [][]float64, r []float64) [][]float64 {
				dg, du := SwiGLUBackward(in[0], in[1], r)
				return [][]float64{dg, du}
			},
		},
		{
			name:   "matmul",
			inputs: [][]float64{randn(rng, rows*3, 1), randn(rng, 4*3, 1)},
			run:    func(in [][]float64) []float64 { return MatMulT(in[0], in[1], 3, 4) },
			back: func(in [][]float64, r []float64) [][]float64 {
				dx, dw := MatMulTBackward(in[0], in[1], r, 3, 4)
				return [][]float64{dx, dw}
			},
		},
		{
			name: "attention GQA",
			// q [rows, 4 heads * 4], k and v [rows, 2 heads * 4]
			inputs: [][]float64{randn(rng, rows*16, 1), randn(rng, rows*8, 1), randn(rng, rows*8, 1)},
			run:    func(in [][]float64) []float64 { return AttentionForward(in[0], in[1], in[2], cu, 4, 2, 4) },
			back: func(in [][]float64, r []float64) [][]float64 {
				dq, dk, dv := AttentionBackward(in[0], in[1], in[2], r, cu, 4, 2, 4)
				return [][]float64{dq, dk, dv}
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := randn(rng, len(tt.run(tt.inputs)), 1)
			grads := tt.back(tt.inputs, r)
			require.Len(t, grads, len(tt.inputs))
			for i, x := range tt.inputs {
				num := numGrad(func() float64 { return project(tt.run(tt.inputs), r) }, x, nil, 1e-5)
				assert.Less(t, relErr(grads[i], num), 1e-7, "input %d", i)
			}
		})
	}
}

func TestCrossEntropyFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const rows, vocab = 4, 7
	logits := randn(rng, rows*vocab, 2)
	targets := []int32{3, -1, 0, 6}
	loss, dl := CrossEntropy(logits, targets, vocab)
	num := numGrad(func() float64 {
		l, _ := CrossEntropy(logits, targets, vocab)
		return l
	}, logits, nil, 1e-5)
	assert.Less(t, relErr(dl, num), 1e-7)
	// By hand for row 0.
	z := logits[:vocab]
	s := 0.0
	for _, v := range z {
		s += math.Exp(v)
	}
	want := math.Log(s) - z[3]
	z = logits[2*vocab : 3*vocab]
	s = 0
	for _, v := range z {
		s += math.Exp(v)
	}
	want += math.Log(s) - z[0]
	z = logits[3*vocab:]
	s = 0
	for _, v := range z {
		s += math.Exp(v)
	}
	want += math.Log(s) - z[6]
	assert.InDelta(t, want/3, loss, 1e-12)
	for i := vocab; i < 2*vocab; i++ {
		assert.Zero(t, dl[i], "a row without a target has no gradient")
	}
	l, _ := CrossEntropy(logits, []int32{-1, -1, -1, -1}, vocab)
	assert.Zero(t, l)
}

// TestAttentionMatchesPackage checks the model's float64 attention against
// package attention's reference (causal, GQA, varlen).
func TestAttentionMatchesPackage(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	cu := []int32{0, 3, 4, 9}
	const hq, hkv, dh = 4, 2, 8
	rows := int(cu[len(cu)-1])
	q32, k32, v32, do32 := rand32(rng, rows*hq*dh), rand32(rng, rows*hkv*dh), rand32(rng, rows*hkv*dh), rand32(rng, rows*hq*dh)
	a := &attention.Args{CuSeqlensQ: cu, CuSeqlensK: cu, NumHeadsQ: hq, NumHeadsKV: hkv, HeadDim: dh, Causal: true}
	wantO, _, err := attention.ReferenceForward(a, q32, k32, v32)
	require.NoError(t, err)
	wantDQ, wantDK, wantDV, err := attention.ReferenceBackward(a, q32, k32, v32, do32)
	require.NoError(t, err)
	q, k, v, do := to64(q32), to64(k32), to64(v32), to64(do32)
	assert.Less(t, relErr(AttentionForward(q, k, v, cu, hq, hkv, dh), wantO), 1e-12)
	dq, dk, dv := AttentionBackward(q, k, v, do, cu, hq, hkv, dh)
	assert.Less(t, relErr(dq, wantDQ), 1e-12)
	assert.Less(t, relErr(dk, wantDK), 1e-12)
	assert.Less(t, relErr(dv, wantDV), 1e-12)
}

func rand32(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

func to64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}
