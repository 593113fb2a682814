package disagg

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// DefaultEpsilon is the paper's default scheduling tolerance.
const DefaultEpsilon = 0.1

// MinEpsilon is the tolerance the scheduler uses when asked for less: moving
// work to balance servers closer than 0.1% of the mean costs bytes for gains
// below any cost model's accuracy.
const MinEpsilon = 1e-3

// Options configures Pack and Schedule.
type Options struct {
	// Arch gives head shapes and element sizes for FLOPs and bytes.
	Arch Arch
	// Pass is the pass whose time is balanced and whose bytes are counted
	// (the zero value, PassTraining, is forward plus backward).
	Pass Pass
	// Epsilon is the tolerance: the scheduler stops once every server's load
	// is within Epsilon·Target of Target (0 balances as far as block
	// granularity allows). Use DefaultEpsilon for the paper's setting.
	Epsilon float64
	// BlockSize is the shard granularity in tokens; 0 means DefaultBlockSize.
	BlockSize int
}

// Normalize checks o and fills in its defaults (the block size).
func (o *Options) Normalize() error {
	if err := o.Arch.Validate(); err != nil {
		return err
	}
	if !o.Pass.Valid() {
		return fmt.Errorf("disagg: unknown pass %d", int(o.Pass))
	}
	if !(o.Epsilon >= 0) || math.IsInf(o.Epsilon, 0) {
		return fmt.Errorf("disagg: epsilon %g must be a non-negative number", o.Epsilon)
	}
	if o.BlockSize < 0 {
		return fmt.Errorf("disagg: block size %d must not be negative", o.BlockSize)
	}
	if o.BlockSize == 0 {
		o.BlockSize = DefaultBlockSize
	}
	return nil
}

// ExpandCosts returns one cost model per server from one per server or one
// for all.
func ExpandCosts(costs []CostModel, n int) ([]CostModel, error) {
	switch len(costs) {
	case n:
		costs = slices.Clone(costs)
	case 1:
		c := costs[0]
		costs = make([]CostModel, n)
		for i := range costs {
			costs[i] = c
		}
	default:
		return nil, fmt.Errorf("disagg: %d cost models for %d servers (want 1 or %d)", len(costs), n, n)
	}
	for i, c := range costs {
		if c == nil {
			return nil, fmt.Errorf("disagg: cost model of server %d is nil", i)
		}
	}
	return costs, nil
}

func (o *Options) check(l *Layout, costs []CostModel) ([]CostModel, error) {
	if l == nil {
		return nil, fmt.Errorf("disagg: layout is nil")
	}
	if err := o.Normalize(); err != nil {
		return nil, err
	}
	return ExpandCosts(costs, l.Ranks())
}

// Pack returns the plan without disaggregation: every chunk's CA-task runs on
// its home rank (key/value rows of a document's earlier chunks are still read
// from the ranks holding them). costs holds one cost model per server, or one
// for all.
func Pack(l *Layout, costs []CostModel, opt Options) (*Plan, error) {
	costs, err := opt.check(l, costs)
	if err != nil {
		return nil, err
	}
	p := newPlan(l, opt.Arch, opt.Pass, 0)
	for _, c := range l.Chunks() {
		p.Tasks[c.Rank] = append(p.Tasks[c.Rank], Task{Doc: c.Doc, Src: c.Rank, Q: c.Range})
	}
	p.finish(costs)
	p.Target = meanF(0, p.Load)
	return p, nil
}

