// Package worklist lays out the work lists the attention kernels read at
// the head of their segs buffer: cu_seqlens_q ++ cu_seqlens_k, then tables
// of query blocks ordered heaviest first, and the forward's split-KV
// pieces with the groups that merge them. Both kernel families, the FFMA
// kernels of attention/gpu and the tensor-core kernels of attention/tc,
// read the same layout.
//
// Split-KV. A query block whose key range is long (a CA-task shard with a
// long prefix) is one workgroup's serial work: when a batch has few blocks
// and some are long, those workgroups finish last and the GPU idles around
// them. The forward can cut such a block's keys into pieces of equal
// length, computed by separate workgroups that write each piece's
// normalised O and LSE to a scratch buffer; a second, small pass merges the
// pieces of each block by their LSE in a fixed order (FlashAttention's
// split-KV, or "flash-decoding").
package worklist

import (
	"cmp"
	"slices"

	"github.com/coreattn/coreattn/attention"
)

// SplitTarget is the number of workgroups below which the automatic split
// applies, and about how many it aims at: several waves of a large GPU. A
// batch with more workgroups balances well enough by running the heaviest
// first (splitting it measured slower on the H200).
const SplitTarget = 1024

// MinPieceSteps is the shortest automatic piece, in key tiles: shorter
// pieces would spend more on their prologue and on the merge than they save.
const MinPieceSteps = 8

// NoSplit is the slot of a block computed whole (the kernels' NONE).
const NoSplit = ^uint32(0)

// Seqlens returns cu_seqlens_q ++ cu_seqlens_k as the kernels read them at
// the head of their segs buffer, with room for extra more entries.
func Seqlens(a *attention.Args, extra int) []uint32 {
	meta := make([]uint32, 0, len(a.CuSeqlensQ)+len(a.CuSeqlensK)+extra)
	for _, c := range a.CuSeqlensQ {
		meta = append(meta, uint32(c))
	}
	for _, c := range a.CuSeqlensK {
		meta = append(meta, uint32(c))
	}
	return meta
}

// Block is a block of query rows of segment Seg, starting at row Q0, that
// sees keys 0..End-1 of its segment.
type Block struct{ Seg, Q0, End int }

// Blocks lists the batch's query blocks of br rows, segment by segment.
func Blocks(a *attention.Args, br int) []Block {
	var blocks []Block
	for b := range a.Batch() {
		qLen, kLen := a.Segment(b)
		for q0 := 0; q0 < qLen; q0 += br {
			end := kLen
			if a.Causal {
				end = max(0, min(kLen, min(q0+br, qLen)+kLen-qLen))
			}
			blocks = append(blocks, Block{b, q0, end})
		}
	}
	return blocks
}

// AutoPiece picks the split-KV piece length in keys (a multiple of bc) for
// hq heads of blocks, or 0 where splitting would not pay: where there are
// SplitTarget workgroups or more, or no block is longer than a piece.
// Pieces hold about 1/SplitTarget of all the work, and at least
// MinPieceSteps tiles.
func AutoPiece(blocks []Block, hq, bc int) int {
	if len(blocks)*hq >= SplitTarget {
		return 0
	}
	total, longest := 0, 0
	for _, b := range blocks {
		steps := (b.End + bc - 1) / bc
		total += steps * hq
		longest = max(longest, steps)
	}
	piece := max((total+SplitTarget-1)/SplitTarget, MinPieceSteps)
	if longest <= piece {
		return 0
	}
	return piece * bc
}

// Forward is the forward's work list.
type Forward struct {
	// Meta is cu_seqlens_q ++ cu_seqlens_k ++ the tile table, one
	// (segment, q0, k0, slot) per workgroup, heaviest first, ++ the combine
	// table, one (segment, q0, first slot, pieces) per split block.
	Meta     []uint32
	TilesOff int // offset of the tile table in Meta
	CombOff  int // offset of the combine table in Meta
	Tiles    int // workgroups per head
	Groups   int // split blocks, each merged by one combine workgroup per head
	Slots    int // pieces, each with a slot of partial results
	Piece    int // keys per piece; 0 when nothing is split
}

// NewForward lays out the forward's workgroups for query blocks of br rows
// and key tiles of bc, splitting every block with more than piece keys (a
// multiple of bc; 0 splits nothing) into pieces of piece keys.
func NewForward(a *attention.Args, br, bc, piece int) Forward {
	type tile struct {
		b, q0, k0 int
		slot      uint32
		work      int
	}
	var tiles []tile
	var groups []uint32
	f := Forward{Piece: piece}
	for _, blk := range Blocks(a, br) {
		if piece == 0 || blk.End <= piece {
			tiles = append(tiles, tile{blk.Seg, blk.Q0, 0, NoSplit, (blk.End + bc - 1) / bc})
			continue
		}
		n := (blk.End + piece - 1) / piece
		groups = append(groups, uint32(blk.Seg), uint32(blk.Q0), uint32(f.Slots), uint32(n))
		for i := range n {
			keys := min(piece, blk.End-i*piece)
			tiles = append(tiles, tile{blk.Seg, blk.Q0, i * piece, uint32(f.Slots + i), (keys + bc - 1) / bc})
		}
		f.Slots += n
	}
	// Heaviest first, so that long rows start early and short ones fill
	// the tail.
	slices.SortStableFunc(tiles, func(x, y tile) int { return cmp.Compare(y.work, x.work) })
	f.Meta = Seqlens(a, 4*len(tiles)+len(groups))
	f.TilesOff = len(f.Meta)
	for _, t := range tiles {
		f.Meta = append(f.Meta, uint32(t.b), uint32(t.q0), uint32(t.k0), t.slot)
	}
	f.CombOff = len(f.Meta)
	f.Meta = append(f.Meta, groups...)
	f.Tiles, f.Groups = len(tiles), len(groups)/4
	if f.Slots == 0 {
		f.Piece = 0
	}
	return f
}

// PartFloats is the size of the split-KV partial results in floats, for hq
// heads, blocks of br rows and head dimension d: every piece's O and its
// rows' maxima and sums.
func (f Forward) PartFloats(hq, br, d int) int { return f.Slots * hq * br * (d + 2) }

// ChooseForward lays out the forward with the split-KV piece that splitKV
// asks for (keys, rounded up to whole tiles; 0 chooses, on GPUs only; < 0
// never splits), doubled until the partial results fit maxBytes (0: no
// limit).
func ChooseForward(a *attention.Args, br, bc, splitKV int, cpu bool, maxBytes uint64) Forward {
	piece := 0
	switch {
	case splitKV > 0:
		piece = (splitKV + bc - 1) / bc * bc
	case splitKV == 0 && !cpu:
		piece = AutoPiece(Blocks(a, br), a.NumHeadsQ, bc)
	}
	for {
		f := NewForward(a, br, bc, piece)
		if maxBytes == 0 || uint64(4*f.PartFloats(a.NumHeadsQ, br, a.HeadDim)) <= maxBytes {
			return f
		}
		piece *= 2
	}
}
