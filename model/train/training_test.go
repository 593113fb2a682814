package train

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/coreattn/coreattn/corpus"
	"github.com/coreattn/coreattn/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// goPackage loads one directory of the Go distribution as a small corpus
// of real text.
func goPackage(t testing.TB, dir string) *corpus.Corpus {
	t.Helper()
	ctx := context.Background()
	root, _, err := corpus.GoSrc(ctx)
	require.NoError(t, err)
	c, err := corpus.Load(ctx, filepath.Join(root, dir), corpus.Options{Exts: []string{".go"}, MaxDoc: 2048})
	require.NoError(t, err)
	return c
}

func toBatch(b corpus.Batch) model.Batch {
	return model.Batch{Tokens: b.Tokens, CuSeqlens: b.CuSeqlens}
}

// losses trains tr for steps steps from the packer's position, returning
// each step's loss.
func losses(t *testing.T, tr *Trainer, p *corpus.Packer, s model.Schedule, steps int) []float64 {
	t.Helper()
	var out []float64
	for range steps {
		res, err := tr.Step(context.Background(), toBatch(p.Next()), s.At(tr.Steps()+1))
		require.NoError(t, err)
		require.False(t, math.IsNaN(res.Loss))
		out = append(out, res.Loss)
	}
	return out
}

// TestTinyLearns trains tiny for 40 steps of 256 tokens on the strings
// package: the mean loss of the last 5 steps must be at least 1.5 nats
// below the first step's (ln 256 = 5.55 at initialisation).
func TestTinyLearns(t *testing.T) {
	c := tinyConfig(t)
	const tokens, steps = 256, 40
	tr := newTestTrainer(t, c, tokens, 1)
	p, err := corpus.NewPacker(goPackage(t, "strings").Train, tokens, 1)
	require.NoError(t, err)
	ls := losses(t, tr, p, model.NewSchedule(model.DefaultLR(c), steps), steps)
	last := 0.0
	for _, l := range ls[steps-5:] {
		last += l / 5
	}
	t.Logf("loss %.3f -> %.3f (last 5 steps)", ls[0], last)
	assert.InDelta(t, math.Log(model.Vocab), ls[0], 0.1)
	assert.Less(t, last, ls[0]-1.5)
}

// TestResumeIsBitIdentical: 3 steps, a save of the weights, the moments
// and the packer's position, a fresh trainer restored from them and 3
// more steps give the same bits as 6 uninterrupted steps.
func TestResumeIsBitIdentical(t *testing.T) {
	c := tinyConfig(t)
	const tokens = 256
	docs := goPackage(t, "unicode/utf8").Train
	s := model.NewSchedule(3e-3, 6)
	ctx := context.Background()

	whole := newTestTrainer(t, c, tokens, 5)
	p, err := corpus.NewPacker(docs, tokens, 9)
	require.NoError(t, err)
	want := losses(t, whole, p, s, 6)
	wantW, err := whole.Weights(ctx)
	require.NoError(t, err)

	first := newTestTrainer(t, c, tokens, 5)
	p, err = corpus.NewPacker(docs, tokens, 9)
	require.NoError(t, err)
	got := losses(t, first, p, s, 3)
	w, err := first.Weights(ctx)
	require.NoError(t, err)
	st, err := first.OptimizerState(ctx)
	require.NoError(t, err)
	pos := p.Position()
	first.Close()

	second := newTestTrainer(t, c, tokens, 99) // other weights, then restored
	require.NoError(t, second.SetWeights(w))
	require.NoError(t, second.SetOptimizerState(st))
	p, err = corpus.NewPacker(docs, tokens, 9)
	require.NoError(t, err)
	require.NoError(t, p.SetPosition(pos))
	got = append(got, losses(t, second, p, s, 3)...)
	assert.Equal(t, want, got, "losses")
	gotW, err := second.Weights(ctx)
	require.NoError(t, err)
	assert.Equal(t, wantW.Tensors, gotW.Tensors, "weights")
}
