package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestShardLens(t *testing.T) {
	tests := []struct {
		in   string
		doc  int
		want []int
		err  string
	}{
		{in: "", doc: 64, want: []int{16, 32, 64}},
		{in: "", doc: 100, want: []int{16, 32, 64}},
		{in: "8, 100", doc: 100, want: []int{8, 100}},
		{in: "0", doc: 64, err: `"0" is not a shard length in [1, 64]`},
		{in: "65", doc: 64, err: `"65"`},
		{in: "16,x", doc: 64, err: `"x"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := shardLens(tt.in, tt.doc)
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
		l        int
		maxBytes uint64
	}{
		{"uncapped", 32, 1 << 30},
		{"whole document", 300, 1 << 30},
		{"capped", 16, 2000 * rowBytes},
		{"cap below one prefix", 64, 10 * rowBytes},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, n := shardBatch(dense, tt.l, tt.maxBytes, 1)
			a := s.args
			require.NoError(t, a.Validate())
			require.Equal(t, n, a.Batch())
			require.Positive(t, n)
			for b := range a.Batch() {
				q := int(a.CuSeqlensQ[b+1] - a.CuSeqlensQ[b])
				kv := int(a.CuSeqlensK[b+1] - a.CuSeqlensK[b])
				require.True(t, q == tt.l || (kv == 300 && q == 300%tt.l), "task %d: q_len %d", b, q)
				require.Zero(t, (kv-q)%tt.l, "task %d: the prefix must end on a shard boundary", b)
				require.LessOrEqual(t, kv, 300)
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
