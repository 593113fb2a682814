package worklist

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/internal/batchtest"
)

// TestForwardCoversEveryKeyOnce checks the split-KV work list: every query
// block's keys 0..End-1 are computed exactly once, by one whole tile or by
// the consecutive slots of one combine group.
func TestForwardCoversEveryKeyOnce(t *testing.T) {
	cases := []struct {
		name  string
		args  *attention.Args
		piece int
	}{
		{"no split", caArgs(), 0},
		{"pieces of one tile", caArgs(), 64},
		{"pieces of three tiles", caArgs(), 192},
		{"non-causal", &attention.Args{CuSeqlensQ: []int32{0, 70, 75}, CuSeqlensK: []int32{0, 300, 301}, NumHeadsQ: 2, NumHeadsKV: 1, HeadDim: 8}, 128},
		{"empty segments", &attention.Args{CuSeqlensQ: []int32{0, 0, 9, 9}, CuSeqlensK: []int32{0, 5, 505, 505}, NumHeadsQ: 1, NumHeadsKV: 1, HeadDim: 8, Causal: true}, 64},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.NoError(t, c.args.Validate())
			const br, bc = 64, 64
			p := NewForward(c.args, br, bc, c.piece)
			type key struct{ b, q0 int }
			covered := map[key][]int{} // keys seen per block
			slots := map[uint32]key{}
			tiles := p.Meta[p.TilesOff:p.CombOff]
			require.Len(t, tiles, 4*p.Tiles)
			for i := 0; i < len(tiles); i += 4 {
				k := key{int(tiles[i]), int(tiles[i+1])}
				k0, slot := int(tiles[i+2]), tiles[i+3]
				if slot != NoSplit {
					_, dup := slots[slot]
					require.False(t, dup, "slot %d used twice", slot)
					slots[slot] = k
				}
				covered[k] = append(covered[k], k0)
			}
			require.Len(t, slots, p.Slots)
			groups := p.Meta[p.CombOff:]
			require.Len(t, groups, 4*p.Groups)
			for i := 0; i < len(groups); i += 4 {
				k := key{int(groups[i]), int(groups[i+1])}
				for s := groups[i+2]; s < groups[i+2]+groups[i+3]; s++ {
					require.Equal(t, k, slots[s], "slot %d", s)
				}
			}
			for _, blk := range Blocks(c.args, br) {
				k0s := covered[key{blk.Seg, blk.Q0}]
				if c.piece == 0 || blk.End <= c.piece {
					require.Equal(t, []int{0}, k0s, "block %+v is computed whole", blk)
					continue
				}
				require.Len(t, k0s, (blk.End+c.piece-1)/c.piece, "block %+v", blk)
				require.ElementsMatch(t, k0s, multiples(c.piece, len(k0s)), "block %+v", blk)
			}
		})
	}
}

// TestForwardRandomBatches: on random varlen batches (empty segments,
// q_len <= k_len, causal or not) the tiles cover each block's keys and are
// ordered heaviest first.
func TestForwardRandomBatches(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		a := batchtest.Args(r, r.IntN(2) == 0, attention.Float32)
		const br, bc = 64, 32
		for _, piece := range []int{0, 64, 96} {
			p := NewForward(a, br, bc, piece)
			// (segment, q0) -> keys covered, from the tile table.
			covered := map[[2]int]int{}
			prev := 1 << 30
			for i := range p.Tiles {
				e := p.Meta[p.TilesOff+4*i:]
				b, q0, k0, slot := int(e[0]), int(e[1]), int(e[2]), e[3]
				qLen, kLen := a.Segment(b)
				end := kLen
				if a.Causal {
					end = max(0, min(kLen, min(q0+br, qLen)+kLen-qLen))
				}
				keys := end - k0
				if slot != NoSplit {
					keys = min(piece, end-k0)
				}
				covered[[2]int{b, q0}] += keys
				work := (keys + bc - 1) / bc
				assert.LessOrEqual(t, work, prev, "tiles are ordered heaviest first")
				prev = work
			}
			for _, blk := range Blocks(a, br) {
				assert.Equal(t, blk.End, covered[[2]int{blk.Seg, blk.Q0}], "block %+v", blk)
			}
		}
	}
}

func TestAutoPiece(t *testing.T) {
	dense := &attention.Args{CuSeqlensQ: []int32{0, 8192}, CuSeqlensK: []int32{0, 8192}, NumHeadsQ: 32, NumHeadsKV: 32, HeadDim: 128, Causal: true}
	require.Zero(t, AutoPiece(Blocks(dense, 64), 32, 64), "a long dense sequence has enough blocks")
	few := &attention.Args{CuSeqlensQ: []int32{0, 128, 256}, CuSeqlensK: []int32{0, 16384, 512}, NumHeadsQ: 8, NumHeadsKV: 8, HeadDim: 128, Causal: true}
	piece := AutoPiece(Blocks(few, 64), 8, 64)
	require.Equal(t, MinPieceSteps*64, piece, "two shards, one with a long prefix: split it")
	many := &attention.Args{CuSeqlensQ: []int32{0, 128, 1280}, CuSeqlensK: []int32{0, 16384, 17536}, NumHeadsQ: 64, NumHeadsKV: 8, HeadDim: 128, Causal: true}
	require.Zero(t, AutoPiece(Blocks(many, 64), 64, 64), "enough workgroups to balance without splitting")
}

// TestChooseForward: an asked piece rounds up to whole tiles, a negative
// one and CPU adapters never split on their own, and the piece doubles
// until the partial results fit.
func TestChooseForward(t *testing.T) {
	few := &attention.Args{CuSeqlensQ: []int32{0, 128, 256}, CuSeqlensK: []int32{0, 16384, 512}, NumHeadsQ: 8, NumHeadsKV: 8, HeadDim: 128, Causal: true}
	const br, bc = 64, 64
	assert.Equal(t, 128, ChooseForward(few, br, bc, 100, false, 0).Piece, "rounded up to whole tiles")
	assert.Zero(t, ChooseForward(few, br, bc, -1, false, 0).Piece, "never split")
	assert.Zero(t, ChooseForward(few, br, bc, 0, true, 0).Piece, "CPU adapters do not split on their own")
	assert.Equal(t, MinPieceSteps*bc, ChooseForward(few, br, bc, 0, false, 0).Piece, "the automatic piece")
	whole := NewForward(few, br, bc, 128)
	limit := uint64(4*whole.PartFloats(8, br, 128)) - 1
	got := ChooseForward(few, br, bc, 128, false, limit)
	assert.Greater(t, got.Piece, 128, "doubled to fit")
	assert.LessOrEqual(t, uint64(4*got.PartFloats(8, br, 128)), limit)
}

func multiples(step, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i * step
	}
	return out
}

// caArgs is a small batch of CA-task shards: short query shards over long
// prefixes, the shape split-KV is for.
func caArgs() *attention.Args {
	return &attention.Args{
		CuSeqlensQ: []int32{0, 64, 192, 200, 456},
		CuSeqlensK: []int32{0, 1000, 1128, 1136, 3200},
		NumHeadsQ:  4, NumHeadsKV: 2, HeadDim: 16, Causal: true,
	}
}
