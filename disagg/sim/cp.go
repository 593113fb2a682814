package sim

import (
	"cmp"
	"slices"

	"github.com/coreattn/coreattn/disagg"
)

// CP baselines: a replica (DP group) of C servers runs each of its
// microbatches with context parallelism. Both K and V are all-gathered over
// the group in the forward and kept for the backward (so no second
// all-gather), and dK, dV are reduce-scattered in the backward.

// cpMicro is one microbatch on one CP group: per rank its resident tokens
// and attention tasks.
type cpMicro struct {
	tokens []int
	tasks  [][]disagg.Segment
}

// perDocShards is WLB-LLM's per-document CP sharding
// (compute_per_doc_cp_shard_doc_len): every document is cut into 2C shards
// of equal length, the remainders handed out round-robin by one counter that
// runs across documents; rank i takes shards i and 2C-1-i.
func perDocShards(docs []int, c int) cpMicro {
	m := cpMicro{tokens: make([]int, c), tasks: make([][]disagg.Segment, c)}
	k := 2 * c
	rem := 0
	lens := make([]int, k)
	for _, d := range docs {
		for i := range lens {
			lens[i] = d / k
		}
		for n := d - d/k*k; n > 0; n-- {
			lens[rem]++
			rem = (rem + 1) % k
		}
		prefix := 0
		for i, n := range lens {
			if n == 0 {
				continue
			}
			rank := i
			if i >= c {
				rank = k - 1 - i
			}
			m.tokens[rank] += n
			m.tasks[rank] = append(m.tasks[rank], disagg.Segment{QLen: n, KLen: prefix + n})
			prefix += n
		}
	}
	return m
}

// perSeqShards is Megatron's per-sequence CP with zigzag sharding: every
// sequence (a context of packed documents) is cut into 2C chunks, rank i
// takes chunks i and 2C-1-i, and attends, inside each chunk, to the causal
// prefix of each document the chunk touches.
func perSeqShards(seqs [][]int, c int) cpMicro {
	m := cpMicro{tokens: make([]int, c), tasks: make([][]disagg.Segment, c)}
	for _, seq := range seqs {
		total := sum(seq)
		for rank, pair := range HeadTailShards(total, c) {
			for _, ch := range pair {
				m.tokens[rank] += ch.Len()
				start := 0
				for _, d := range seq {
					a, b := max(ch.Start, start), min(ch.End, start+d)
					if a < b {
						m.tasks[rank] = append(m.tasks[rank], disagg.Segment{QLen: b - a, KLen: b - start})
					}
					start += d
				}
			}
		}
	}
	return m
}

// cpTimes are one microbatch's per-layer seconds on a CP group.
type cpTimes struct {
	fwd, bwd    float64 // group time per layer: slowest rank plus collectives
	fwd0, bwd0  float64 // the same without the collectives
	attnF, attn []float64
	lin         []float64 // per rank, whole microbatch per layer (fwd+bwd)
	kvRows      int       // gathered key/value rows (the group's tokens)
	netBytes    float64   // per layer, all ranks, both passes
}

// cpMicroTimes times one microbatch on the CP group of c servers starting at
// server first.
func (r *runner) cpMicroTimes(m cpMicro, first int) cpTimes {
	cl, a := r.cfg.Cluster, r.cfg.Arch
	c := len(m.tokens)
	t := cpTimes{attnF: make([]float64, c), attn: make([]float64, c), lin: make([]float64, c)}
	var linF, linB, caF, caB float64
	for i := range c {
		g := r.costs[first+i]
		var f, b float64
		for _, s := range m.tasks[i] {
			f += g.TaskTime(s.QLen, s.KLen, disagg.PassForward)
			b += g.TaskTime(s.QLen, s.KLen, disagg.PassBackward)
		}
		f, b = f/float64(cl.TP), b/float64(cl.TP)
		t.attnF[i], t.attn[i] = f, f+b
		lf := cl.linearTime(a, float64(m.tokens[i]), 1, disagg.PassForward)
		lb := cl.linearTime(a, float64(m.tokens[i]), 1, disagg.PassBackward)
		t.lin[i] = lf + lb
		linF, linB, caF, caB = max(linF, lf), max(linB, lb), max(caF, f), max(caB, b)
		t.kvRows += m.tokens[i]
	}
	// Ring all-gather (and reduce-scatter) per TP rank: each GPU moves the
	// rows the other ranks own, over NVLink when the group fits a node.
	kvRow, _ := a.KVRowBytes(disagg.PassForward)
	var coll float64
	if c > 1 {
		bw := cl.InterBW
		if c*cl.TP <= cl.GPUsPerNode {
			bw = cl.IntraBW
		}
		for i := range c {
			other := float64(t.kvRows-m.tokens[i]) * float64(kvRow)
			coll = max(coll, other/float64(cl.TP)/bw)
			t.netBytes += 2 * other
		}
	}
	t.fwd0, t.bwd0 = linF+caF, linB+caB
	t.fwd, t.bwd = t.fwd0+coll, t.bwd0+coll
	return t
}

