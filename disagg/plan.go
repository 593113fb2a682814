package disagg

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// Plan assigns every CA-task of a Layout to an attention server. Server i is
// trainer rank i. Loads and byte counts are for one layer of the plan's Pass;
// every layer runs the same plan.
type Plan struct {
	// Layout is the global batch the plan covers.
	Layout *Layout
	// Arch and Pass are what the costs and bytes were computed for.
	Arch Arch
	Pass Pass
	// Epsilon is the tolerance the scheduler ran with (0 for packing).
	Epsilon float64
	// Tasks[s] are the tasks server s runs, sorted by document then query
	// start; a task with Src != s was moved there.
	Tasks [][]Task
	// Load[s] is server s's predicted core-attention seconds (one layer).
	Load []float64
	// Target is the load the scheduler aimed every server at: the mean load,
	// weighted by server speed when the servers differ.
	Target float64
	// BytesIn[s] and BytesOut[s] are the bytes server s receives and sends
	// for one layer: query-side traffic of tasks placed away from their home
	// rank and key/value rows that a task reads from another rank.
	BytesIn, BytesOut []int64
	// Moves counts the scheduler's moves (pieces carved off items).
	Moves int
}

// Imbalance returns max/mean of the per-server loads (1 is perfect balance);
// 1 for an empty batch.
func (p *Plan) Imbalance() float64 { return MaxOverMean(p.Load) }

// Bytes returns the bytes moved between servers for one layer.
func (p *Plan) Bytes() int64 {
	var n int64
	for _, b := range p.BytesIn {
		n += b
	}
	return n
}

// MaxLoad returns the largest per-server load.
func (p *Plan) MaxLoad() float64 { return slices.Max(p.Load) }

// Batch is what one attention server runs: its tasks as a fused varlen batch.
// Segment b has queries CuSeqlensQ[b]..CuSeqlensQ[b+1] (rows Tasks[b].Q of
// document Tasks[b].Doc) and keys CuSeqlensK[b]..CuSeqlensK[b+1] (rows
// Tasks[b].KV() of the same document), bottom-right causal.
type Batch struct {
	Tasks      []Task
	CuSeqlensQ []int32
	CuSeqlensK []int32
}

// Batch returns server s's fused varlen batch.
func (p *Plan) Batch(s int) (Batch, error) {
	if s < 0 || s >= len(p.Tasks) {
		return Batch{}, fmt.Errorf("disagg: batch: server %d out of range [0, %d)", s, len(p.Tasks))
	}
	ts := p.Tasks[s]
	b := Batch{Tasks: ts, CuSeqlensQ: make([]int32, len(ts)+1), CuSeqlensK: make([]int32, len(ts)+1)}
	var q, k int64
	for i, t := range ts {
		q += int64(t.Q.Len())
		k += int64(t.Q.End)
		if k > math.MaxInt32 {
			return Batch{}, fmt.Errorf("disagg: batch: server %d needs %d key rows, more than int32 offsets hold", s, k)
		}
		b.CuSeqlensQ[i+1], b.CuSeqlensK[i+1] = int32(q), int32(k)
	}
	return b, nil
}

// Verify checks the plan's invariants: every query token of every document is
// computed by exactly one task, every task's query rows all live on its Src
// rank, and every task is a valid segment (its KV prefix [0, Q.End) is implied).
func (p *Plan) Verify() error {
	l := p.Layout
	if len(p.Tasks) != l.Ranks() {
		return fmt.Errorf("disagg: plan has %d servers, layout %d ranks", len(p.Tasks), l.Ranks())
	}
	perDoc := make([][]Range, l.NumDocs())
	for s, ts := range p.Tasks {
		for i, t := range ts {
			if t.Doc < 0 || t.Doc >= l.NumDocs() {
				return fmt.Errorf("disagg: server %d task %d: document %d out of range", s, i, t.Doc)
			}
			if t.Q.Empty() || t.Q.Start < 0 || t.Q.End > l.DocLen(t.Doc) {
				return fmt.Errorf("disagg: server %d task %d: query rows [%d, %d) invalid for document %d of length %d", s, i, t.Q.Start, t.Q.End, t.Doc, l.DocLen(t.Doc))
			}
			if a, b := l.HomeRank(t.Doc, t.Q.Start), l.HomeRank(t.Doc, t.Q.End-1); a != t.Src || b != t.Src {
				return fmt.Errorf("disagg: server %d task %d: query rows [%d, %d) of document %d live on ranks %d..%d, task says %d", s, i, t.Q.Start, t.Q.End, t.Doc, a, b, t.Src)
			}
			perDoc[t.Doc] = append(perDoc[t.Doc], t.Q)
		}
	}
	for d, rs := range perDoc {
		slices.SortFunc(rs, func(a, b Range) int { return cmp.Compare(a.Start, b.Start) })
		at := 0
		for _, r := range rs {
			if r.Start != at {
				if r.Start < at {
					return fmt.Errorf("disagg: document %d: query rows [%d, %d) computed twice", d, r.Start, at)
				}
				return fmt.Errorf("disagg: document %d: query rows [%d, %d) not computed", d, at, r.Start)
			}
			at = r.End
		}
		if at != l.DocLen(d) {
			return fmt.Errorf("disagg: document %d: query rows [%d, %d) not computed", d, at, l.DocLen(d))
		}
	}
	return nil
}

// newPlan returns an empty plan for layout l.
func newPlan(l *Layout, m Arch, pass Pass, eps float64) *Plan {
	n := l.Ranks()
	return &Plan{
		Layout: l, Arch: m, Pass: pass, Epsilon: eps,
		Tasks: make([][]Task, n), Load: make([]float64, n),
		BytesIn: make([]int64, n), BytesOut: make([]int64, n),
	}
}

