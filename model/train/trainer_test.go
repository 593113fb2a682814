package train

import (
	"context"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/coreattn/coreattn/model"
	"github.com/coreattn/coreattn/wgpu"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// realBatch packs pieces of this repository's Go sources (real text) into
// a batch of exactly tokens tokens: documents of the given lengths, then
// one filling the rest.
func realBatch(t testing.TB, tokens int, lens ...int) model.Batch {
	t.Helper()
	var text []byte
	for _, f := range []string{"../reference.go", "../ops.go", "trainer.go", "rank.go"} {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		text = append(text, b...)
	}
	b := model.Batch{CuSeqlens: []int32{0}}
	at := 0
	add := func(n int) {
		for _, c := range text[at : at+n] {
			b.Tokens = append(b.Tokens, int32(c))
		}
		at += n + 17 // different text in each document
		b.CuSeqlens = append(b.CuSeqlens, int32(len(b.Tokens)))
	}
	for _, n := range lens {
		add(n)
	}
	if rest := tokens - len(b.Tokens); rest > 0 {
		add(rest)
	}
	require.NoError(t, b.Validate())
	require.Len(t, b.Tokens, tokens)
	return b
}

func newTestTrainer(t testing.TB, c model.Config, tokens int, seed uint64) *Trainer {
	t.Helper()
	tr, err := New(testDev, c, Options{Tokens: tokens})
	require.NoError(t, err)
	t.Cleanup(tr.Close)
	w, err := model.Init(c, seed)
	require.NoError(t, err)
	require.NoError(t, tr.SetWeights(w))
	return tr
}

func tinyConfig(t *testing.T) model.Config {
	c, err := model.Preset("tiny")
	require.NoError(t, err)
	return c
}

// TestGradientsMatchReference is the check: tiny, fresh random
// weights, real text; the loss to 1e-5 and every gradient to 1e-4. A
// second configuration has the presets' head dimension (64), MHA and
// d != Hq*Dh.
func TestGradientsMatchReference(t *testing.T) {
	wide := model.Config{Dim: 96, Layers: 1, HeadsQ: 2, HeadsKV: 2, HeadDim: 64, FFN: 160, RopeTheta: 10000, NormEps: 1e-5}
	for _, tt := range []struct {
		name   string
		c      model.Config
		tokens int
		lens   []int
	}{
		{"tiny", tinyConfig(t), 384, []int{200, 1, 60}},
		{"Dh 64", wide, 160, []int{90, 3}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.c
			tr := newTestTrainer(t, c, tt.tokens, 11)
			b := realBatch(t, tt.tokens, tt.lens...)
			ctx := context.Background()
			// Poison the gradients and the scalars: every value must be written.
			require.NoError(t, wgpu.Write(tr.w.grads, 0, to32(nans(tr.layout.total))))
			require.NoError(t, wgpu.Write(tr.w.scalars, 0, to32(nans(scalarSlots))))
			res, err := tr.Gradients(ctx, b)
			require.NoError(t, err)
			grads, err := tr.download(ctx, tr.w.grads)
			require.NoError(t, err)

			w, err := tr.Weights(ctx)
			require.NoError(t, err)
			ref, err := model.NewReference(w)
			require.NoError(t, err)
			wantLoss, wantGrads, err := ref.Gradients(b)
			require.NoError(t, err)
			assert.InDelta(t, wantLoss, res.Loss, 1e-5*wantLoss, "loss")
			for i, p := range c.Params() {
				e := relErr(to64(grads[i]), wantGrads[i])
				assert.Less(t, e, 1e-4, p.Name)
				t.Logf("%-20s rel err %.2e", p.Name, e)
			}
		})
	}
}

