package train

import (
	"context"
	"math"
	"testing"

	"github.com/coreattn/coreattn/attention/gpu"
	"github.com/coreattn/coreattn/corpus"
	"github.com/coreattn/coreattn/gemm"
	"github.com/coreattn/coreattn/model"
	"github.com/coreattn/coreattn/wgpu"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// precisionRun trains c from seed 5 for steps steps of tokens tokens on
// the unicode/utf8 package under p, returning each step's result and the
// final weights.
func precisionRun(t *testing.T, c model.Config, p Precision, tokens, steps int) ([]Result, *model.Weights) {
	t.Helper()
	tr, err := New(testDev, c, Options{Tokens: tokens, Precision: p})
	require.NoError(t, err)
	t.Cleanup(tr.Close)
	w, err := model.Init(c, 5)
	require.NoError(t, err)
	require.NoError(t, tr.SetWeights(w))
	pk, err := corpus.NewPacker(goPackage(t, "unicode/utf8").Train, tokens, 9)
	require.NoError(t, err)
	s := model.NewSchedule(3e-3, steps)
	var out []Result
	for range steps {
		res, err := tr.Step(context.Background(), toBatch(pk.Next()), s.At(tr.Steps()+1))
		require.NoError(t, err)
		out = append(out, res)
	}
	got, err := tr.Weights(context.Background())
	require.NoError(t, err)
	return out, got
}

// TestLossScaleIsUndone: the loss scale multiplies every gradient and the
// norm and the update divide it out, so a power of two changes no bit of
// the losses, gradient norms or weights, and another scale only rounding.
// A scale left in (or divided twice) moves the norm by the scale itself.
func TestLossScaleIsUndone(t *testing.T) {
	c := tinyConfig(t)
	const tokens, steps = 256, 4
	want, wantW := precisionRun(t, c, Precision{}, tokens, steps)
	for _, tt := range []struct {
		name  string
		scale float64
		exact bool
	}{
		{"power of two", 4096, true},
		{"tokens", tokens, true},
		{"not a power of two", 1000, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, gotW := precisionRun(t, c, Precision{LossScale: tt.scale}, tokens, steps)
			for i := range want {
				if tt.exact {
					assert.Equal(t, want[i].Loss, got[i].Loss, "step %d loss", i+1)
					assert.Equal(t, want[i].GradNorm, got[i].GradNorm, "step %d gradient norm", i+1)
					continue
				}
				assert.InEpsilon(t, want[i].Loss, got[i].Loss, 1e-5, "step %d loss", i+1)
				assert.InEpsilon(t, want[i].GradNorm, got[i].GradNorm, 1e-4, "step %d gradient norm", i+1)
			}
			if tt.exact {
				assert.Equal(t, wantW.Tensors, gotW.Tensors, "weights")
			}
		})
	}
}

// TestPrecisionErrors: a bad loss scale is an error naming it, before
// anything is allocated; tensor cores on an adapter without them are an
// error wrapping gpu.ErrNoTensorCores.
func TestPrecisionErrors(t *testing.T) {
	c := tinyConfig(t)
	for _, s := range []float64{-1, math.NaN(), math.Inf(1)} {
		_, err := New(testDev, c, Options{Tokens: 256, Precision: Precision{LossScale: s}})
		require.ErrorIs(t, err, ErrPrecision, "loss scale %v", s)
		assert.Contains(t, err.Error(), "loss scale")
		_, err = NewCluster([]*wgpu.Device{testDev}, c, ClusterOptions{Ranks: 2, TokensPerRank: 256, Precision: Precision{LossScale: s}})
		require.ErrorIs(t, err, ErrPrecision, "cluster, loss scale %v", s)
	}
	if _, err := gpu.TensorCoreDevice(testDev.Info()); err == nil {
		t.Skip("the adapter has tensor cores")
	}
	c.HeadDim = 32
	_, err := New(testDev, c, Options{Tokens: 256, Precision: Precision{TensorCores: true}})
	require.ErrorIs(t, err, gpu.ErrNoTensorCores)
	require.ErrorIs(t, err, gemm.ErrNoTensorCores)
	_, err = NewCluster([]*wgpu.Device{testDev}, c, ClusterOptions{Ranks: 2, TokensPerRank: 256, Precision: Precision{TensorCores: true}})
	require.ErrorIs(t, err, gpu.ErrNoTensorCores)
}

// TestLossScaleDefault: 1 on FMA; with tensor cores the largest power of
// two not above the tokens.
func TestLossScaleDefault(t *testing.T) {
	for _, tt := range []struct {
		p      Precision
		tokens int
		want   float64
	}{
		{Precision{}, 16384, 1},
		{Precision{TensorCores: true}, 16384, 16384},
		{Precision{TensorCores: true}, 3000, 2048},
		{Precision{TensorCores: true, LossScale: 8}, 16384, 8},
		{Precision{LossScale: 0.5}, 16384, 0.5},
	} {
		got, err := tt.p.lossScale(tt.tokens)
		require.NoError(t, err)
		assert.Equal(t, tt.want, got, "%+v, %d tokens", tt.p, tt.tokens)
	}
}

// TestTensorCoresTrain: where the adapter has subgroup matrices, training
// with f16 operands follows f32 training from the same weights and
// batches: the first loss to 2e-3 (f16 rounds each operand by up to
// 2^-11), every later loss to 2%, and it learns as much.
func TestTensorCoresTrain(t *testing.T) {
	if _, err := gpu.TensorCoreDevice(testDev.Info()); err != nil {
		t.Skip(err)
	}
	c := tinyConfig(t)
	c.HeadDim = 32 // the tensor-core attention's smallest head
	const tokens, steps = 1024, 30
	want, _ := precisionRun(t, c, Precision{}, tokens, steps)
	got, _ := precisionRun(t, c, Precision{TensorCores: true}, tokens, steps)
	// f16 operands round: bit-equal losses would mean f32 ran twice.
	require.NotEqual(t, want[steps-1].Loss, got[steps-1].Loss, "the tensor-core run gave f32's bits")
	assert.InEpsilon(t, want[0].Loss, got[0].Loss, 2e-3, "first loss")
	assert.InEpsilon(t, want[0].GradNorm, got[0].GradNorm, 2e-2, "first gradient norm")
	for i := range want {
		assert.InEpsilon(t, want[i].Loss, got[i].Loss, 2e-2, "step %d loss", i+1)
	}
	assert.Less(t, got[steps-1].Loss, got[0].Loss-1, "tensor cores: the loss falls")
	t.Logf("loss f32 %.6f -> %.6f, tensor cores %.6f -> %.6f; first gradient norm %.6g and %.6g", want[0].Loss, want[steps-1].Loss, got[0].Loss, got[steps-1].Loss, want[0].GradNorm, got[0].GradNorm)
}
