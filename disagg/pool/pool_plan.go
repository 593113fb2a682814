package pool

import (
	"fmt"
	"math"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/disagg"
)

// callPlan is one pool call translated into the scheduler's vocabulary: every
// segment with queries is a document, and the plan assigns its CA-tasks to
// the live servers.
//
// A causal segment with q_len < k_len is the document of its k_len key rows
// whose last q_len rows are queries; the first off = k_len-q_len rows of the
// document carry no query, and tasks are clipped to the query rows when they
// are run. A non-causal segment is the document of its q_len query rows;
// every task of it attends all k_len keys.
type callPlan struct {
	a     *attention.Args
	seg   []int // document -> caller segment
	off   []int // document -> rows before the segment's first query
	live  []int // plan rank -> pool server index
	costs []disagg.CostModel
	model disagg.Arch
	plan  *disagg.Plan
}

// callArch is the Arch of a call: its head shapes, float32 on the wire,
// one layer.
func callArch(a *attention.Args) disagg.Arch {
	return disagg.Arch{Name: "pool call", HeadsQ: a.NumHeadsQ, HeadsKV: a.NumHeadsKV, HeadDim: a.HeadDim, Layers: 1, ElemBytes: 4}
}

// newCallPlan plans call a of pass over the live servers, whose cost models
// are costs (one per live server).
func newCallPlan(a *attention.Args, pass disagg.Pass, live []int, costs []disagg.CostModel, opts *Options) (*callPlan, error) {
	c := &callPlan{a: a, live: live, costs: costs, model: callArch(a)}
	var lens []int
	for b := range a.Batch() {
		qLen := int(a.CuSeqlensQ[b+1] - a.CuSeqlensQ[b])
		kLen := int(a.CuSeqlensK[b+1] - a.CuSeqlensK[b])
		if qLen == 0 {
			continue
		}
		n, off := qLen, 0
		if a.Causal {
			n, off = kLen, kLen-qLen
		}
		c.seg = append(c.seg, b)
		c.off = append(c.off, off)
		lens = append(lens, n)
	}
	if len(lens) == 0 {
		return c, nil
	}
	l, err := disagg.PlaceAcross(lens, len(live))
	if err != nil {
		return nil, err
	}
	opt := disagg.Options{Arch: c.model, Pass: pass, Epsilon: opts.Epsilon, BlockSize: opts.BlockSize}
	// The scheduler's costs assume causal segments; a non-causal call is
	// split into equal numbers of query rows per server instead.
	if opts.Packing || !a.Causal {
		c.plan, err = disagg.Pack(l, costs, opt)
	} else {
		c.plan, err = disagg.Schedule(l, costs, opt)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// work is a run of query rows [q0, q1) of caller segment seg that one server
// computes against the segment's key rows [0, k1): one or more CA-tasks of a
// document that were placed on the same server with adjacent query rows.
type work struct {
	tasks      []disagg.Task
	seg        int
	q0, q1, k1 int
}

// work returns task t in the caller's coordinates; ok is false when the task
// covers no query row (it lies in a causal segment's key-only prefix).
func (c *callPlan) work(t disagg.Task) (w work, ok bool) {
	b := c.seg[t.Doc]
	if !c.a.Causal {
		kLen := int(c.a.CuSeqlensK[b+1] - c.a.CuSeqlensK[b])
		return work{tasks: []disagg.Task{t}, seg: b, q0: t.Q.Start, q1: t.Q.End, k1: kLen}, true
	}
	off := c.off[t.Doc]
	q0, q1 := max(t.Q.Start, off)-off, t.Q.End-off
	return work{tasks: []disagg.Task{t}, seg: b, q0: q0, q1: q1, k1: t.Q.End}, q0 < q1
}

// works turns a server's tasks (sorted by document, then query start) into
// work, merging tasks of one document whose query rows touch: one segment
// with the longer key prefix computes both, and shares its keys.
func (c *callPlan) works(ts []disagg.Task) []work {
	var out []work
	for _, t := range ts {
		w, ok := c.work(t)
		if !ok {
			continue
		}
		if n := len(out); n > 0 && out[n-1].seg == w.seg && out[n-1].q1 == w.q0 {
			last := &out[n-1]
			last.q1, last.k1 = w.q1, max(last.k1, w.k1)
			last.tasks = append(last.tasks, t)
			continue
		}
		out = append(out, w)
	}
	return out
}

// piece is the part of a work item that goes into one fused batch: query
// rows [q0, q1) of segment seg against its key rows [0, k1).
type piece struct {
	work       int  // index of the work item
	last       bool // the work item's last piece
	seg        int
	q0, q1, k1 int
}

// batch is one server call: pieces fused into one varlen batch.
type batch struct {
	pieces []piece
	args   attention.Args
	rowsQ  int
	rowsK  int
}

// limits bounds the fused batches of one server: at most maxQ query rows and
// maxK key rows per call.
type limits struct{ maxQ, maxK int }

// batchLimits derives a server's batch limits from its largest tensor and the
// pool's row cap.
func batchLimits(a *attention.Args, maxBytes uint64, maxRows int) limits {
	maxElems := uint64(attention.MaxElements)
	if maxBytes > 0 {
		maxElems = min(maxElems, (maxBytes-min(maxBytes, 16))/4) // buffers are padded to 16 bytes
	}
	lim := limits{
		maxQ: int(min(maxElems/uint64(a.NumHeadsQ*a.HeadDim), math.MaxInt32)),
		maxK: int(min(maxElems/uint64(a.NumHeadsKV*a.HeadDim), math.MaxInt32)),
	}
	if maxRows > 0 {
		lim.maxQ = min(lim.maxQ, maxRows)
	}
	return lim
}

// batches cuts a server's work into fused batches within lim, in order. A
// work item with more query rows than a batch takes is cut into pieces (the
// earlier pieces of a causal item need shorter key prefixes).
func batches(a *attention.Args, ws []work, lim limits, server string) ([]batch, error) {
	var out []batch
	cur := batch{}
	flush := func() {
		if len(cur.pieces) > 0 {
			cur.args = fusedArgs(a, cur.pieces)
			out = append(out, cur)
		}
		cur = batch{}
	}
	for i, w := range ws {
		if w.k1 > lim.maxK {
			return nil, fmt.Errorf("disagg: segment %d needs %d key rows in one call; %s takes at most %d", w.seg, w.k1, server, lim.maxK)
		}
		for q0 := w.q0; q0 < w.q1; {
			q1 := min(w.q1, q0+lim.maxQ)
			k1 := w.k1
			if a.Causal {
				k1 -= w.q1 - q1
			}
			if cur.rowsQ+(q1-q0) > lim.maxQ || cur.rowsK+k1 > lim.maxK {
				flush()
			}
			cur.pieces = append(cur.pieces, piece{work: i, last: q1 == w.q1, seg: w.seg, q0: q0, q1: q1, k1: k1})
			cur.rowsQ += q1 - q0
			cur.rowsK += k1
			q0 = q1
		}
	}
	flush()
	return out, nil
}

// fusedArgs returns the arguments of a fused batch of pieces of call a.
func fusedArgs(a *attention.Args, ps []piece) attention.Args {
	f := attention.Args{
		CuSeqlensQ: make([]int32, len(ps)+1), CuSeqlensK: make([]int32, len(ps)+1),
		NumHeadsQ: a.NumHeadsQ, NumHeadsKV: a.NumHeadsKV, HeadDim: a.HeadDim,
		SoftmaxScale: a.SoftmaxScale, Causal: a.Causal, DType: a.DType,
	}
	for i, p := range ps {
		f.CuSeqlensQ[i+1] = f.CuSeqlensQ[i] + int32(p.q1-p.q0)
		f.CuSeqlensK[i+1] = f.CuSeqlensK[i] + int32(p.k1)
	}
	return f
}

// tensors holds the caller's host tensors of one call.
type tensors struct {
	a                   *attention.Args
	q, k, v, o, lse, do []float32
}

func (t *tensors) rowQ() int { return t.a.NumHeadsQ * t.a.HeadDim }
func (t *tensors) rowK() int { return t.a.NumHeadsKV * t.a.HeadDim }

// gatherRows copies, for each piece, rows of a Q-shaped (kv false) or
// KV-shaped (kv true) caller tensor src into a fresh fused tensor.
func (t *tensors) gatherRows(b *batch, src []float32, kv bool) []float32 {
	if kv {
		row := t.rowK()
		dst := make([]float32, 0, b.rowsK*row)
		for _, p := range b.pieces {
			at := int(t.a.CuSeqlensK[p.seg])
			dst = append(dst, src[at*row:(at+p.k1)*row]...)
		}
		return dst
	}
	row := t.rowQ()
	dst := make([]float32, 0, b.rowsQ*row)
	for _, p := range b.pieces {
		at := int(t.a.CuSeqlensQ[p.seg])
		dst = append(dst, src[(at+p.q0)*row:(at+p.q1)*row]...)
	}
	return dst
}

// gatherLSE copies the pieces' rows of the caller's LSE [Hq, total_q].
func (t *tensors) gatherLSE(b *batch) []float32 {
	hq, tq := t.a.NumHeadsQ, t.a.TotalQ()
	dst := make([]float32, hq*b.rowsQ)
	for h := range hq {
		at := h * b.rowsQ
		for _, p := range b.pieces {
			g := h*tq + int(t.a.CuSeqlensQ[p.seg])
			at += copy(dst[at:], t.lse[g+p.q0:g+p.q1])
		}
	}
	return dst
}

// scatterRows copies a fused Q-shaped tensor back into the caller's dst.
func (t *tensors) scatterRows(b *batch, src, dst []float32) {
	row := t.rowQ()
	at := 0
	for _, p := range b.pieces {
		g := int(t.a.CuSeqlensQ[p.seg])
		at += copy(dst[(g+p.q0)*row:(g+p.q1)*row], src[at:])
	}
}

// scatterLSE copies a fused LSE back into the caller's dst [Hq, total_q].
func (t *tensors) scatterLSE(b *batch, src, dst []float32) {
	hq, tq := t.a.NumHeadsQ, t.a.TotalQ()
	for h := range hq {
		at := h * b.rowsQ
		for _, p := range b.pieces {
			g := h*tq + int(t.a.CuSeqlensQ[p.seg])
			at += copy(dst[g+p.q0:g+p.q1], src[at:])
		}
	}
}

// kvPart is one piece's dK and dV rows [0, len/row) of caller segment seg.
type kvPart struct {
	seg    int
	dk, dv []float32
}

// kvParts slices a fused dK and dV into the pieces' parts.
func (t *tensors) kvParts(b *batch, dk, dv []float32) []kvPart {
	row := t.rowK()
	out := make([]kvPart, len(b.pieces))
	at := 0
	for i, p := range b.pieces {
		n := p.k1 * row
		out[i] = kvPart{seg: p.seg, dk: dk[at : at+n], dv: dv[at : at+n]}
		at += n
	}
	return out
}

// addKV adds a part into the float64 accumulators of the caller's dK and dV.
func (t *tensors) addKV(p kvPart, dk, dv []float64) {
	g := int(t.a.CuSeqlensK[p.seg]) * t.rowK()
	for i, x := range p.dk {
		dk[g+i] += float64(x)
	}
	for i, x := range p.dv {
		dv[g+i] += float64(x)
	}
}
