package train

import (
	"context"
	"math"
	"testing"

	"github.com/coreattn/coreattn/corpus"
	"github.com/coreattn/coreattn/model"
	"github.com/stretchr/testify/require"
)

// stringsBatches packs n batches of tokens tokens from the strings
// package (documents cut at 2048 bytes).
func stringsBatches(t *testing.T, tokens, n int) []model.Batch {
	t.Helper()
	p, err := corpus.NewPacker(goPackage(t, "strings").Train, tokens, 3)
	require.NoError(t, err)
	out := make([]model.Batch, n)
	for i := range out {
		out[i] = toBatch(p.Next())
	}
	return out
}

// TestSubmitIsStep trains tiny twice from the same weights on the same
// batches: one step at a time with Step, and with Submit running ahead of
// Wait (two steps pending, a third Submit that must first collect the
// oldest, an Evaluate while a step is pending). Losses, gradient norms,
// the evaluation and the final weights must be the same bits.
func TestSubmitIsStep(t *testing.T) {
	ctx := context.Background()
	c := tinyConfig(t)
	const tokens, steps = 256, 6
	batches := stringsBatches(t, tokens, steps+1)
	lr := func(step int) float64 { return 3e-3 * float64(step) / steps }

	ref := newTestTrainer(t, c, tokens, 5)
	var want []Result
	var wantEval float64
	for i := range steps {
		res, err := ref.Step(ctx, batches[i], lr(i+1))
		require.NoError(t, err)
		want = append(want, res)
		if i == 2 {
			wantEval, _, err = ref.Evaluate(ctx, batches[steps])
			require.NoError(t, err)
		}
	}

	tr := newTestTrainer(t, c, tokens, 5)
	var ps []*Pending
	submit := func() {
		i := len(ps)
		p, err := tr.Submit(ctx, batches[i], lr(i+1))
		require.NoError(t, err)
		ps = append(ps, p)
		require.Equal(t, i+1, tr.Steps(), "Steps counts submitted steps")
	}
	submit()
	submit()
	submit() // a third: collects step 1 first
	got, _, err := tr.Evaluate(ctx, batches[steps])
	require.NoError(t, err)
	require.Equal(t, wantEval, got, "evaluation after three submitted steps")
	submit()
	submit()
	submit()
	for i := len(ps) - 1; i >= 0; i-- { // the last first: collects them all
		res, err := ps[i].Wait(ctx)
		require.NoError(t, err)
		require.False(t, math.IsNaN(res.Loss))
		require.Equal(t, want[i], res, "step %d", i+1)
	}
	wr, err := ref.Weights(ctx)
	require.NoError(t, err)
	wt, err := tr.Weights(ctx)
	require.NoError(t, err)
	require.Equal(t, wr.Tensors, wt.Tensors)
}

// TestWarmStepAllocatesNothing: once two steps have run on two batches,
// steps on batches of no larger shapes create no device buffer, whether
// one at a time or submitted ahead.
func TestWarmStepAllocatesNothing(t *testing.T) {
	ctx := context.Background()
	c := tinyConfig(t)
	const tokens = 256
	batches := stringsBatches(t, tokens, 2)
	tr := newTestTrainer(t, c, tokens, 5)
	for _, b := range batches {
		_, err := tr.Step(ctx, b, 1e-3)
		require.NoError(t, err)
	}
	before, bytes := testDev.BuffersCreated(), tr.DeviceBytes()
	for _, b := range batches {
		_, err := tr.Step(ctx, b, 1e-3)
		require.NoError(t, err)
	}
	p0, err := tr.Submit(ctx, batches[0], 1e-3)
	require.NoError(t, err)
	p1, err := tr.Submit(ctx, batches[1], 1e-3)
	require.NoError(t, err)
	for _, p := range []*Pending{p0, p1} {
		_, err := p.Wait(ctx)
		require.NoError(t, err)
	}
	require.Equal(t, before, testDev.BuffersCreated(), "device buffers created by warm steps")
	require.Equal(t, bytes, tr.DeviceBytes())
}
