package sim

// nano is one nano-batch's per-layer work: per server the seconds of the
// context-independent layers (lin) and of core attention (ca), and the
// seconds of its two all-to-alls (dispatch of Q/K/V to the attention
// servers, return of the outputs), each set by the slowest server's links.
type nano struct {
	lin, ca   []float64
	disp, ret float64
}

// timeline plays one pass (forward or backward) of layers layers of
// DistCA's in-place attention servers (the paper's Fig. 7) and returns when
// the last server finishes and each server's busy seconds. Per layer and
// nano-batch: the all-to-all dispatch, core attention, the all-to-all
// return, then the fused post-CA/pre-CA linear block. Every all-to-all is a
// barrier: it starts when every server has its inputs ready. Communication
// runs on its own stream, one transfer at a time, so with two nano-batches
// (ping-pong) one's transfers overlap the other's compute; with overlap
// false every transfer also waits for, and blocks, all compute (a single
// stream).
func timeline(nbs []nano, layers int, overlap bool) (end float64, busy []float64) {
	if len(nbs) == 0 || layers <= 0 {
		return 0, nil
	}
	n := len(nbs[0].lin)
	cf := make([]float64, n) // compute stream free
	ready := make([][]float64, len(nbs))
	busy = make([]float64, n)
	for b, nb := range nbs { // the first layer's pre-CA half
		ready[b] = make([]float64, n)
		for s := range n {
			cf[s] += nb.lin[s] / 2
			ready[b][s] = cf[s]
			busy[s] += nb.lin[s] / 2
		}
	}
	var comm float64
	de := make([]float64, len(nbs))
	caEnd := make([]float64, len(nbs))
	maxOf := func(v []float64) float64 {
		m := 0.0
		for _, x := range v {
			m = max(m, x)
		}
		return m
	}
	barrier := func(t float64) float64 {
		if overlap {
			return t
		}
		t = max(t, maxOf(cf))
		return t
	}
	block := func(t float64) {
		if !overlap {
			for s := range cf {
				cf[s] = max(cf[s], t)
			}
		}
	}
	for layer := range layers {
		for b, nb := range nbs {
			start := barrier(max(maxOf(ready[b]), comm))
			de[b] = start + nb.disp
			comm = de[b]
			block(comm)
		}
		for b, nb := range nbs {
			caEnd[b] = 0
			for s := range n {
				cf[s] = max(cf[s], de[b]) + nb.ca[s]
				busy[s] += nb.ca[s]
				caEnd[b] = max(caEnd[b], cf[s])
			}
		}
		frac := 1.0
		if layer == layers-1 {
			frac = 0.5 // the last layer's post-CA half
		}
		for b, nb := range nbs {
			start := barrier(max(caEnd[b], comm))
			re := start + nb.ret
			comm = re
			block(comm)
			for s := range n {
				cf[s] = max(cf[s], re) + frac*nb.lin[s]
				busy[s] += frac * nb.lin[s]
				ready[b][s] = cf[s]
			}
		}
	}
	return maxOf(cf), busy
}
