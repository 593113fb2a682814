package tc

import (
	"fmt"
	"math"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/attention/worklist"
	"github.com/coreattn/coreattn/shaders"
)

// The forward's work list, with its split-KV pieces, is package
// worklist's, as the FFMA forward's is.

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
func (p *Planner) plan(a *attention.Args, t shaders.TCFwdTiling) worklist.Forward {
	return worklist.ChooseForward(a, t.BR(), t.BC, p.opts.SplitKV, p.dev.CPU, p.dev.MaxBufferBytes)
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
	if fp.Tiles == 0 {
		return l, nil // no query rows: nothing to compute
	}
	if fp.Piece > 0 {
		l.Tiling += fmt.Sprintf(" split-kv %d keys (%d pieces)", fp.Piece, fp.Slots)
	}
	q := l.f16Operand(a, "q", nq, maxWG)
	k := l.f16Operand(a, "k", nkv, maxWG)
	v := l.f16Operand(a, "v", nkv, maxWG)
	grid, gy := tileGrid(a.NumHeadsQ, fp.Tiles, maxWG)
	cgrid, cgy := tileGrid(a.NumHeadsQ, fp.Groups, maxWG)
	br := t.BR()
	params := shaders.TCFwdParams{
		HQ: uint32(a.NumHeadsQ), Group: uint32(a.NumHeadsQ / a.NumHeadsKV), TotalQ: uint32(a.TotalQ()), Causal: boolU32(a.Causal),
		Ntiles: uint32(fp.Tiles), GridY: uint32(gy), Batch: uint32(a.Batch()), TilesOff: uint32(fp.TilesOff),
		ScaleLog2: float32(a.Scale() * math.Log2E), HKV: uint32(a.NumHeadsKV), Piece: uint32(fp.Piece), CombOff: uint32(fp.CombOff),
		Ngroups: uint32(fp.Groups), CgridY: uint32(cgy), LSEOff: uint32(fp.Slots * a.NumHeadsQ * br * a.HeadDim), Inf: infBits,
	}.Words()
	l.Buffers = append(l.Buffers,
		Buffer{Name: "fwd params", Bytes: uint64(4 * len(params)), Uniform: true, Init: params},
		Buffer{Name: "fwd meta", Bytes: uint64(max(16, roundUp16(4*len(fp.Meta)))), Init: padWords(fp.Meta)},
		Buffer{Name: "fwd split-kv partials", Bytes: uint64(max(16, roundUp16(4*fp.PartFloats(a.NumHeadsQ, br, a.HeadDim))))},
	)
	mod := &Module{Label: "tc_fwd " + t.String(), Source: src}
	l.Dispatches = append(l.Dispatches, Dispatch{
		Label:      "tc_fwd",
		Module:     mod,
		Entry:      "main",
		Bindings:   bind("fwd params", "fwd meta", q, k, v, "o", "lse", "fwd split-kv partials"),
		Workgroups: grid,
	})
	if fp.Groups > 0 {
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