// oneFOneB returns the makespan of a 1F1B pipeline of p stages over
// microbatches whose per-stage forward and backward seconds are f[j], b[j].
func oneFOneB(f, b []float64, p int) float64 {
	m := len(f)
	if m == 0 {
		return 0
	}
	type op struct {
		fwd bool
		j   int
	}
	orders := make([][]op, p)
	for k := range p {
		warm := min(p-k-1, m)
		for j := range warm {
			orders[k] = append(orders[k], op{true, j})
		}
		for i := range m - warm {
			orders[k] = append(orders[k], op{true, warm + i}, op{false, i})
		}
		for j := m - warm; j < m; j++ {
			orders[k] = append(orders[k], op{false, j})
		}
	}
	fEnd, bEnd := make([][]float64, p), make([][]float64, p)
	for k := range p {
		fEnd[k], bEnd[k] = make([]float64, m), make([]float64, m)
		for j := range m {
			fEnd[k][j], bEnd[k][j] = -1, -1
		}
	}
	next, free := make([]int, p), make([]float64, p)
	for done := 0; done < 2*p*m; {
		progressed := false
		for k := range p {
			for next[k] < len(orders[k]) {
				o := orders[k][next[k]]
				var dep float64
				if o.fwd && k > 0 {
					if dep = fEnd[k-1][o.j]; dep < 0 {
						break
					}
				}
				if !o.fwd && k < p-1 {
					if dep = bEnd[k+1][o.j]; dep < 0 {
						break
					}
				}
				start := max(free[k], dep)
				if o.fwd {
					free[k] = start + f[o.j]
					fEnd[k][o.j] = free[k]
				} else {
					free[k] = start + b[o.j]
					bEnd[k][o.j] = free[k]
				}
				next[k]++
				done++
				progressed = true
			}
		}
		if !progressed {
			break // unreachable for a valid 1F1B order
		}
	}
	return slices.Max(free)
}

// wlbPack is WLB-LLM's variable-length packing (balance_data_for_wlbllm
// without deferral): documents, longest first, go to the bin with the least
// workload Σ(x²+x), x = length/breakpoint, unless that breaks the token cap,
// then to the bin with the fewest tokens if that fits, else they wait and go,
// at the end, to the bin with the least workload whatever the cap.
func wlbPack(docs []int, bins int, capTokens int, breakpoint float64) [][]int {
	out := make([][]int, bins)
	if bins == 1 {
		out[0] = slices.Clone(docs)
		return out
	}
	sorted := slices.Clone(docs)
	slices.SortStableFunc(sorted, func(a, b int) int { return cmp.Compare(b, a) })
	work := make([]float64, bins)
	length := make([]int, bins)
	put := func(i, d int) {
		out[i] = append(out[i], d)
		x := float64(d) / breakpoint
		work[i] += x*x + x
		length[i] += d
	}
	argmin := func(v func(i int) float64) int {
		best := 0
		for i := 1; i < bins; i++ {
			if v(i) < v(best) {
				best = i
			}
		}
		return best
	}
	var rest []int
	for _, d := range sorted {
		w := argmin(func(i int) float64 { return work[i] })
		l := argmin(func(i int) float64 { return float64(length[i]) })
		switch {
		case length[w]+d <= capTokens:
			put(w, d)
		case length[l]+d <= capTokens:
			put(l, d)
		default:
			rest = append(rest, d)
		}
	}
	for _, d := range rest {
		put(argmin(func(i int) float64 { return work[i] }), d)
	}
	return out
}