// finish sorts each server's tasks and recomputes loads and byte counts from
// scratch, so that the reported figures never depend on incremental updates.
func (p *Plan) finish(costs []CostModel) {
	for s := range p.Tasks {
		slices.SortFunc(p.Tasks[s], func(a, b Task) int {
			return cmp.Or(cmp.Compare(a.Doc, b.Doc), cmp.Compare(a.Q.Start, b.Q.Start))
		})
	}
	clear(p.BytesIn)
	clear(p.BytesOut)
	for s, ts := range p.Tasks {
		var load float64
		for _, t := range ts {
			load += costs[s].TaskTime(t.Q.Len(), t.Q.End, p.Pass)
		}
		p.Load[s] = load
	}
	acc := newByteCounter(p.Layout, p.Arch, p.Pass)
	for s, ts := range p.Tasks {
		for i, t := range ts {
			acc.addQuery(t, s, p.BytesIn, p.BytesOut)
			// Tasks are sorted by document, so the last task of a document
			// on this server has the longest prefix: its key/value rows are
			// fetched once and shared by the document's other tasks here.
			if i+1 == len(ts) || ts[i+1].Doc != t.Doc {
				acc.addKV(t.Doc, 0, t.Q.End, s, p.BytesIn, p.BytesOut)
			}
		}
	}
}

// byteCounter charges the traffic of running tasks on servers. Query-side
// traffic is per task; key/value rows are fetched once per (document, server)
// and shared by all of the document's tasks there, whose prefixes nest.
type byteCounter struct {
	l                    *Layout
	qIn, qOut, kIn, kOut int64
}

func newByteCounter(l *Layout, m Arch, pass Pass) byteCounter {
	c := byteCounter{l: l}
	c.qIn, c.qOut = m.QRowBytes(pass)
	c.kIn, c.kOut = m.KVRowBytes(pass)
	return c
}

// addQuery charges the query-side traffic of task t running on server s.
func (c byteCounter) addQuery(t Task, s int, in, out []int64) {
	if t.Src == s {
		return
	}
	rows := int64(t.Q.Len())
	in[s] += c.qIn * rows
	out[t.Src] += c.qIn * rows
	out[s] += c.qOut * rows
	in[t.Src] += c.qOut * rows
}

// addKV charges server s for the key/value rows [from, to) of document d that
// live on other ranks.
func (c byteCounter) addKV(d, from, to, s int, in, out []int64) {
	c.l.forEachRemoteRows(d, Range{from, to}, s, func(q, rows int) {
		in[s] += c.kIn * int64(rows)
		out[q] += c.kIn * int64(rows)
		out[s] += c.kOut * int64(rows)
		in[q] += c.kOut * int64(rows)
	})
}

// queryBytes is the traffic, both directions, of rows query rows run away
// from home.
func (c byteCounter) queryBytes(rows int) int64 { return (c.qIn + c.qOut) * int64(rows) }

// kvBytes is the traffic, both directions, of server s fetching the
// key/value rows [from, to) of document d from the ranks holding them.
func (c byteCounter) kvBytes(d, from, to, s int) int64 {
	if to <= from {
		return 0
	}
	remote := (to - from) - c.l.ChunkOn(d, s).intersect(Range{from, to}).Len()
	return (c.kIn + c.kOut) * int64(remote)
}

// MaxOverMean returns max(v)/mean(v), or 1 when v is empty or all zero.
func MaxOverMean(v []float64) float64 {
	if len(v) == 0 {
		return 1
	}
	var sum, mx float64
	for _, x := range v {
		sum += x
		mx = max(mx, x)
	}
	if sum <= 0 {
		return 1
	}
	return mx / (sum / float64(len(v)))
}

// Without returns a copy of p in which the servers in down run nothing: their
// tasks go, most expensive first, to the healthy server where they would
// finish earliest (ties to the lower index). Tasks keep their Src: their rows
// still come from the home rank's data. A pool uses it to re-plan a batch
// after a server fails. costs holds one cost model per server, or one for all.
func (p *Plan) Without(down []int, costs []CostModel) (*Plan, error) {
	n := len(p.Tasks)
	costs, err := ExpandCosts(costs, n)
	if err != nil {
		return nil, err
	}
	isDown := make([]bool, n)
	for _, s := range down {
		if s < 0 || s >= n {
			return nil, fmt.Errorf("disagg: without: server %d out of range [0, %d)", s, n)
		}
		isDown[s] = true
	}
	q := newPlan(p.Layout, p.Arch, p.Pass, p.Epsilon)
	q.Moves, q.Target = p.Moves, p.Target
	var orphans []Task
	healthy := 0
	for s, ts := range p.Tasks {
		if isDown[s] {
			orphans = append(orphans, ts...)
			continue
		}
		healthy++
		q.Tasks[s] = slices.Clone(ts)
		for _, t := range ts {
			q.Load[s] += costs[s].TaskTime(t.Q.Len(), t.Q.End, p.Pass)
		}
	}
	if healthy == 0 {
		return nil, fmt.Errorf("disagg: without: all %d servers are down", n)
	}
	slices.SortStableFunc(orphans, func(a, b Task) int { return cmp.Compare(b.Pairs(), a.Pairs()) })
	for _, t := range orphans {
		best, bestEnd := -1, 0.0
		for s := range n {
			if isDown[s] {
				continue
			}
			if end := q.Load[s] + costs[s].TaskTime(t.Q.Len(), t.Q.End, p.Pass); best < 0 || end < bestEnd {
				best, bestEnd = s, end
			}
		}
		q.Tasks[best] = append(q.Tasks[best], t)
		q.Load[best] = bestEnd
		q.Moves++
	}
	q.finish(costs)
	return q, nil
}
