package sim

import (
	"fmt"
	"slices"

	"github.com/coreattn/coreattn/disagg"
)

// DistCA's tolerance candidates from its minimum (MIN_TOLERANCE_FACTOR 0.05)
// up, as tests/test_e2e_combined.py tries them: the first whose plan's
// all-to-alls fit every rank's buffer is used.
var bufferEpsilons = []float64{0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0}

// Phases of one layer's CA communication.
const (
	phaseFwdDispatch = iota // Q, K, V to the attention servers
	phaseFwdReturn          // O, LSE back
	phaseBwdDispatch        // Q, dO, LSE, Delta and K, V again
	phaseBwdReturn          // dQ back, dK, dV back to the K/V holders
	numPhases
)

// cadTraffic returns, per phase and server, the bytes of one layer of plan
// p: query-side rows between a task's home rank and its server, and the
// key/value prefix of every (document, server) from the ranks holding it;
// a server's own rows count as self (they still pass through the buffer).
func cadTraffic(c Cluster, p *disagg.Plan) [numPhases][]linkBytes {
	n := len(p.Tasks)
	var out [numPhases][]linkBytes
	for i := range out {
		out[i] = make([]linkBytes, n)
	}
	add := func(ph, from, to int, b int64) {
		if b == 0 {
			return
		}
		out[ph][to].add(c, from, to, b, true)
		if from != to {
			out[ph][from].add(c, from, to, b, false)
		}
	}
	qfIn, qfOut := p.Arch.QRowBytes(disagg.PassForward)
	qbIn, qbOut := p.Arch.QRowBytes(disagg.PassBackward)
	kvf, _ := p.Arch.KVRowBytes(disagg.PassForward)
	kvbIn, kvbOut := p.Arch.KVRowBytes(disagg.PassBackward)
	l := p.Layout
	for s, ts := range p.Tasks {
		for i, t := range ts {
			rows := int64(t.Q.Len())
			add(phaseFwdDispatch, t.Src, s, qfIn*rows)
			add(phaseFwdReturn, s, t.Src, qfOut*rows)
			add(phaseBwdDispatch, t.Src, s, qbIn*rows)
			add(phaseBwdReturn, s, t.Src, qbOut*rows)
			if i+1 < len(ts) && ts[i+1].Doc == t.Doc {
				continue // tasks sorted by document: the last has the longest prefix
			}
			for _, sp := range l.Spans(t.Doc, t.KV()) {
				r := int64(sp.Len)
				add(phaseFwdDispatch, sp.Rank, s, kvf*r)
				add(phaseBwdDispatch, sp.Rank, s, kvbIn*r)
				add(phaseBwdReturn, s, sp.Rank, kvbOut*r)
			}
		}
	}
	return out
}

// cadNano is one planned nano-batch.
type cadNano struct {
	plan    *disagg.Plan
	traffic [numPhases][]linkBytes
	buffer  float64 // largest per-GPU buffer need over phases and servers
}

func (r *runner) planNano(l *disagg.Layout, eps float64) (cadNano, error) {
	p, err := disagg.Schedule(l, r.costs, disagg.Options{Arch: r.cfg.Arch, Epsilon: eps, BlockSize: r.cfg.BlockSize})
	if err != nil {
		return cadNano{}, err
	}
	nb := cadNano{plan: p, traffic: cadTraffic(r.cfg.Cluster, p)}
	for _, ph := range nb.traffic {
		for _, lb := range ph {
			nb.buffer = max(nb.buffer, float64(lb.bufferBytes())/float64(r.cfg.Cluster.TP))
		}
	}
	return nb, nil
}

// cadPlan plans the nano-batches of one scheduling call (a microbatch, or a
// pipeline tick) at a fixed tolerance, or with DistCA's rule when eps < 0:
// the smallest candidate from 0.05 up at which every nano-batch's traffic
// fits the buffer (the last candidate when none fits, flagged).
func (r *runner) cadPlan(layouts []*disagg.Layout, eps float64) (nbs []cadNano, used float64, fits bool, err error) {
	cands := []float64{eps}
	if eps < 0 {
		cands = bufferEpsilons
	}
	for _, e := range cands {
		nbs = nbs[:0]
		fits = true
		for _, l := range layouts {
			nb, err := r.planNano(l, e)
			if err != nil {
				return nil, 0, false, err
			}
			fits = fits && nb.buffer <= r.cfg.Cluster.BufferBytes
			nbs = append(nbs, nb)
		}
		if fits || eps >= 0 {
			return nbs, e, fits, nil
		}
	}
	return nbs, cands[len(cands)-1], false, nil
}

