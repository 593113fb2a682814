package main

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestParseLens checks --lens (shardLens) and --mixed (mixedLens).
func TestParseLens(t *testing.T) {
	tests := []struct {
		flag  string
		parse func(string, int) ([]int, error)
		in    string
		doc   int
		want  []int
		err   string
	}{
		{"lens", shardLens, "", 64, []int{16, 32, 64}, ""},
		{"lens", shardLens, "", 100, []int{16, 32, 64}, ""},
		{"lens", shardLens, "8, 100", 100, []int{8, 100}, ""},
		{"lens", shardLens, "0", 64, nil, `"0" is not a shard length in [1, 64]`},
		{"lens", shardLens, "65", 64, nil, `"65"`},
		{"lens", shardLens, "16,x", 64, nil, `"x"`},
		{"mixed", mixedLens, "none", 64, nil, ""},
		{"mixed", mixedLens, "128-4096", 8192, []int{128, 256, 512, 1024, 2048, 4096}, ""},
		{"mixed", mixedLens, "100-1000", 8192, []int{128, 256, 512}, ""},
		{"mixed", mixedLens, "128-4096", 1024, []int{128, 256, 512, 1024}, ""},
		{"mixed", mixedLens, "4096-128", 8192, nil, `--mixed "4096-128"`},
		{"mixed", mixedLens, "128", 8192, nil, "MIN-MAX"},
		{"mixed", mixedLens, "", 8192, nil, "MIN-MAX"},
		{"mixed", mixedLens, "x-8", 8192, nil, `"x-8"`},
		{"mixed", mixedLens, "512-1000", 8192, nil, "fewer than two"},
	}
	for _, doc := range []int{100, 511, 512, 1024, 8192} {
		lens, err := mixedLens(defaultMixed(doc), doc)
		require.NoError(t, err, "default --mixed for documents of %d", doc)
		if doc < 512 {
			assert.Empty(t, lens, "documents of %d", doc)
		} else {
			assert.Equal(t, []int{128, doc / 2}, []int{lens[0], lens[len(lens)-1]}, "documents of %d", doc)
		}
	}
	for _, tt := range tests {
		t.Run(tt.flag+"="+tt.in, func(t *testing.T) {
			got, err := tt.parse(tt.in, tt.doc)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestShardBatch checks that every task is a shard of a document with its
// causal prefix, and that the batch stops at the dense FLOPs or the K cap.
func TestShardBatch(t *testing.T) {
	dense := denseShape(300, 8, 4).args
	dense.NumHeadsKV = 2
	rowBytes := uint64(2 * 8 * 4)
	for _, tt := range []struct {
		name     string
		lens     []int
		maxBytes uint64
	}{
		{"uncapped", []int{32}, 1 << 30},
		{"whole document", []int{300}, 1 << 30},
		{"capped", []int{16}, 2000 * rowBytes},
		{"cap below one prefix", []int{64}, 10 * rowBytes},
		{"mixed", []int{16, 32, 64, 128}, 1 << 30},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, n := shardBatch(dense, tt.lens, tt.maxBytes, 1)
			a := s.args
			require.NoError(t, a.Validate())
			require.Equal(t, n, a.Batch())
			require.Positive(t, n)
			seen := map[int]bool{}
			for b := range a.Batch() {
				q := int(a.CuSeqlensQ[b+1] - a.CuSeqlensQ[b])
				kv := int(a.CuSeqlensK[b+1] - a.CuSeqlensK[b])
				l := slices.IndexFunc(tt.lens, func(l int) bool { return q == l || (kv == 300 && q == 300%l) })
				require.NotEqual(t, -1, l, "task %d: q_len %d is no shard of %v", b, q, tt.lens)
				require.Zero(t, (kv-q)%tt.lens[l], "task %d: the prefix must end on a shard boundary", b)
				require.LessOrEqual(t, kv, 300)
				seen[tt.lens[l]] = true
			}
			if len(tt.lens) > 1 {
				require.Len(t, seen, len(tt.lens), "a mixed batch draws every length")
			}
			if uint64(a.TotalK())*rowBytes > tt.maxBytes {
				require.Equal(t, 1, n, "only a first shard may exceed the cap")
			}
			if n > 1 && uint64(a.TotalK())*rowBytes <= tt.maxBytes-300*rowBytes {
				require.GreaterOrEqual(t, a.Pairs(), dense.Pairs(), "an uncapped batch reaches the dense FLOPs")
			}
		})
	}
}