// TestAdamWMatchesReference runs the optimizer on given gradients and
// moments (a clipped step 4) against the float64 reference.
func TestAdamWMatchesReference(t *testing.T) {
	c := tinyConfig(t)
	tr := newTestTrainer(t, c, 64, 12)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	ps := c.Params()
	mk := func(std float64, abs bool) [][]float32 {
		out := make([][]float32, len(ps))
		for i, p := range ps {
			out[i] = make([]float32, p.Size())
			for j := range out[i] {
				x := std * rng.NormFloat64()
				if abs && x < 0 {
					x = -x
				}
				out[i][j] = float32(x)
			}
		}
		return out
	}
	g, m, v := mk(0.05, false), mk(0.01, false), mk(1e-4, true)
	require.NoError(t, tr.upload(tr.w.grads, g))
	require.NoError(t, tr.SetOptimizerState(&OptimizerState{Step: 3, M: m, V: v}))
	w0, err := tr.Weights(ctx)
	require.NoError(t, err)
	const lr = 2e-3
	res, err := tr.optimize(ctx, lr)
	require.NoError(t, err)
	assert.Equal(t, 4, tr.Steps())

	wantW, gg, wantM, wantV := to64s(w0.Tensors), to64s(g), to64s(m), to64s(v)
	norm := model.DefaultOptimizer().ReferenceStep(c, wantW, gg, wantM, wantV, 4, lr)
	require.Greater(t, norm, 1.0, "the test must clip")
	assert.InDelta(t, norm, res.GradNorm, 1e-5*norm)
	assert.InDelta(t, model.DefaultOptimizer().ClipFactor(norm), res.Clip, 1e-6)
	w1, err := tr.Weights(ctx)
	require.NoError(t, err)
	st, err := tr.OptimizerState(ctx)
	require.NoError(t, err)
	for i, p := range ps {
		assert.Less(t, relErr(to64(w1.Tensors[i]), wantW[i]), 1e-6, "weights %s", p.Name)
		assert.Less(t, relErr(to64(st.M[i]), wantM[i]), 1e-6, "m %s", p.Name)
		assert.Less(t, relErr(to64(st.V[i]), wantV[i]), 1e-6, "v %s", p.Name)
	}
}

// TestStepIsGradientsThenAdamW checks a whole Step: the loss, then the
// update of the device's gradients at the schedule's learning rate.
func TestStepIsGradientsThenAdamW(t *testing.T) {
	c := tinyConfig(t)
	const tokens = 256
	tr := newTestTrainer(t, c, tokens, 13)
	ctx := context.Background()
	b := realBatch(t, tokens, 100)
	w0, err := tr.Weights(ctx)
	require.NoError(t, err)
	ref, err := model.NewReference(w0)
	require.NoError(t, err)
	wantLoss, err := ref.Loss(b)
	require.NoError(t, err)
	const lr = 3e-3
	res, err := tr.Step(ctx, b, lr)
	require.NoError(t, err)
	assert.InDelta(t, wantLoss, res.Loss, 1e-5*wantLoss)
	grads, err := tr.download(ctx, tr.w.grads)
	require.NoError(t, err)
	w, g := to64s(w0.Tensors), to64s(grads)
	m, v := zeros(c), zeros(c)
	norm := model.DefaultOptimizer().ReferenceStep(c, w, g, m, v, 1, lr)
	assert.InDelta(t, norm, res.GradNorm, 1e-5*norm)
	w1, err := tr.Weights(ctx)
	require.NoError(t, err)
	for i, p := range c.Params() {
		assert.Less(t, relErr(to64(w1.Tensors[i]), w[i]), 1e-5, p.Name)
	}
	// The wrong number of tokens is an error, and changes nothing.
	_, err = tr.Step(ctx, realBatch(t, tokens-1), lr)
	assert.ErrorIs(t, err, model.ErrBatch)
	assert.Equal(t, 1, tr.Steps())
}

func to64s(x [][]float32) [][]float64 {
	out := make([][]float64, len(x))
	for i, t := range x {
		out[i] = to64(t)
	}
	return out
}

func zeros(c model.Config) [][]float64 {
	ps := c.Params()
	out := make([][]float64, len(ps))
	for i, p := range ps {
		out[i] = make([]float64, p.Size())
	}
	return out
}

// TestEvaluateAndLogits: a batch shorter than the trainer's steps (padded
// with documents that have no target) evaluates to the reference's loss,
// and its logits are the reference's.
func TestEvaluateAndLogits(t *testing.T) {
	c := tinyConfig(t)
	tr := newTestTrainer(t, c, 256, 14)
	ctx := context.Background()
	b := realBatch(t, 150, 40, 70)
	w, err := tr.Weights(ctx)
	require.NoError(t, err)
	ref, err := model.NewReference(w)
	require.NoError(t, err)
	want, err := ref.Loss(b)
	require.NoError(t, err)
	sum, n, err := tr.Evaluate(ctx, b)
	require.NoError(t, err)
	assert.Equal(t, b.NumTargets(), n)
	assert.InDelta(t, want, sum/float64(n), 1e-5*want)

	logits, err := tr.Logits(ctx, b, len(b.Tokens))
	require.NoError(t, err)
	wantLogits, err := ref.Logits(b)
	require.NoError(t, err)
	assert.Less(t, relErr(to64(logits), wantLogits), 1e-5)
	assert.Equal(t, 0, tr.Steps(), "evaluation trains nothing")

	_, _, err = tr.Evaluate(ctx, realBatch(t, 300))
	assert.ErrorIs(t, err, model.ErrBatch, "longer than the trainer's steps")
	_, err = tr.Logits(ctx, b, 151)
	assert.Error(t, err)
}
