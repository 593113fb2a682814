package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// micro is a configuration small enough to check every coordinate.
var micro = Config{Dim: 8, Layers: 2, HeadsQ: 2, HeadsKV: 1, HeadDim: 4, FFN: 8, RopeTheta: 10000, NormEps: 1e-5}

// textBatch packs the given documents' bytes.
func textBatch(docs ...string) Batch {
	b := Batch{CuSeqlens: []int32{0}}
	for _, d := range docs {
		for _, c := range []byte(d) {
			b.Tokens = append(b.Tokens, int32(c))
		}
		b.CuSeqlens = append(b.CuSeqlens, int32(len(b.Tokens)))
	}
	return b
}

// randomReference draws weights of larger scale than Init (norm weights
// around 1), so that every nonlinearity is exercised.
func randomReference(t *testing.T, c Config, seed uint64, std float64) *Reference {
	t.Helper()
	w, err := Init(c, seed)
	require.NoError(t, err)
	r, err := NewReference(w)
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(seed, 99))
	for i, p := range c.Params() {
		for j := range r.W[i] {
			if p.Decay {
				r.W[i][j] = std * rng.NormFloat64()
			} else {
				r.W[i][j] = 1 + 0.3*rng.NormFloat64()
			}
		}
	}
	return r
}

func TestReferenceGradientsMicro(t *testing.T) {
	r := randomReference(t, micro, 1, 0.4)
	b := textBatch("func f", "}", "x := 1")
	loss, grads, err := r.Gradients(b)
	require.NoError(t, err)
	l2, err := r.Loss(b)
	require.NoError(t, err)
	assert.Equal(t, loss, l2)
	f := func() float64 {
		l, err := r.Loss(b)
		require.NoError(t, err)
		return l
	}
	for i, p := range micro.Params() {
		num := numGrad(f, r.W[i], nil, 1e-5)
		assert.Less(t, relErr(grads[i], num), 1e-7, p.Name)
		if p.Name == "tok_emb" {
			// Rows of bytes absent from the batch get no gradient.
			assert.Zero(t, grads[i][int('Z')*micro.Dim])
		}
	}
}

// TestReferenceGradientsTiny checks a few sampled coordinates of every
// tensor of the tiny preset, at its own initialisation, on real text.
func TestReferenceGradientsTiny(t *testing.T) {
	c, err := Preset("tiny")
	require.NoError(t, err)
	w, err := Init(c, 3)
	require.NoError(t, err)
	r, err := NewReference(w)
	require.NoError(t, err)
	b := textBatch("package main\n\nfunc main() {\n\tprintln(\"hi\")\n}\n", "// x\n", "var x = []int{1, 2}")
	loss, grads, err := r.Gradients(b)
	require.NoError(t, err)
	assert.InDelta(t, math.Log(Vocab), loss, 0.1, "fresh weights predict nearly uniformly")
	rng := rand.New(rand.NewPCG(4, 5))
	f := func() float64 {
		l, err := r.Loss(b)
		require.NoError(t, err)
		return l
	}
	for i, p := range c.Params() {
		// Sample among the coordinates with a gradient (the embedding rows
		// of bytes absent from the batch have none).
		var live []int
		for j, g := range grads[i] {
			if g != 0 {
				live = append(live, j)
			}
		}
		require.NotEmpty(t, live, p.Name)
		idx := make([]int, 4)
		for k := range idx {
			idx[k] = live[rng.IntN(len(live))]
		}
		num := numGrad(f, r.W[i], idx, 1e-4)
		assert.Less(t, relErr(pick(grads[i], idx), num), 1e-6, p.Name)
	}
}

func TestReferenceRejects(t *testing.T) {
	r := randomReference(t, micro, 1, 0.1)
	_, err := r.Loss(Batch{Tokens: []int32{1, 2}, CuSeqlens: []int32{0, 3}})
	assert.ErrorIs(t, err, ErrBatch)
	w := NewWeights(micro)
	w.Tensors[2] = w.Tensors[2][:3]
	_, err = NewReference(w)
	assert.Error(t, err)
}

