package sim

import (
	"math/rand/v2"
	"testing"

	"github.com/coreattn/coreattn/disagg"
	"github.com/coreattn/coreattn/internal/batchtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHeadTailShards(t *testing.T) {
	for _, c := range [][2]int{{1000, 4}, {7, 4}, {0, 3}, {8, 4}, {1 << 20, 512}} {
		n, parts := c[0], c[1]
		sh := HeadTailShards(n, parts)
		require.Len(t, sh, parts)
		covered := make([]int, n)
		var tot int64
		for _, pair := range sh {
			for _, r := range pair {
				for p := r.Start; p < r.End; p++ {
					covered[p]++
				}
				tot += disagg.CausalPairs(r.End-r.Start, r.End)
			}
		}
		for p, k := range covered {
			require.Equal(t, 1, k, "n=%d parts=%d token %d", n, parts, p)
		}
		assert.Equal(t, disagg.CausalPairs(n, n), tot)
		if n%(2*parts) == 0 && n > 0 {
			// Equal shards: every part does the same work.
			for _, pair := range sh {
				assert.Equal(t, disagg.CausalPairs(sh[0][0].End-sh[0][0].Start, sh[0][0].End)+disagg.CausalPairs(sh[0][1].End-sh[0][1].Start, sh[0][1].End),
					disagg.CausalPairs(pair[0].End-pair[0].Start, pair[0].End)+disagg.CausalPairs(pair[1].End-pair[1].Start, pair[1].End))
			}
		}
	}
	assert.Nil(t, HeadTailShards(10, 0))
}

func TestPerDocCP(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	const servers, tokens = 8, 4096
	lens := batchtest.Lengths(rng, servers, tokens)
	cost := flopCost(t)
	opt := disagg.Options{Arch: disagg.Llama8B}
	var want float64
	for _, n := range lens {
		want += cost.TaskTime(n, n, disagg.PassTraining)
	}
	kIn, kOut := disagg.Llama8B.KVRowBytes(disagg.PassTraining)
	for _, degree := range []int{0, 8, 4, 1} {
		st, err := PerDocCP(lens, servers, tokens, degree, []disagg.CostModel{cost}, opt)
		require.NoError(t, err)
		var load float64
		var toks int64
		for s := range servers {
			load += st.Load[s]
			toks += st.Tokens[s]
		}
		assert.InEpsilon(t, want, load, 1e-9, "attention conserved (degree %d)", degree)
		assert.Equal(t, int64(sumLens(lens)), toks)
		assert.Equal(t, st.Bytes(), sumI64(st.BytesOut), "every byte received was sent (degree %d)", degree)
		if degree == 0 || degree == 8 {
			// One group: each document with n tokens is all-gathered by
			// min(8, n) holders, each missing the rows it does not own.
			var b int64
			for _, n := range lens {
				h := int64(min(8, n))
				b += (h - 1) * int64(n) * (kIn + kOut)
			}
			assert.Equal(t, b, st.Bytes())
			assert.Less(t, st.Imbalance(), 1.05)
			assert.Less(t, st.MemoryImbalance(), 1.05)
		}
	}
	_, err := PerDocCP(lens, servers, tokens, 3, []disagg.CostModel{cost}, opt)
	assert.ErrorContains(t, err, "degree 3 must be positive and divide servers 8")
	_, err = PerDocCP([]int{tokens * servers * 2}, servers, tokens, 0, []disagg.CostModel{cost}, opt)
	assert.ErrorContains(t, err, "exceed")
}

func TestWLB(t *testing.T) {
	cost := flopCost(t)
	opt := disagg.Options{Arch: disagg.Llama8B}
	// One long document and many short ones: WLB balances attention by
	// giving the servers of short documents far more tokens.
	lens := []int{4000}
	for range 768 {
		lens = append(lens, 250)
	}
	st, err := WLB(lens, 4, 65536, []disagg.CostModel{cost}, opt, 0)
	require.NoError(t, err)
	assert.Equal(t, int64(sumLens(lens)), sumI64(st.Tokens))
	assert.Equal(t, int64(4000), st.Tokens[0], "the long document alone on a server")
	assert.Greater(t, st.MemoryImbalance(), 1.25, "unequal tokens are WLB's price")
	assert.Less(t, st.Imbalance(), 1.05)
	pk, err := disagg.Place(lens, 4, 65536)
	require.NoError(t, err)
	packed, err := disagg.Pack(pk, []disagg.CostModel{cost}, opt)
	require.NoError(t, err)
	assert.Greater(t, packed.Imbalance(), 1.5)

	capped, err := WLB(lens, 4, 65536, []disagg.CostModel{cost}, opt, 50000)
	require.NoError(t, err)
	for s, n := range capped.Tokens {
		assert.LessOrEqual(t, n, int64(50000), "server %d", s)
	}
	assert.Greater(t, capped.Imbalance(), st.Imbalance(), "the cap costs balance")

	// A cap nothing fits under: each piece goes to the server with the
	// fewest tokens.
	tight, err := WLB([]int{100, 100, 100}, 2, 100, []disagg.CostModel{cost}, opt, 50)
	require.NoError(t, err)
	assert.Equal(t, []int64{200, 100}, tight.Tokens)

	// A document longer than a server's budget is cut, and its later pieces
	// fetch their prefix from wherever the earlier pieces went.
	long, err := WLB([]int{10000, 100, 100}, 3, 4096, []disagg.CostModel{cost}, opt, 0)
	require.NoError(t, err)
	assert.Positive(t, long.Bytes())
	assert.Equal(t, long.Bytes(), sumI64(long.BytesOut))

	_, err = WLB([]int{5, 0}, 2, 8, []disagg.CostModel{cost}, opt, 0)
	assert.ErrorContains(t, err, "document 1 has length 0")
	_, err = WLB([]int{5}, 0, 8, []disagg.CostModel{cost}, opt, 0)
	assert.ErrorContains(t, err, "servers 0")
	_, err = WLB([]int{5}, 1, 8, []disagg.CostModel{cost}, opt, -1)
	assert.ErrorContains(t, err, "cap -1")
}

func sumLens(v []int) int {
	s := 0
	for _, x := range v {
		s += x
	}
	return s
}

func sumI64(v []int64) int64 {
	var s int64
	for _, x := range v {
		s += x
	}
	return s
}