// nanoTimes turns a planned nano-batch into per-layer times for pass;
// active[s] is false for servers that only serve attention (idle pipeline
// stages).
func (r *runner) nanoTimes(nb cadNano, pass disagg.Pass, tokens []float64) nano {
	c, m := r.cfg.Cluster, r.cfg.Arch
	n := len(nb.plan.Tasks)
	out := nano{lin: make([]float64, n), ca: make([]float64, n)}
	for s, ts := range nb.plan.Tasks {
		out.lin[s] = c.linearTime(m, tokens[s], 1, pass)
		for _, t := range ts {
			out.ca[s] += r.costs[s].TaskTime(t.Q.Len(), t.Q.End, pass)
		}
		out.ca[s] /= float64(c.TP)
	}
	disp, ret := phaseFwdDispatch, phaseFwdReturn
	if pass == disagg.PassBackward {
		disp, ret = phaseBwdDispatch, phaseBwdReturn
	}
	for s := range n {
		out.disp = max(out.disp, c.linkTime(nb.traffic[disp][s]))
		out.ret = max(out.ret, c.linkTime(nb.traffic[ret][s]))
	}
	return out
}

// cadTick runs one scheduling call: nano-batches of documents placed
// sequentially over the first active servers (tokens each), CA balanced over
// all servers, for layers layers of both passes (or one, for a pipeline
// tick). It adds what it measures to st.
func (r *runner) cadTick(nanos [][]int, active int, tokensPerServer float64, layers int, passes []disagg.Pass, eps float64, st *stepStats) (float64, error) {
	n := r.cfg.Cluster.Servers()
	layouts := make([]*disagg.Layout, 0, len(nanos))
	for _, docs := range nanos {
		if len(docs) == 0 {
			continue
		}
		l, err := disagg.Place(docs, n, int(tokensPerServer))
		if err != nil {
			return 0, fmt.Errorf("cad: %w", err)
		}
		layouts = append(layouts, l)
	}
	if len(layouts) == 0 {
		return 0, nil
	}
	nbs, used, fits, err := r.cadPlan(layouts, eps)
	if err != nil {
		return 0, err
	}
	st.eps = max(st.eps, used)
	st.bufferOverflow = st.bufferOverflow || !fits
	var total float64
	for _, pass := range passes {
		times := make([]nano, len(nbs))
		for i, nb := range nbs {
			tokens := make([]float64, n)
			for s := range min(active, n) {
				tokens[s] = float64(nb.plan.Layout.RankTokens(s))
			}
			times[i] = r.nanoTimes(nb, pass, tokens)
		}
		end, busy := timeline(times, layers, !r.cfg.SingleStream)
		noComm := slices.Clone(times)
		for i := range noComm {
			noComm[i].disp, noComm[i].ret = 0, 0
		}
		end0, _ := timeline(noComm, layers, true)
		total += end
		st.commExposed += end - end0
		for s := range n {
			st.busy[s] += busy[s]
			for _, nb := range times {
				st.attn[s] += nb.ca[s] * float64(layers)
				st.linear[s] += nb.lin[s] * float64(layers)
			}
		}
	}
	for _, nb := range nbs {
		st.buffer = max(st.buffer, nb.buffer)
		for _, pass := range passes {
			phases := []int{phaseFwdDispatch, phaseFwdReturn}
			if pass == disagg.PassBackward {
				phases = []int{phaseBwdDispatch, phaseBwdReturn}
			}
			for _, ph := range phases {
				for _, lb := range nb.traffic[ph] {
					st.bytes += float64(lb.network()) * float64(layers)
				}
			}
		}
	}
	return total, nil
}
