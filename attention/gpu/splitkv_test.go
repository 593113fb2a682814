package gpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/coreattn/coreattn/attention"

	"github.com/stretchr/testify/require"
)

// TestForwardPlanCoversEveryKeyOnce checks the split-KV work list: every
// query block's keys 0..end-1 are computed exactly once, by one whole tile
// or by the consecutive slots of one combine group.
func TestForwardPlanCoversEveryKeyOnce(t *testing.T) {
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
			p := forwardPlan(c.args, br, bc, c.piece)
			type key struct{ b, q0 int }
			covered := map[key][]int{} // keys seen per block
			slots := map[uint32]key{}
			tiles := p.meta[p.tilesOff:p.combOff]
			require.Len(t, tiles, 4*p.ntiles)
			for i := 0; i < len(tiles); i += 4 {
				k := key{int(tiles[i]), int(tiles[i+1])}
				k0, slot := int(tiles[i+2]), tiles[i+3]
				if slot != noSplit {
					_, dup := slots[slot]
					require.False(t, dup, "slot %d used twice", slot)
					slots[slot] = k
				}
				covered[k] = append(covered[k], k0)
			}
			require.Len(t, slots, p.nslots)
			groups := p.meta[p.combOff:]
			require.Len(t, groups, 4*p.ngroups)
			for i := 0; i < len(groups); i += 4 {
				k := key{int(groups[i]), int(groups[i+1])}
				for s := groups[i+2]; s < groups[i+2]+groups[i+3]; s++ {
					require.Equal(t, k, slots[s], "slot %d", s)
				}
			}
			for _, blk := range queryBlocks(c.args, br) {
				k0s := covered[key{blk.b, blk.q0}]
				if c.piece == 0 || blk.end <= c.piece {
					require.Equal(t, []int{0}, k0s, "block %+v is computed whole", blk)
					continue
				}
				require.Len(t, k0s, (blk.end+c.piece-1)/c.piece, "block %+v", blk)
				require.ElementsMatch(t, k0s, multiples(c.piece, len(k0s)), "block %+v", blk)
			}
		})
	}
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

func TestAutoPiece(t *testing.T) {
	dense := &attention.Args{CuSeqlensQ: []int32{0, 8192}, CuSeqlensK: []int32{0, 8192}, NumHeadsQ: 32, NumHeadsKV: 32, HeadDim: 128, Causal: true}
	require.Zero(t, autoPiece(queryBlocks(dense, 64), 32, 64), "a long dense sequence has enough blocks")
	few := &attention.Args{CuSeqlensQ: []int32{0, 128, 256}, CuSeqlensK: []int32{0, 16384, 512}, NumHeadsQ: 8, NumHeadsKV: 8, HeadDim: 128, Causal: true}
	piece := autoPiece(queryBlocks(few, 64), 8, 64)
	require.Equal(t, minPieceSteps*64, piece, "two shards, one with a long prefix: split it")
	many := &attention.Args{CuSeqlensQ: []int32{0, 128, 1280}, CuSeqlensK: []int32{0, 16384, 17536}, NumHeadsQ: 64, NumHeadsKV: 8, HeadDim: 128, Causal: true}
	require.Zero(t, autoPiece(queryBlocks(many, 64), 64, 64), "enough workgroups to balance without splitting")
}

// TestForwardSplitKV runs the forward with every block split into pieces
// against the float64 reference, on the cases of the forward's tests.
func TestForwardSplitKV(t *testing.T) {
	dev := testOp(t).Device()
	for _, piece := range []int{64, 128} {
		op := NewWithOptions(dev, Options{SplitKV: piece})
		for i, c := range gpuCases {
			t.Run(fmt.Sprintf("piece%d/%s", piece, c.name), func(t *testing.T) {
				checkForward(t, op, c.args(), rand.New(rand.NewPCG(uint64(i), 0x5b1)), 1e-4)
			})
		}
	}
}

// TestForwardSplitKVHalf checks that split pieces store half-precision O
// through the merge (the partials themselves are float32).
func TestForwardSplitKVHalf(t *testing.T) {
	op := NewWithOptions(testOp(t).Device(), Options{SplitKV: 64})
	for _, dt := range []attention.DType{attention.Float16, attention.BFloat16} {
		t.Run(dt.String(), func(t *testing.T) {
			a := gpuCases[3].args()
			a.DType = dt
			checkForward(t, op, a, rand.New(rand.NewPCG(9, 0x5b1)), 1e-2)
		})
	}
}
