package train

import (
	"fmt"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/disagg"
	"github.com/coreattn/coreattn/model"
)

// A cluster step lays the global batch out on slots: slot j holds global
// rows [j·R, (j+1)·R) in the order of disagg.Place (a document that
// overflows a slot continues on the next), and is nano-batch j/N of rank
// j%N. Slots are also the plan's attention servers: server j runs its
// tasks in nano-batch j/N's attention phase on rank j%N's device. Without
// ping-pong a slot is a rank.
//
// Inside a slot the rows are ordered for the attention operator, whose
// segments tile its buffers: first the documents whose query rows [0, e)
// the slot's own server computes (in place: those rows are their own key
// prefix), then every other row in global order. Every row-wise kernel is
// indifferent to the order; the positions and targets travel with the rows.

// rowRef names a row of a slot's buffers.
type rowRef struct{ slot, row int32 }

// slotLayout is one slot's rows in their local order.
type slotLayout struct {
	global []int32 // local row -> global row
	// inPlace lays out the rows [0, x) that the slot's own server computes
	// where they are: one segment per document, queries and keys the same
	// rows (nil when there are none).
	inPlace *attention.Args
	x       int
	// tokens, targets and positions of the local rows.
	tokens, targets, positions []int32
}

// work is a run of one document's query rows [q0, q1) that a server
// computes against the key prefix [0, q1) in its staging buffers: its
// plan's tasks of that document whose query rows touch, merged.
type work struct {
	doc, q0, q1 int
	round       int // how many earlier staged works of doc the server has
}

// serverLayout is what one attention server computes away from the rows'
// own buffers: a fused varlen batch over its staging buffers.
type serverLayout struct {
	works  []work
	staged *attention.Args // nil when every task runs in place
	// q[i] is the source of staging query row i (and the destination of
	// its output); k[i] of staging key row i, kRound[i] its work's round.
	q, k   []rowRef
	kRound []int
	rounds int
}

// arrangement is a step's layout of the global batch on the slots and the
// attention plan's traffic.
type arrangement struct {
	slots    int
	rows     int // R, rows per slot
	layout   *disagg.Layout
	plan     *disagg.Plan
	parts    []slotLayout
	servers  []serverLayout
	local    []int32 // global row -> local row in its slot
	nTargets int
}

// slotOf is the slot holding global row g.
func (a *arrangement) slotOf(g int) int { return g / a.rows }

// ref is where global row g lives.
func (a *arrangement) ref(g int) rowRef {
	return rowRef{slot: int32(a.slotOf(g)), row: a.local[g]}
}

// docLens returns the document lengths of b.
func docLens(b model.Batch) []int {
	lens := make([]int, len(b.CuSeqlens)-1)
	for d := range lens {
		lens[d] = int(b.CuSeqlens[d+1] - b.CuSeqlens[d])
	}
	return lens
}

