package tc

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/attention/worklist"
	"github.com/coreattn/coreattn/shaders"
)

// defaultDSScratch is the dS scratch cap when Options.DSScratch is 0.
const defaultDSScratch = 2 << 30

// bwdPlan is the backward's work lists, as the kernels read them from
// segs, and the dS scratch layout (see tc_bwd.wgsl).
type bwdPlan struct {
	meta                   []uint32
	kvOff, dqOff           int // offsets of the dkv_main and dq_main tile tables
	qoffOff, poffOff       int // offsets of qoff and poff
	nkv, ndq               int // workgroups per head of dkv_main and dq_main
	tiles                  int // dS tiles per query head
	heads                  int // KV heads per pass
	bytes                  uint64
	kvWork, dqWork, nsteps int
}

// backwardPlan lays out the backward for tiling t: dkv_main's key blocks
// and dq_main's query blocks (heaviest first), each query step's first dS
// tile, and the passes over KV heads whose tiles fit budget bytes.
func backwardPlan(a *attention.Args, t shaders.TCBwdTiling, budget uint64) (bwdPlan, error) {
	bkv, bq, bqd := t.BKV(), t.BQ, t.BQD()
	type tile struct{ b, x0, work int }
	var kvTiles, dqTiles []tile
	var qoff, poff []uint32
	var p bwdPlan
	for b := range a.Batch() {
		qLen, kLen := a.Segment(b)
		delta := kLen - qLen
		// dkv_main: every key block, its work the query steps that see it.
		for k0 := 0; k0 < kLen; k0 += bkv {
			first := 0
			if a.Causal {
				first = min(max(k0-delta, 0), qLen)
			}
			steps := 0
			if first < qLen {
				steps = (qLen - first/bq*bq + bq - 1) / bq
			}
			kvTiles = append(kvTiles, tile{b, k0, steps})
		}
		// Query steps of BQ rows: the key blocks each sees, as tiles.
		qoff = append(qoff, uint32(len(poff)))
		for qs := 0; qs < qLen; qs += bq {
			end := kLen
			if a.Causal {
				end = min(kLen, min(qs+bq, qLen)+delta)
			}
			poff = append(poff, uint32(p.tiles))
			p.tiles += (end + bkv - 1) / bkv
		}
		// dq_main: blocks of BQD rows, their work the key blocks of their
		// last step.
		for q0 := 0; q0 < qLen; q0 += bqd {
			end := kLen
			if a.Causal {
				end = min(kLen, min(q0+bqd, qLen)+delta)
			}
			dqTiles = append(dqTiles, tile{b, q0, (end + bkv - 1) / bkv})
		}
	}
	p.nsteps = len(poff)
	poff = append(poff, uint32(p.tiles))
	byWork := func(ts []tile) {
		slices.SortStableFunc(ts, func(x, y tile) int { return cmp.Compare(y.work, x.work) })
	}
	byWork(kvTiles)
	byWork(dqTiles)
	p.meta = worklist.Seqlens(a, 2*len(kvTiles)+2*len(dqTiles)+len(qoff)+len(poff))
	p.kvOff = len(p.meta)
	for _, t := range kvTiles {
		p.meta = append(p.meta, uint32(t.b), uint32(t.x0))
		p.kvWork += t.work
	}
	p.dqOff = len(p.meta)
	for _, t := range dqTiles {
		p.meta = append(p.meta, uint32(t.b), uint32(t.x0))
		p.dqWork += t.work
	}
	p.qoffOff = len(p.meta)
	p.meta = append(p.meta, qoff...)
	p.poffOff = len(p.meta)
	p.meta = append(p.meta, poff...)
	p.nkv, p.ndq = len(kvTiles), len(dqTiles)

	group := a.NumHeadsQ / a.NumHeadsKV
	perKV := uint64(group) * uint64(p.tiles) * uint64(t.DSTileBytes())
	if perKV == 0 {
		p.heads = a.NumHeadsKV
		return p, nil
	}
	if perKV > budget {
		return p, fmt.Errorf("attention: tensor cores: the dS tiles of one KV head need %d bytes; the scratch cap is %d (Options.DSScratch, the adapter's buffer limit)", perKV, budget)
	}
	fit := int(min(budget/perKV, uint64(a.NumHeadsKV)))
	passes := (a.NumHeadsKV + fit - 1) / fit
	p.heads = (a.NumHeadsKV + passes - 1) / passes // as even as the passes allow
	p.bytes = uint64(p.heads) * perKV
	return p, nil
}

