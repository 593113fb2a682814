package gpu

import (
	"sort"

	"github.com/coreattn/coreattn/attention"

	"github.com/coreattn/coreattn/shaders"
)

// Split-KV. A query block whose key range is long (a CA-task shard with a
// long prefix) is one workgroup's serial work: when a batch has few blocks
// and some are long, those workgroups finish last and the GPU idles around
// them. The forward can cut such a block's keys into pieces of equal
// length, computed by separate workgroups that write each piece's
// normalised O and LSE to a scratch buffer; a second, small pass merges the
// pieces of each block by their LSE (FlashAttention's split-KV, or
// "flash-decoding").

// splitTarget is the number of workgroups below which the automatic split
// applies, and about how many it aims at: several waves of a large GPU (the
// H200 runs 264 forward workgroups at once). A batch with more workgroups
// than that balances well enough by running the heaviest first (splitting
// it measured slower on the H200).
const splitTarget = 1024

// minPieceSteps is the shortest automatic piece, in key tiles: shorter
// pieces would spend more on their prologue and on the merge than they save.
const minPieceSteps = 8

// noSplit is the slot of a block computed whole (the kernel's NONE).
const noSplit = ^uint32(0)

// queryBlock is a block of br query rows of segment b, starting at row q0,
// that sees keys 0..end-1 of its segment.
type queryBlock struct{ b, q0, end int }

// queryBlocks lists the batch's query blocks of br rows.
func queryBlocks(a *attention.Args, br int) []queryBlock {
	var blocks []queryBlock
	for b := 0; b < a.Batch(); b++ {
		qLen, kLen := a.Segment(b)
		for q0 := 0; q0 < qLen; q0 += br {
			end := kLen
			if a.Causal {
				end = max(0, min(kLen, min(q0+br, qLen)+kLen-qLen))
			}
			blocks = append(blocks, queryBlock{b, q0, end})
		}
	}
	return blocks
}

// autoPiece picks the split-KV piece length in keys (a multiple of bc) for
// hq heads of blocks, or 0 where splitting would not pay: where there are
// splitTarget workgroups or more, or no block is longer than a piece.
// Pieces hold about 1/splitTarget of all the work, and at least
// minPieceSteps tiles.
func autoPiece(blocks []queryBlock, hq, bc int) int {
	if len(blocks)*hq >= splitTarget {
		return 0
	}
	total, longest := 0, 0
	for _, b := range blocks {
		steps := (b.end + bc - 1) / bc
		total += steps * hq
		longest = max(longest, steps)
	}
	piece := max((total+splitTarget-1)/splitTarget, minPieceSteps)
	if longest <= piece {
		return 0
	}
	return piece * bc
}

// fwdPlan is the forward's work list, as the kernel reads it from its
// segs buffer.
type fwdPlan struct {
	// meta is cu_seqlens_q ++ cu_seqlens_k ++ the tile table, one
	// (segment, q0, k0, slot) per workgroup, heaviest first, ++ the combine
	// table, one (segment, q0, first slot, pieces) per split block.
	meta            []uint32
	tilesOff        int // offset of the tile table in meta
	combOff         int // offset of the combine table in meta
	ntiles, ngroups int
	nslots          int // pieces, each with a slot of partial results
	piece           int // keys per piece; 0 when nothing is split
}

// forwardPlan lays out the forward's workgroups for query blocks of br rows
// and key tiles of bc, splitting every block with more than piece keys
// (a multiple of bc; 0 splits nothing) into pieces of piece keys.
func forwardPlan(a *attention.Args, br, bc, piece int) fwdPlan {
	type tile struct {
		b, q0, k0 int
		slot      uint32
		work      int
	}
	var tiles []tile
	var groups []uint32
	p := fwdPlan{piece: piece}
	for _, blk := range queryBlocks(a, br) {
		if piece == 0 || blk.end <= piece {
			tiles = append(tiles, tile{blk.b, blk.q0, 0, noSplit, (blk.end + bc - 1) / bc})
			continue
		}
		n := (blk.end + piece - 1) / piece
		groups = append(groups, uint32(blk.b), uint32(blk.q0), uint32(p.nslots), uint32(n))
		for i := range n {
			keys := min(piece, blk.end-i*piece)
			tiles = append(tiles, tile{blk.b, blk.q0, i * piece, uint32(p.nslots + i), (keys + bc - 1) / bc})
		}
		p.nslots += n
	}
	sort.SliceStable(tiles, func(i, j int) bool { return tiles[i].work > tiles[j].work })
	p.meta = seqlensMeta(a, 4*len(tiles)+len(groups))
	p.tilesOff = len(p.meta)
	for _, t := range tiles {
		p.meta = append(p.meta, uint32(t.b), uint32(t.q0), uint32(t.k0), t.slot)
	}
	p.combOff = len(p.meta)
	p.meta = append(p.meta, groups...)
	p.ntiles, p.ngroups = len(tiles), len(groups)/4
	if p.nslots == 0 {
		p.piece = 0
	}
	return p
}

// The scratch buffer part holds, for hq heads, blocks of br rows and head
// dimension d, every piece's O (slot, head, row, d) and then its rows'
// maxima and sums (slot, head, row group of 4: a vec4 of maxima, a vec4 of
// sums).

// lseOffset is where the pieces' maxima and sums start in part, in vec4s.
func (p fwdPlan) lseOffset(hq, br, d int) int { return p.nslots * hq * br * d / 4 }

// partBytes is the size of part: at least 16 bytes, as the kernel binds it
// even when nothing is split.
func (p fwdPlan) partBytes(hq, br, d int) uint64 {
	return uint64(max(16, 4*p.nslots*hq*br*(d+2)))
}

// plan lays out the forward's workgroups, choosing the split-KV piece from
// the options, the work and the adapter: splitting pays only where the GPU
// runs many workgroups at once, and the partial results must fit one
// buffer (the piece doubles until they do).
func (op *Op) plan(a *attention.Args, tiling shaders.FwdTiling) fwdPlan {
	br, bc := tiling.BR(), tiling.BC()
	piece := 0
	switch s := op.opts.SplitKV; {
	case s > 0:
		piece = (s + bc - 1) / bc * bc
	case s == 0 && !op.dev.Info().IsCPU():
		piece = autoPiece(queryBlocks(a, br), a.NumHeadsQ, bc)
	}
	for {
		p := forwardPlan(a, br, bc, piece)
		if p.partBytes(a.NumHeadsQ, br, a.HeadDim) <= op.dev.MaxBufferBytes() {
			return p
		}
		piece *= 2
	}
}