// arrange lays b out on the plan's slots (plan.Layout must be b's layout
// on them) and works out what every server computes in place and what it
// stages. heads are the model's attention shapes.
func arrange(b model.Batch, plan *disagg.Plan, c model.Config) (*arrangement, error) {
	l := plan.Layout
	S, R := l.Ranks(), l.TokensPerRank()
	if int(l.Tokens()) != len(b.Tokens) || S*R != len(b.Tokens) {
		return nil, fmt.Errorf("train: a batch of %d tokens on %d slots of %d rows (layout of %d tokens)", len(b.Tokens), S, R, l.Tokens())
	}
	a := &arrangement{slots: S, rows: R, layout: l, plan: plan, parts: make([]slotLayout, S), servers: make([]serverLayout, S),
		local: make([]int32, len(b.Tokens)), nTargets: b.NumTargets()}
	for s := range S {
		a.servers[s].works = mergeTasks(plan.Tasks[s])
	}
	// The rows each slot computes in place come first, in document order.
	for s := range S {
		p := &a.parts[s]
		p.global = make([]int32, 0, R)
		placed := make([]bool, R)
		var cu []int32
		for i := range a.servers[s].works {
			w := &a.servers[s].works[i]
			if !a.inPlace(s, *w) {
				continue
			}
			start := int(l.DocStart(w.doc))
			for g := start; g < start+w.q1; g++ {
				p.global = append(p.global, int32(g))
				placed[g-s*R] = true
			}
			if cu == nil {
				cu = []int32{0}
			}
			cu = append(cu, int32(len(p.global)))
			w.round = -1 // computed in place
		}
		p.x = len(p.global)
		if cu != nil {
			p.inPlace = &attention.Args{CuSeqlensQ: cu, CuSeqlensK: cu, NumHeadsQ: c.HeadsQ, NumHeadsKV: c.HeadsKV, HeadDim: c.HeadDim, Causal: true}
		}
		for i, done := range placed {
			if !done {
				p.global = append(p.global, int32(s*R+i))
			}
		}
		for i, g := range p.global {
			a.local[g] = int32(i)
		}
	}
	a.fillRows(b)
	for s := range S {
		a.stage(s, c)
	}
	return a, nil
}

// mergeTasks merges a server's tasks (sorted by document, then query
// start) of one document whose query rows touch into works.
func mergeTasks(ts []disagg.Task) []work {
	var out []work
	for _, t := range ts {
		if n := len(out); n > 0 && out[n-1].doc == t.Doc && out[n-1].q1 == t.Q.Start {
			out[n-1].q1 = t.Q.End
			continue
		}
		out = append(out, work{doc: t.Doc, q0: t.Q.Start, q1: t.Q.End})
	}
	return out
}

// inPlace reports whether server s computes work w where its rows are: a
// prefix [0, q1) of a document that starts in slot s and whose rows all
// live there.
func (a *arrangement) inPlace(s int, w work) bool {
	l := a.layout
	return w.q0 == 0 && l.HomeRank(w.doc, 0) == s && l.HomeRank(w.doc, w.q1-1) == s
}

// fillRows writes every slot's tokens, targets and positions in local
// order, from the global batch: positions keep counting across slots and
// a continued document's last row on a slot predicts the next slot's
// first token.
func (a *arrangement) fillRows(b model.Batch) {
	tgt, pos := b.Targets(), b.Positions()
	for s := range a.parts {
		p := &a.parts[s]
		p.tokens, p.targets, p.positions = make([]int32, a.rows), make([]int32, a.rows), make([]int32, a.rows)
		for i, g := range p.global {
			p.tokens[i], p.targets[i], p.positions[i] = b.Tokens[g], tgt[g], pos[g]
		}
	}
}

// stage lays out server s's staged works: query rows, then key rows, work
// after work, each work's key prefix copied whole.
func (a *arrangement) stage(s int, c model.Config) {
	sv := &a.servers[s]
	cuQ, cuK := []int32{0}, []int32{0}
	rounds := map[int]int{}
	for i := range sv.works {
		w := &sv.works[i]
		if w.round < 0 {
			continue
		}
		w.round = rounds[w.doc]
		rounds[w.doc]++
		sv.rounds = max(sv.rounds, w.round+1)
		start := int(a.layout.DocStart(w.doc))
		for p := w.q0; p < w.q1; p++ {
			sv.q = append(sv.q, a.ref(start+p))
		}
		for p := 0; p < w.q1; p++ {
			sv.k = append(sv.k, a.ref(start+p))
			sv.kRound = append(sv.kRound, w.round)
		}
		cuQ = append(cuQ, int32(len(sv.q)))
		cuK = append(cuK, int32(len(sv.k)))
	}
	if len(cuQ) > 1 {
		sv.staged = &attention.Args{CuSeqlensQ: cuQ, CuSeqlensK: cuK, NumHeadsQ: c.HeadsQ, NumHeadsKV: c.HeadsKV, HeadDim: c.HeadDim, Causal: true}
	}
}