func TestOptimizerReference(t *testing.T) {
	o := DefaultOptimizer()
	require.NoError(t, o.Validate())
	c := micro
	rng := rand.New(rand.NewPCG(7, 8))
	ps := c.Params()
	mk := func(std float64) [][]float64 {
		x := make([][]float64, len(ps))
		for i, p := range ps {
			x[i] = randn(rng, p.Size(), std)
		}
		return x
	}
	w, g := mk(1), mk(1)
	m, v := mk(0), mk(0)
	w0 := [][]float64{append([]float64(nil), w[0]...), append([]float64(nil), w[1]...)}
	const lr = 0.01
	norm := o.ReferenceStep(c, w, g, m, v, 1, lr)
	sq := 0.0
	for _, gi := range g {
		for _, x := range gi {
			sq += x * x
		}
	}
	require.InDelta(t, math.Sqrt(sq), norm, 1e-9)
	clip := 1 / (norm + 1e-6)
	// Step 1: m = (1-b1) g', v = (1-b2) g'², the bias corrections undo the
	// factors, and the update is lr g'/(|g'| + eps) = ±lr almost exactly.
	for _, i := range []int{0, 1} { // tok_emb decays, attn_norm does not
		decay := 1.0
		if ps[i].Decay {
			decay = 1 - lr*o.WeightDecay
		}
		for j := range w[i] {
			gc := g[i][j] * clip
			assert.InDelta(t, (1-o.Beta1)*gc, m[i][j], 1e-15)
			assert.InDelta(t, (1-o.Beta2)*gc*gc, v[i][j], 1e-15)
			want := w0[i][j]*decay - lr*gc/(math.Abs(gc)+o.Eps)
			assert.InDelta(t, want, w[i][j], 1e-12)
		}
	}
	assert.Equal(t, 1.0, o.ClipFactor(0.5))
	assert.InDelta(t, 0.25, o.ClipFactor(4), 1e-6)
	o.MaxGradNorm = 0
	assert.Equal(t, 1.0, o.ClipFactor(4))
	for _, bad := range []Optimizer{{Beta1: 1, Beta2: 0.9, Eps: 1}, {Beta2: -1, Eps: 1}, {Eps: 0}, {Eps: 1, WeightDecay: -1}, {Eps: 1, MaxGradNorm: math.NaN()}} {
		assert.ErrorIs(t, bad.Validate(), ErrOptimizer, "%+v", bad)
	}
}

func TestSchedule(t *testing.T) {
	s := NewSchedule(1e-3, 1000)
	require.NoError(t, s.Validate())
	assert.Equal(t, 100, s.Warmup)
	assert.InDelta(t, 1e-5, s.At(1), 1e-15)
	assert.InDelta(t, 5e-4, s.At(50), 1e-15)
	assert.InDelta(t, 1e-3, s.At(100), 1e-15)
	assert.InDelta(t, 1e-4+0.5*9e-4, s.At(550), 1e-12, "half way down the cosine")
	assert.InDelta(t, 1e-4, s.At(1000), 1e-15)
	assert.InDelta(t, 1e-4, s.At(2000), 1e-15)
	for t0 := 101; t0 < 1000; t0++ {
		require.LessOrEqual(t, s.At(t0+1), s.At(t0))
	}
	assert.Equal(t, 3, NewSchedule(1, 30).Warmup)
	assert.Equal(t, 0, NewSchedule(1, 5).Warmup)
	assert.InDelta(t, 1.0, NewSchedule(1, 5).At(1), 0.1)
	for _, bad := range []Schedule{{LR: 0, Steps: 1}, {LR: 1, MinLR: 2, Steps: 1}, {LR: 1, Steps: 0}, {LR: 1, Steps: 5, Warmup: 6}} {
		assert.ErrorIs(t, bad.Validate(), ErrOptimizer, "%+v", bad)
	}
	tiny, _ := Preset("tiny")
	small, _ := Preset("small")
	base, _ := Preset("base")
	assert.Equal(t, []float64{3e-3, 1e-3, 6e-4}, []float64{DefaultLR(tiny), DefaultLR(small), DefaultLR(base)})
}