// BackwardTiling is the backward tiling the planner uses for head
// dimension d and storage type dt.
func (p *Planner) BackwardTiling(d int, dt attention.DType) (shaders.TCBwdTiling, error) {
	if t := p.opts.Backward; t.NP != 0 {
		t.D, t.DT = d, dt
		if err := t.Validate(); err != nil {
			return t, err
		}
		tg := p.dev.Target
		if t.WorkgroupBytes() > tg.WorkgroupBytes || t.Threads() > tg.MaxThreads || t.SG != tg.SubgroupSize {
			return t, fmt.Errorf("attention: tensor-core tiling %s needs %d bytes, %d threads and subgroups of %d; the adapter has %d, %d and %d", t, t.WorkgroupBytes(), t.Threads(), t.SG, tg.WorkgroupBytes, tg.MaxThreads, tg.SubgroupSize)
		}
		return t, nil
	}
	return shaders.ChooseTCBwd(d, dt, p.dev.Target)
}

// Backward plans the backward pass of a: dQ [total_q, Hq, D] and dK, dV
// [total_k, Hkv, D] (a.DType) from Q, K, V, O, dO (a.DType) and the
// forward's LSE (f32). The launch runs the Delta pass, then dkv_main and
// dq_main in passes over groups of KV heads whose dS tiles fit the
// scratch.
func (p *Planner) Backward(a *attention.Args) (*Launch, error) {
	if err := p.checkCall(a); err != nil {
		return nil, err
	}
	t, err := p.BackwardTiling(a.HeadDim, a.DType)
	if err != nil {
		return nil, err
	}
	maxWG := max(1, p.dev.MaxWorkgroupsPerDimension)
	if a.NumHeadsQ > maxWG {
		return nil, fmt.Errorf("attention: %d query heads exceed the adapter's %d workgroups per dimension", a.NumHeadsQ, maxWG)
	}
	if p.opts.DSScratch < 0 {
		return nil, fmt.Errorf("attention: Options.DSScratch %d: want a size in bytes, or 0 for the default", p.opts.DSScratch)
	}
	budget := uint64(defaultDSScratch)
	if p.opts.DSScratch > 0 {
		budget = uint64(p.opts.DSScratch)
	}
	if m := p.dev.MaxBufferBytes; m > 0 {
		budget = min(budget, m)
	}
	plan, err := backwardPlan(a, t, budget)
	if err != nil {
		return nil, err
	}
	src, err := t.Source()
	if err != nil {
		return nil, err
	}
	nq, nkv := elems(a)
	nlse := a.NumHeadsQ * a.TotalQ()
	l := &Launch{Tiling: t.String(), Tensors: []Tensor{
		{Name: "q", Bytes: bytesOf(nq, a.DType)}, {Name: "k", Bytes: bytesOf(nkv, a.DType)}, {Name: "v", Bytes: bytesOf(nkv, a.DType)},
		{Name: "o", Bytes: bytesOf(nq, a.DType)}, {Name: "lse", Bytes: bytesOf(nlse, attention.Float32)}, {Name: "do", Bytes: bytesOf(nq, a.DType)},
		{Name: "dq", Bytes: bytesOf(nq, a.DType), Written: true}, {Name: "dk", Bytes: bytesOf(nkv, a.DType), Written: true}, {Name: "dv", Bytes: bytesOf(nkv, a.DType), Written: true},
	}}
	if plan.nkv == 0 && plan.ndq == 0 {
		return l, nil // no rows at all
	}
	passes := (a.NumHeadsKV + plan.heads - 1) / plan.heads
	l.Tiling += fmt.Sprintf(" (%d passes of %d KV heads, %d bytes of dS)", passes, plan.heads, plan.bytes)
	q := l.f16Operand(a, "q", nq, maxWG)
	k := l.f16Operand(a, "k", nkv, maxWG)
	v := l.f16Operand(a, "v", nkv, maxWG)
	do := l.f16Operand(a, "do", nq, maxWG)
	group := a.NumHeadsQ / a.NumHeadsKV
	deltaGrid := rowGrid(nlse, shaders.TCDeltaWorkgroup, maxWG)
	kvGrid, kvY := tileGrid(plan.heads, plan.nkv, maxWG)
	dqGrid, dqY := tileGrid(plan.heads*group, plan.ndq, maxWG)
	params := shaders.TCBwdParams{
		HQ: uint32(a.NumHeadsQ), Group: uint32(group), TotalQ: uint32(a.TotalQ()), Causal: boolU32(a.Causal),
		Batch: uint32(a.Batch()), HKV: uint32(a.NumHeadsKV), Nrows: uint32(nlse), DeltaGridX: deltaGrid[0],
		KVNtiles: uint32(plan.nkv), KVGridY: uint32(kvY), KVOff: uint32(plan.kvOff), ScaleLog2: float32(a.Scale() * math.Log2E),
		DQNtiles: uint32(plan.ndq), DQGridY: uint32(dqY), DQOff: uint32(plan.dqOff), Scale: float32(a.Scale()),
		DSTiles: uint32(plan.tiles), QoffOff: uint32(plan.qoffOff), PoffOff: uint32(plan.poffOff), Log2e: math.Log2E,
	}
	paramBytes := uint64(4 * len(params.Words()))
	mod := &Module{Label: "tc_bwd " + t.String(), Source: src}
	l.Buffers = append(l.Buffers,
		Buffer{Name: "bwd meta", Bytes: uint64(max(16, roundUp16(4*len(plan.meta)))), Init: padWords(plan.meta)},
		Buffer{Name: "bwd lse and delta", Bytes: bytesOf(2*nlse, attention.Float32)},
		Buffer{Name: "bwd ds", Bytes: uint64(max(16, roundUp16(int(plan.bytes))))},
		Buffer{Name: "bwd params", Bytes: paramBytes, Uniform: true, Init: params.Words()},
	)
	l.Dispatches = append(l.Dispatches, Dispatch{
		Label:      "tc_bwd delta",
		Module:     mod,
		Entry:      shaders.TCDeltaEntry,
		Bindings:   bind("bwd params", "o", "do", "lse", "bwd lse and delta"),
		Workgroups: deltaGrid,
	})
	for h0 := 0; h0 < a.NumHeadsKV; h0 += plan.heads {
		heads := min(plan.heads, a.NumHeadsKV-h0)
		pname := "bwd params"
		if h0 > 0 {
			pname = fmt.Sprintf("bwd params, KV heads %d-%d", h0, h0+heads-1)
			pp := params
			pp.HK0 = uint32(h0)
			l.Buffers = append(l.Buffers, Buffer{Name: pname, Bytes: paramBytes, Uniform: true, Init: pp.Words()})
		}
		if plan.nkv > 0 {
			kvGrid[0] = uint32(heads)
			l.Dispatches = append(l.Dispatches, Dispatch{
				Label:      fmt.Sprintf("tc_bwd dkv, KV heads %d-%d", h0, h0+heads-1),
				Module:     mod,
				Entry:      shaders.TCDKVEntry,
				Bindings:   bind(pname, "bwd meta", q, k, v, do, "bwd lse and delta", "dk", "dv", "bwd ds"),
				Workgroups: kvGrid,
			})
		}
		if plan.ndq > 0 {
			dqGrid[0] = uint32(heads * group)
			l.Dispatches = append(l.Dispatches, Dispatch{
				Label:      fmt.Sprintf("tc_bwd dq, query heads %d-%d", h0*group, (h0+heads)*group-1),
				Module:     mod,
				Entry:      shaders.TCDQEntry,
				Bindings:   bind(pname, "bwd meta", k, "bwd ds", "dq"),
				Workgroups: dqGrid,
			})
		}
	}
	return l, nil
}