func meanF(def float64, v []float64) float64 {
	if len(v) == 0 {
		return def
	}
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// Schedule balances the CA-tasks of l over the servers with the paper's
// communication-aware greedy: the target is the (speed-weighted) mean load;
// servers in deficit, largest deficit first, are filled from servers in
// surplus by the move that carries the most FLOPs per byte sent, cutting an
// item (at block granularity, from the middle of its head-tail pair) when only
// part of it is needed; a second pass drains any server still more than
// Epsilon above the target. It stops when every server is within
// Epsilon·Target of the target or no move helps. The result depends only on
// its inputs. costs holds one cost model per server, or one for all; servers
// may differ in speed, and the schedule balances predicted time.
func Schedule(l *Layout, costs []CostModel, opt Options) (*Plan, error) {
	costs, err := opt.check(l, costs)
	if err != nil {
		return nil, err
	}
	s := newSched(l, costs, opt)
	s.fill()
	s.drain()
	return s.plan(), nil
}

// sitem is the scheduler's view of an Item: the unmoved part of the chunk
// [a, b) of document doc on rank src, cut into nb blocks; it still holds the
// head blocks [0, h) and the tail blocks [nb-t, nb), with t-h in {0, 1}.
type sitem struct {
	doc, src int
	a, b     int
	nb, h, t int
	time     float64 // predicted seconds on src of what remains
}

type move struct {
	item       int
	c          int // blocks carved
	head, tail Range
	prio       float64
}

type sched struct {
	l        *Layout
	costs    []CostModel
	opt      Options
	block    int
	pairFLOP float64
	bytes    byteCounter
	items    []sitem
	byServer [][]int32      // unmoved items by home rank, longest prefix first
	cursor   []int          // byServer[d][:cursor[d]] are used up
	kvEnd    map[uint64]int // (document, server) -> key/value rows [0, end) already there
	qRow     float64        // bytes per query row moved, both directions
	speed    []float64      // FLOP/s estimate per server
	load     []float64
	target   float64
	tol      float64
	moved    [][]Task
	moves    int
}

func newSched(l *Layout, costs []CostModel, opt Options) *sched {
	n := l.Ranks()
	s := &sched{
		l: l, costs: costs, opt: opt, block: opt.BlockSize,
		pairFLOP: opt.Arch.pairFLOPs(opt.Pass),
		bytes:    newByteCounter(l, opt.Arch, opt.Pass),
		byServer: make([][]int32, n), cursor: make([]int, n), speed: make([]float64, n), load: make([]float64, n),
		moved: make([][]Task, n), kvEnd: make(map[uint64]int),
	}
	s.qRow = float64(s.bytes.queryBytes(1))
	for _, c := range l.Chunks() {
		nb := (c.Len() + s.block - 1) / s.block
		it := sitem{doc: c.Doc, src: c.Rank, a: c.Start, b: c.End, nb: nb, h: nb / 2, t: nb - nb/2}
		head, tail := s.remaining(&it)
		it.time = s.rangesTime(c.Rank, head, tail)
		s.load[c.Rank] += it.time
		s.byServer[c.Rank] = append(s.byServer[c.Rank], int32(len(s.items)))
		s.items = append(s.items, it)
		s.kvEnd[kvKey(c.Doc, c.Rank)] = c.End
	}
	for _, list := range s.byServer {
		slices.SortStableFunc(list, func(x, y int32) int { return cmp.Compare(s.items[y].b, s.items[x].b) })
	}
	s.estimateSpeeds()
	var w, v float64
	for i := range n {
		w += s.load[i] * s.speed[i]
		v += s.speed[i]
	}
	s.target = w / v
	s.tol = max(opt.Epsilon, MinEpsilon) * s.target
	return s
}

// estimateSpeeds sets each server's effective FLOP/s on a deterministic
// sample of this batch's items, so that FLOPs convert to seconds per server.
func (s *sched) estimateSpeeds() {
	const samples = 64
	var sample []Segment
	if k := len(s.items); k > 0 {
		stride := max(1, k/samples)
		for i := 0; i < k && len(sample) < samples; i += stride {
			it := &s.items[i]
			sample = append(sample, Segment{QLen: it.b - it.a, KLen: it.b})
		}
	} else {
		sample = []Segment{{QLen: 4096, KLen: 4096}}
	}
	var flops float64
	for _, g := range sample {
		flops += s.pairFLOP * float64(CausalPairs(g.QLen, g.KLen))
	}
	for i, c := range s.costs {
		var t float64
		for _, g := range sample {
			t += c.TaskTime(g.QLen, g.KLen, s.opt.Pass)
		}
		s.speed[i] = 1
		if t > 0 && flops > 0 {
			s.speed[i] = flops / t
		}
	}
}

// pos is the first token of block j of it (b for j == nb).
func (s *sched) pos(it *sitem, j int) int { return min(it.a+j*s.block, it.b) }

// remaining returns the head and tail ranges it still holds.
func (s *sched) remaining(it *sitem) (head, tail Range) {
	return Range{it.a, s.pos(it, it.h)}, Range{s.pos(it, it.nb-it.t), it.b}
}

// carve returns the ranges of c blocks cut from the middle of it (the inner
// end of the head and the inner start of the tail, keeping the tail at most
// one block longer than the head) and the new block counts.
func (s *sched) carve(it *sitem, c int) (head, tail Range, h2, t2 int) {
	r := it.h + it.t - c
	h2, t2 = r/2, r-r/2
	head = Range{s.pos(it, h2), s.pos(it, it.h)}
	tail = Range{s.pos(it, it.nb-it.t), s.pos(it, it.nb-t2)}
	return head, tail, h2, t2
}

func pairsOf(head, tail Range) int64 {
	return rangePairs(head.Start, head.End) + rangePairs(tail.Start, tail.End)
}

// segmentsOf returns the query ranges of a head/tail pair as tasks' ranges:
// one when they touch.
func segmentsOf(head, tail Range) []Range {
	switch {
	case head.Empty() && tail.Empty():
		return nil
	case head.Empty():
		return []Range{tail}
	case tail.Empty():
		return []Range{head}
	case head.End == tail.Start:
		return []Range{{head.Start, tail.End}}
	}
	return []Range{head, tail}
}

func (s *sched) rangesTime(server int, head, tail Range) float64 {
	var t float64
	for _, r := range segmentsOf(head, tail) {
		t += s.costs[server].TaskTime(r.Len(), r.End, s.opt.Pass)
	}
	return t
}

// bestCarve returns the largest number of blocks of it whose pairs do not
// exceed want, or 1 when even one block exceeds want but carries less than
// twice want and less than limit (moving it still shrinks the imbalance and
// leaves the recipient below the donor); 0 when nothing fits.
func (s *sched) bestCarve(it *sitem, want, limit float64) int {
	lo, hi := 0, it.h+it.t // pairs(carve lo) <= want
	for lo < hi {
		mid := (lo + hi + 1) / 2
		head, tail, _, _ := s.carve(it, mid)
		if float64(pairsOf(head, tail)) <= want {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	if lo == 0 && it.h+it.t > 0 {
		head, tail, _, _ := s.carve(it, 1)
		if p := float64(pairsOf(head, tail)); p < 2*want && p < limit {
			return 1
		}
	}
	return lo
}

func kvKey(doc, server int) uint64 { return uint64(doc)<<32 | uint64(uint32(server)) }

// consider evaluates moving part of item ii to server r, at most want pairs
// (see bestCarve for limit), and keeps it in best when it carries more pairs
// per byte.
func (s *sched) consider(ii int32, r int, want, limit float64, best *move) {
	it := &s.items[ii]
	have := s.kvEnd[kvKey(it.doc, r)]
	// Cheap bound first: at most min(2·want, what remains) pairs, each row
	// carrying at most b pairs, and at least the key/value rows up to the
	// inner edge of the head (or the first tail row) that r lacks.
	head, tail := s.remaining(it)
	p := min(2*want, float64(pairsOf(head, tail)))
	lowEnd := tail.Start + 1
	if !head.Empty() {
		lowEnd = head.End
	}
	minBytes := s.qRow*p/float64(it.b) + float64(s.bytes.kvBytes(it.doc, have, lowEnd, r))
	if p/minBytes < best.prio {
		return
	}
	c := s.bestCarve(it, want, limit)
	if c == 0 {
		return
	}
	head, tail, _, _ = s.carve(it, c)
	end := max(head.End, tail.End)
	by := s.bytes.queryBytes(head.Len()+tail.Len()) + s.bytes.kvBytes(it.doc, have, end, r)
	prio := float64(pairsOf(head, tail)) / float64(max(by, 1))
	if prio > best.prio || (prio == best.prio && int(ii) < best.item) {
		*best = move{item: int(ii), c: c, head: head, tail: tail, prio: prio}
	}
}

// top returns the first unused item of server d, or -1.
func (s *sched) top(d int) int32 {
	list := s.byServer[d]
	for s.cursor[d] < len(list) {
		if it := &s.items[list[s.cursor[d]]]; it.h+it.t > 0 {
			return list[s.cursor[d]]
		}
		s.cursor[d]++
	}
	return -1
}

// bound is an upper bound on the pairs per byte of any move out of item ii:
// a query row at position p carries at most p+1 <= b pairs and costs at least
// qRow bytes.
func (s *sched) bound(ii int32) float64 { return float64(s.items[ii].b) / s.qRow }

// scan considers donor d's items for recipient r, longest prefix first,
// until the bound shows no further item can beat best.
func (s *sched) scan(d, r int, need float64, best *move) {
	surplus := s.load[d] - s.target
	if surplus <= 0 || d == r || s.top(d) < 0 {
		return
	}
	want := min(need*s.speed[r], surplus*s.speed[d]) / s.pairFLOP
	limit := (s.load[d] - s.load[r]) * s.speed[r] / s.pairFLOP
	list := s.byServer[d]
	for _, ii := range list[s.cursor[d]:] {
		if s.bound(ii) < best.prio {
			return
		}
		if it := &s.items[ii]; it.h+it.t > 0 {
			s.consider(ii, r, want, limit, best)
		}
	}
}

// best finds the best move of at most need seconds into server r; donor < 0
// means from any server in surplus, otherwise only from that one.
func (s *sched) best(r, donor int, need float64) (move, bool) {
	bm := move{item: -1, prio: -1}
	if donor >= 0 {
		s.scan(donor, r, need, &bm)
		return bm, bm.item >= 0
	}
	// The donor with the most promising item first, so that the bound prunes
	// the others.
	first, fb := -1, -1.0
	for d, x := range s.load {
		if x <= s.target || d == r {
			continue
		}
		if ii := s.top(d); ii >= 0 && s.bound(ii) > fb {
			first, fb = d, s.bound(ii)
		}
	}
	if first < 0 {
		return bm, false
	}
	s.scan(first, r, need, &bm)
	for d, x := range s.load {
		if d == first || x <= s.target || d == r {
			continue
		}
		if ii := s.top(d); ii >= 0 && s.bound(ii) >= bm.prio {
			s.scan(d, r, need, &bm)
		}
	}
	return bm, bm.item >= 0
}

func (s *sched) apply(r int, mv move) {
	it := &s.items[mv.item]
	_, _, h2, t2 := s.carve(it, mv.c)
	it.h, it.t = h2, t2
	old := it.time
	head, tail := s.remaining(it)
	it.time = s.rangesTime(it.src, head, tail)
	s.load[it.src] += it.time - old
	for _, q := range segmentsOf(mv.head, mv.tail) {
		s.moved[r] = append(s.moved[r], Task{Doc: it.doc, Src: it.src, Q: q})
	}
	k := kvKey(it.doc, r)
	s.kvEnd[k] = max(s.kvEnd[k], mv.head.End, mv.tail.End)
	s.load[r] += s.rangesTime(r, mv.head, mv.tail)
	s.moves++
}

// fill is the paper's loop: servers in deficit, largest first, take work from
// servers in surplus until within tolerance.
func (s *sched) fill() {
	var order []int
	for i, x := range s.load {
		if x < s.target {
			order = append(order, i)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(s.load[a], s.load[b]) })
	for _, r := range order {
		for s.target-s.load[r] > s.tol {
			mv, ok := s.best(r, -1, s.target-s.load[r])
			if !ok {
				break
			}
			s.apply(r, mv)
		}
	}
}

// drain moves work off servers still above the tolerance band onto servers
// below the target, least loaded first.
func (s *sched) drain() {
	stuck := make([]bool, len(s.load))
	order := make([]int, len(s.load))
	for {
		d := -1
		for i, x := range s.load {
			if !stuck[i] && (d < 0 || x > s.load[d]) {
				d = i
			}
		}
		if d < 0 || s.load[d]-s.target <= s.tol {
			return
		}
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(s.load[a], s.load[b]) })
		// First fill servers below the target up to the top of the band;
		// when no such move exists (the donor's blocks are too coarse), let
		// the least-loaded servers take half their gap to d, which still
		// lowers the maximum.
		moved := s.drainTo(d, order, func(r int) float64 { return s.target + s.tol - s.load[r] }) ||
			s.drainTo(d, order, func(r int) float64 { return (s.load[d] - s.load[r]) / 2 })
		stuck[d] = !moved
	}
}

// drainTo applies the best move from d into the first server of order (least
// loaded first) that can take some of its work, with room(r) seconds of room.
func (s *sched) drainTo(d int, order []int, room func(r int) float64) bool {
	for _, r := range order {
		if r == d || s.load[r] >= s.load[d] {
			break
		}
		if need := room(r); need > 0 {
			if mv, ok := s.best(r, d, need); ok {
				s.apply(r, mv)
				return true
			}
		}
	}
	return false
}

func (s *sched) plan() *Plan {
	p := newPlan(s.l, s.opt.Arch, s.opt.Pass, s.opt.Epsilon)
	for r := range p.Tasks {
		p.Tasks[r] = s.moved[r]
		for _, ii := range s.byServer[r] {
			it := &s.items[ii]
			head, tail := s.remaining(it)
			for _, q := range segmentsOf(head, tail) {
				p.Tasks[r] = append(p.Tasks[r], Task{Doc: it.doc, Src: it.src, Q: q})
			}
		}
	}
	p.Target = s.target
	p.Moves = s.moves
	p.finish(s.costs)
	return p
}
