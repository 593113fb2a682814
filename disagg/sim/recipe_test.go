package sim

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/disagg/doclens"
)

// TestRecipeMatchesDistCA pins the recipe against the batches DistCA's own
// functions produced (testdata/distca/recipe_ref.json, written by
// scripts/distca_recipe_ref.py with NumPy from DistCA's samples.py).
func TestRecipeMatchesDistCA(t *testing.T) {
	ref := loadRecipeRef(t)
	require.NotEmpty(t, ref.Recipes)
	for _, want := range ref.Recipes {
		lens, err := doclens.Builtin(want.Dist)
		require.NoError(t, err)
		r := DefaultRecipe(want.Dist, want.Context)
		r.ChangeLongRatio = want.Ratio
		docs, err := r.Documents(lens)
		require.NoError(t, err)
		assert.Len(t, docs, want.NumDocs, "%s %d", want.Dist, want.Context)
		assert.Equal(t, want.DocsFirst, docs[:len(want.DocsFirst)], "%s %d: first documents", want.Dist, want.Context)
		var s int64
		for _, d := range docs {
			s += int64(d)
		}
		assert.Equal(t, want.DocsSum, s)

		b, err := NewBatcher(lens, r)
		require.NoError(t, err)
		var got [][]int
		for {
			batch, ok := b.Next()
			if !ok {
				break
			}
			got = append(got, batch)
		}
		require.Len(t, got, want.NumBatches, "%s %d: batches", want.Dist, want.Context)
		assert.Equal(t, want.BatchesFirst, got[:len(want.BatchesFirst)])
		assert.Equal(t, want.LastBatch, got[len(got)-1])
		counts := make([]int, len(got))
		for i, g := range got {
			counts[i] = len(g)
			for _, d := range g {
				assert.LessOrEqual(t, d, want.Context, "no document is longer than the context")
			}
		}
		assert.Equal(t, want.DocCounts, counts)
	}
}

func TestBatcherFull(t *testing.T) {
	lens, err := doclens.Builtin(DistPretrain)
	require.NoError(t, err)
	r := DefaultRecipe(DistPretrain, 1<<20)
	b, err := NewBatcher(lens, r)
	require.NoError(t, err)
	bs, err := b.Full(3)
	require.NoError(t, err)
	for _, x := range bs {
		assert.Equal(t, 1<<20, sum(x))
	}
	_, err = b.Full(100000)
	assert.ErrorIs(t, err, ErrRecipeExhausted)
}

func TestRecipeValidate(t *testing.T) {
	cases := []struct {
		mutate func(*Recipe)
		want   string
	}{
		{func(r *Recipe) { r.Dist = "x" }, "distribution"},
		{func(r *Recipe) { r.Context = 0 }, "context 0"},
		{func(r *Recipe) { r.Context = MaxContext + 1 }, "context"},
		{func(r *Recipe) { r.LongThreshold = -1 }, "long threshold -1"},
		{func(r *Recipe) { r.Upsample = 0 }, "upsampling 0"},
		{func(r *Recipe) { r.KeepShort = 2 }, "keep-short fraction 2"},
		{func(r *Recipe) { r.SampleSize = -5 }, "sample size -5"},
		{func(r *Recipe) { r.Elongate = -1 }, "elongate factor -1"},
		{func(r *Recipe) { r.ChangeLongRatio = 1.5 }, "change ratio 1.5"},
		{func(r *Recipe) { r.MultipleOf = 0 }, "multiple-of 0"},
	}
	for _, c := range cases {
		r := DefaultRecipe(DistProLong, 65536)
		c.mutate(&r)
		_, err := r.Documents([]int{1, 2, 3})
		assert.ErrorContains(t, err, c.want)
	}
	r := DefaultRecipe(DistPretrain, 65536)
	_, err := r.Documents([]int{1, 2, 3})
	assert.ErrorContains(t, err, "sample-size", "10000 draws from 3 documents")
	_, err = r.Documents([]int{1, -2})
	assert.ErrorContains(t, err, "length -2 at index 1")
	assert.Equal(t, 8, DefaultRecipe(DistPretrain, 524288).ElongateFactor())
	assert.Equal(t, 1, DefaultRecipe(DistPretrain, 32768).ElongateFactor())
}
