package sim

import (
	"encoding/json"
	"os"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recipeRef is testdata/distca/recipe_ref.json: numbers computed by NumPy and
// by DistCA's own recipe functions (see scripts/distca_recipe_ref.py).
type recipeRef struct {
	SeedSequence []string  `json:"seed_sequence_42_uint64x4"`
	Raw          []string  `json:"pcg64_42_raw"`
	Random       []float64 `json:"random_42"`
	Choice       []struct {
		Pop, K      int
		First, Last []int64
		Sum         int64
		Weighted    int64
	} `json:"choice_42"`
	Recipes []struct {
		Dist         string  `json:"dist"`
		Context      int     `json:"context"`
		Ratio        float64 `json:"change_long_doc_ratio"`
		NumDocs      int     `json:"num_docs"`
		DocsFirst    []int   `json:"docs_first"`
		DocsSum      int64   `json:"docs_sum"`
		NumBatches   int     `json:"num_batches"`
		BatchesFirst [][]int `json:"batches_first"`
		LastBatch    []int   `json:"last_batch"`
		DocCounts    []int   `json:"batch_doc_counts"`
	} `json:"recipes"`
}

func loadRecipeRef(t *testing.T) recipeRef {
	t.Helper()
	b, err := os.ReadFile("../../testdata/distca/recipe_ref.json")
	require.NoError(t, err)
	var ref recipeRef
	require.NoError(t, json.Unmarshal(b, &ref))
	return ref
}

func parseU64s(t *testing.T, s []string) []uint64 {
	out := make([]uint64, len(s))
	for i, x := range s {
		v, err := strconv.ParseUint(x, 10, 64)
		require.NoError(t, err)
		out[i] = v
	}
	return out
}

func TestNumpyRNGMatchesNumpy(t *testing.T) {
	ref := loadRecipeRef(t)
	assert.Equal(t, parseU64s(t, ref.SeedSequence), seedSequenceState(42, 4))
	r := newNumpyRNG(42)
	for i, want := range parseU64s(t, ref.Raw) {
		assert.Equal(t, want, r.next64(), "raw output %d", i)
	}
	r = newNumpyRNG(42)
	for i, want := range ref.Random {
		assert.Equal(t, want, r.Random(), "random() %d", i)
	}
	for _, c := range ref.Choice {
		idx, err := newNumpyRNG(42).ChoiceIndices(c.Pop, c.K)
		require.NoError(t, err)
		require.Len(t, idx, c.K)
		n := min(len(c.First), c.K)
		assert.Equal(t, c.First, idx[:n], "choice(%d, %d) head", c.Pop, c.K)
		assert.Equal(t, c.Last, idx[c.K-len(c.Last):], "choice(%d, %d) tail", c.Pop, c.K)
		var sum, w int64
		for i, x := range idx {
			sum += x
			w += x * int64(i%7+1)
		}
		assert.Equal(t, c.Sum, sum)
		assert.Equal(t, c.Weighted, w)
	}
	_, err := newNumpyRNG(1).ChoiceIndices(3, 4)
	assert.Error(t, err)
}
