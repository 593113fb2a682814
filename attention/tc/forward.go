package tc

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/shaders"
)

// Split-KV. A query block whose key range is long is one workgroup's
// serial work; when a batch has few blocks and some are long, the forward
// cuts such a block's keys into pieces computed by separate workgroups,
// each writing its normalised O and LSE to a scratch buffer, and a small
// pass merges the pieces of each block by their LSE in a fixed order (see
// attention/gpu's splitkv.go, whose rule this follows).

// splitTarget is the number of workgroups below which the automatic split
// applies, and about how many it aims at.
const splitTarget = 1024

// minPieceSteps is the shortest automatic piece, in key tiles.
const minPieceSteps = 8

// noSplit is the slot of a block computed whole (the kernel's NONE).
const noSplit = ^uint32(0)

// queryBlock is a block of br query rows of segment b, starting at row q0,
// that sees keys 0..end-1 of its segment.
type queryBlock struct{ b, q0, end int }

// queryBlocks lists the batch's query blocks of br rows.
func queryBlocks(a *attention.Args, br int) []queryBlock {
	var blocks []queryBlock
	for b := range a.Batch() {
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
// hq heads of blocks, or 0 where splitting would not pay.
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

// fwdPlan is the forward's work list as the kernel reads it from segs.
type fwdPlan struct {
	// meta is cu_seqlens_q ++ cu_seqlens_k ++ the tile table, one
	// (segment, q0, k0, slot) per workgroup, heaviest first, ++ the combine
	// table, one (segment, q0, first slot, pieces) per split block.
	meta            []uint32
	tilesOff        int
	combOff         int
	ntiles, ngroups int
	nslots          int // pieces, each with a slot of partial results
	piece           int // keys per piece; 0 when nothing is split
}

// forwardPlan lays out the forward's workgroups for query blocks of br
// rows and key tiles of bc, splitting blocks with more than piece keys (a
// multiple of bc; 0 splits nothing).
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
	// Heaviest first, so that long rows start early and short ones fill
	// the tail.
	slices.SortStableFunc(tiles, func(x, y tile) int { return cmp.Compare(y.work, x.work) })
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

// partFloats is the size of the split-KV scratch in floats: every piece's
// O (slot, head, row, d) and then its rows' maximum and sum (slot, head,
// row, then m and l).
func (p fwdPlan) partFloats(hq, br, d int) int { return p.nslots * hq * br * (d + 2) }

// seqlensMeta returns cu_seqlens_q ++ cu_seqlens_k, with room for extra
// more entries.
func seqlensMeta(a *attention.Args, extra int) []uint32 {
	meta := make([]uint32, 0, len(a.CuSeqlensQ)+len(a.CuSeqlensK)+extra)
	for _, c := range a.CuSeqlensQ {
		meta = append(meta, uint32(c))
	}
	for _, c := range a.CuSeqlensK {
		meta = append(meta, uint32(c))
	}
	return meta
}

// ForwardTiling is the forward tiling the planner uses for head dimension
// d and storage type dt.
func (p *Planner) ForwardTiling(d int, dt attention.DType) (shaders.TCFwdTiling, error) {
	if t := p.opts.Forward; t.NS != 0 {
		t.D, t.Out = d, dt
		if err := t.Validate(); err != nil {
			return t, err
		}
		tg := p.dev.Target
		if t.WorkgroupBytes() > tg.WorkgroupBytes || t.Threads() > tg.MaxThreads || t.SG != tg.SubgroupSize {
			return t, fmt.Errorf("attention: tensor-core tiling %s needs %d bytes, %d threads and subgroups of %d; the adapter has %d, %d and %d", t, t.WorkgroupBytes(), t.Threads(), t.SG, tg.WorkgroupBytes, tg.MaxThreads, tg.SubgroupSize)
		}
		return t, nil
	}
	return shaders.ChooseTCFwd(d, dt, p.dev.Target)
}

// plan lays out the forward's workgroups, choosing the split-KV piece from
// the options and the work; the partial results must fit one buffer (the
// piece doubles until they do).
func (p *Planner) plan(a *attention.Args, t shaders.TCFwdTiling) fwdPlan {
	br, bc := t.BR(), t.BC
	piece := 0
	switch s := p.opts.SplitKV; {
	case s > 0:
		piece = (s + bc - 1) / bc * bc
	case s == 0 && !p.dev.CPU:
		piece = autoPiece(queryBlocks(a, br), a.NumHeadsQ, bc)
	}
	for {
		fp := forwardPlan(a, br, bc, piece)
		if p.dev.MaxBufferBytes == 0 || uint64(4*fp.partFloats(a.NumHeadsQ, br, a.HeadDim)) <= p.dev.MaxBufferBytes {
			return fp
		}
		piece *= 2
	}
}

// Forward plans the forward pass of a: O [total_q, Hq, D] (a.DType) and
// LSE [Hq, total_q] (f32) from Q, K and V (a.DType).
func (p *Planner) Forward(a *attention.Args) (*Launch, error) {
	if err := p.checkCall(a); err != nil {
		return nil, err
	}
	t, err := p.ForwardTiling(a.HeadDim, a.DType)
	if err != nil {
		return nil, err
	}
	maxWG := max(1, p.dev.MaxWorkgroupsPerDimension)
	if a.NumHeadsQ > maxWG {
		return nil, fmt.Errorf("attention: %d query heads exceed the adapter's %d workgroups per dimension", a.NumHeadsQ, maxWG)
	}
	src, err := t.Source()
	if err != nil {
		return nil, err
	}
	nq, nkv := elems(a)
	l := &Launch{Tiling: t.String(), Tensors: []Tensor{
		{Name: "q", Bytes: bytesOf(nq, a.DType)}, {Name: "k", Bytes: bytesOf(nkv, a.DType)}, {Name: "v", Bytes: bytesOf(nkv, a.DType)},
		{Name: "o", Bytes: bytesOf(nq, a.DType), Written: true}, {Name: "lse", Bytes: bytesOf(a.NumHeadsQ*a.TotalQ(), attention.Float32), Written: true},
	}}
	fp := p.plan(a, t)
	if fp.ntiles == 0 {
		return l, nil // no query rows: nothing to compute
	}
	if fp.piece > 0 {
		l.Tiling += fmt.Sprintf(" split-kv %d keys (%d pieces)", fp.piece, fp.nslots)
	}
	q := l.f16Operand(a, "q", nq, maxWG)
	k := l.f16Operand(a, "k", nkv, maxWG)
	v := l.f16Operand(a, "v", nkv, maxWG)
	grid, gy := tileGrid(a.NumHeadsQ, fp.ntiles, maxWG)
	cgrid, cgy := tileGrid(a.NumHeadsQ, fp.ngroups, maxWG)
	br := t.BR()
	params := shaders.TCFwdParams{
		HQ: uint32(a.NumHeadsQ), Group: uint32(a.NumHeadsQ / a.NumHeadsKV), TotalQ: uint32(a.TotalQ()), Causal: boolU32(a.Causal),
		Ntiles: uint32(fp.ntiles), GridY: uint32(gy), Batch: uint32(a.Batch()), TilesOff: uint32(fp.tilesOff),
		ScaleLog2: float32(a.Scale() * math.Log2E), HKV: uint32(a.NumHeadsKV), Piece: uint32(fp.piece), CombOff: uint32(fp.combOff),
		Ngroups: uint32(fp.ngroups), CgridY: uint32(cgy), LSEOff: uint32(fp.nslots * a.NumHeadsQ * br * a.HeadDim), Inf: infBits,
	}.Words()
	l.Buffers = append(l.Buffers,
		Buffer{Name: "fwd params", Bytes: uint64(4 * len(params)), Uniform: true, Init: params},
		Buffer{Name: "fwd meta", Bytes: uint64(max(16, roundUp16(4*len(fp.meta)))), Init: padWords(fp.meta)},
		Buffer{Name: "fwd split-kv partials", Bytes: uint64(max(16, roundUp16(4*fp.partFloats(a.NumHeadsQ, br, a.HeadDim))))},
	)
	mod := &Module{Label: "tc_fwd " + t.String(), Source: src}
	l.Dispatches = append(l.Dispatches, Dispatch{
		Label:      "tc_fwd",
		Module:     mod,
		Entry:      "main",
		Bindings:   bind("fwd params", "fwd meta", q, k, v, "o", "lse", "fwd split-kv partials"),
		Workgroups: grid,
	})
	if fp.ngroups > 0 {
		l.Dispatches = append(l.Dispatches, Dispatch{
			Label:      "tc_fwd combine",
			Module:     mod,
			Entry:      "combine_main",
			Bindings:   bind("fwd params", "fwd meta", "fwd split-kv partials", "o", "lse"),
			Workgroups: cgrid,
		})
	}
	return l, nil
}

// padWords pads w with zeros to a multiple of 4 words (16 bytes).
func padWords(w []uint32) []uint32 {
	for len(w)%4 != 0 || len(w) == 0 {
		w = append(w, 0)
	}
	return w
}
