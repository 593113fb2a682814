package attention

import (
	"math"
	"runtime"
	"sync"
	"sync/atomic"
)

// ReferenceForward computes O [total_q, Hq, D] and LSE [Hq, total_q] in
// float64 on the CPU. It validates the arguments and the slice lengths first.
func ReferenceForward(a *Args, q, k, v []float32) (o, lse []float64, err error) {
	if err := a.Validate(); err != nil {
		return nil, nil, err
	}
	if err := a.CheckSizes(len(q), len(k), len(v)); err != nil {
		return nil, nil, err
	}
	r := newRef(a, q, k, v)
	o = make([]float64, len(q))
	lse = make([]float64, a.NumHeadsQ*a.TotalQ())
	r.eachKVHead(func(g int, w *refScratch) {
		for b := range a.Batch() {
			r.forwardSegment(b, g, w, o, lse)
		}
	})
	return o, lse, nil
}

// ReferenceBackward computes dQ [total_q, Hq, D] and dK, dV [total_k, Hkv, D]
// in float64 from the inputs and dO (shaped like Q). It recomputes the
// softmax itself, so it needs neither O nor LSE. dK and dV of a KV head sum
// over all the query heads of its group; KV rows that no query sees get 0.
func ReferenceBackward(a *Args, q, k, v, do []float32) (dq, dk, dv []float64, err error) {
	if err := a.Validate(); err != nil {
		return nil, nil, nil, err
	}
	if err := a.CheckSizes(len(q), len(k), len(v)); err != nil {
		return nil, nil, nil, err
	}
	if err := a.checkQ("do", len(do)); err != nil {
		return nil, nil, nil, err
	}
	r := newRef(a, q, k, v)
	dq = make([]float64, len(q))
	dk = make([]float64, len(k))
	dv = make([]float64, len(v))
	r.eachKVHead(func(g int, w *refScratch) {
		for b := range a.Batch() {
			r.backwardSegment(b, g, w, do, dq, dk, dv)
		}
	})
	return dq, dk, dv, nil
}

// ref holds what every (segment, KV head) step of the reference needs.
type ref struct {
	a        *Args
	q, k, v  []float32
	d        int // head dim
	hq, hkv  int
	group    int // query heads per KV head
	totalQ   int
	scale    float64
	qStride  int // elements per Q row: Hq*D
	kvStride int // elements per K/V row: Hkv*D
}

func newRef(a *Args, q, k, v []float32) *ref {
	return &ref{
		a: a, q: q, k: k, v: v,
		d:        a.HeadDim,
		hq:       a.NumHeadsQ,
		hkv:      a.NumHeadsKV,
		group:    a.NumHeadsQ / a.NumHeadsKV,
		totalQ:   a.TotalQ(),
		scale:    a.Scale(),
		qStride:  a.NumHeadsQ * a.HeadDim,
		kvStride: a.NumHeadsKV * a.HeadDim,
	}
}

// refScratch is per-worker scratch memory, reused across segments.
type refScratch struct {
	ks, vs   []float64 // K and V of one segment and KV head, [k_len, D]
	dks, dvs []float64 // dK and dV accumulators, [k_len, D]
	qrow     []float64 // one query row, [D]
	dorow    []float64 // one dO row, [D]
	orow     []float64 // one O row, [D]
	dqrow    []float64 // one dQ row, [D]
	p        []float64 // probabilities of one row, [k_len]
	dp       []float64 // dP of one row, [k_len]
}

// grow returns s resized to n elements, zeroed.
func grow(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	s = s[:n]
	clear(s)
	return s
}

// eachKVHead runs fn for every KV head, spread over up to GOMAXPROCS
// goroutines. The steps of different KV heads write disjoint outputs.
func (r *ref) eachKVHead(fn func(g int, w *refScratch)) {
	workers := min(runtime.GOMAXPROCS(0), r.hkv)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			w := new(refScratch)
			for {
				g := int(next.Add(1) - 1)
				if g >= r.hkv {
					return
				}
				fn(g, w)
			}
		})
	}
	wg.Wait()
}

// visible returns how many keys (a prefix of the segment's keys) query row
// i of a segment with qLen queries and kLen keys sees.
func visible(i, qLen, kLen int, causal bool) int {
	if !causal {
		return kLen
	}
	return min(max(i+kLen-qLen+1, 0), kLen)
}

// gather loads head g of rows [k0, k0+n) of src (K or V layout) into dst
// as float64, [n, D].
func (r *ref) gather(dst []float64, src []float32, k0, n, g int) []float64 {
	dst = grow(dst, n*r.d)
	for j := range n {
		off := (k0+j)*r.kvStride + g*r.d
		for t, x := range src[off : off+r.d] {
			dst[j*r.d+t] = float64(x)
		}
	}
	return dst
}

// loadRow loads head h of row i of a Q-shaped tensor into dst as float64.
func (r *ref) loadRow(dst []float64, src []float32, i, h int) []float64 {
	dst = grow(dst, r.d)
	off := i*r.qStride + h*r.d
	for t, x := range src[off : off+r.d] {
		dst[t] = float64(x)
	}
	return dst
}

// softmaxRow fills p[:n] with the softmax of the scaled scores of qrow
// against the first n rows of ks and returns the row's log-sum-exp. It
// returns +Inf when n is 0.
func (r *ref) softmaxRow(p, qrow, ks []float64, n int) float64 {
	if n == 0 {
		return math.Inf(1)
	}
	d := r.d
	m := math.Inf(-1)
	for j := range n {
		p[j] = r.scale * dot(qrow, ks[j*d:(j+1)*d])
		m = max(m, p[j])
	}
	var sum float64
	for j := range n {
		p[j] = math.Exp(p[j] - m)
		sum += p[j]
	}
	for j := range n {
		p[j] /= sum
	}
	return m + math.Log(sum)
}

// forwardSegment computes O and LSE of segment b for the query heads of KV
// head g.
func (r *ref) forwardSegment(b, g int, w *refScratch, o, lse []float64) {
	a := r.a
	q0, k0 := int(a.CuSeqlensQ[b]), int(a.CuSeqlensK[b])
	qLen, kLen := a.Segment(b)
	if qLen == 0 {
		return
	}
	d := r.d
	w.ks = r.gather(w.ks, r.k, k0, kLen, g)
	w.vs = r.gather(w.vs, r.v, k0, kLen, g)
	w.p = grow(w.p, kLen)
	for h := g * r.group; h < (g+1)*r.group; h++ {
		for i := range qLen {
			row := q0 + i
			w.qrow = r.loadRow(w.qrow, r.q, row, h)
			n := visible(i, qLen, kLen, a.Causal)
			lse[h*r.totalQ+row] = r.softmaxRow(w.p, w.qrow, w.ks, n)
			out := o[row*r.qStride+h*d : row*r.qStride+(h+1)*d]
			for j := range n {
				axpy(out, w.p[j], w.vs[j*d:(j+1)*d])
			}
		}
	}
}

// backwardSegment computes dQ of segment b for the query heads of KV head g
// and dK, dV of KV head g. With P the softmax of the scaled scores S:
//
//	dV = Pᵀ dO, dP = dO Vᵀ, Delta_i = rowsum(dO_i ∘ O_i),
//	dS = P ∘ (dP − Delta), dQ = scale · dS K, dK = scale · dSᵀ Q.
func (r *ref) backwardSegment(b, g int, w *refScratch, do []float32, dq, dk, dv []float64) {
	a := r.a
	q0, k0 := int(a.CuSeqlensQ[b]), int(a.CuSeqlensK[b])
	qLen, kLen := a.Segment(b)
	if qLen == 0 || kLen == 0 {
		// No query sees a key: every gradient of the segment is 0.
		return
	}
	d := r.d
	w.ks = r.gather(w.ks, r.k, k0, kLen, g)
	w.vs = r.gather(w.vs, r.v, k0, kLen, g)
	w.dks = grow(w.dks, kLen*d)
	w.dvs = grow(w.dvs, kLen*d)
	w.p = grow(w.p, kLen)
	w.dp = grow(w.dp, kLen)
	for h := g * r.group; h < (g+1)*r.group; h++ {
		for i := range qLen {
			row := q0 + i
			w.qrow = r.loadRow(w.qrow, r.q, row, h)
			w.dorow = r.loadRow(w.dorow, do, row, h)
			n := visible(i, qLen, kLen, a.Causal)
			r.softmaxRow(w.p, w.qrow, w.ks, n)
			w.orow = grow(w.orow, d)
			for j := range n {
				axpy(w.orow, w.p[j], w.vs[j*d:(j+1)*d])
			}
			delta := dot(w.dorow, w.orow)
			w.dqrow = grow(w.dqrow, d)
			for j := range n {
				kj := w.ks[j*d : (j+1)*d]
				dp := dot(w.dorow, w.vs[j*d:(j+1)*d])
				ds := w.p[j] * (dp - delta)
				axpy(w.dqrow, r.scale*ds, kj)
				axpy(w.dks[j*d:(j+1)*d], r.scale*ds, w.qrow)
				axpy(w.dvs[j*d:(j+1)*d], w.p[j], w.dorow)
			}
			copy(dq[row*r.qStride+h*d:row*r.qStride+(h+1)*d], w.dqrow)
		}
	}
	for j := range kLen {
		off := (k0+j)*r.kvStride + g*d
		copy(dk[off:off+d], w.dks[j*d:(j+1)*d])
		copy(dv[off:off+d], w.dvs[j*d:(j+1)*d])
	}
}

// dot returns the dot product of x and y[:len(x)].
func dot(x, y []float64) float64 {
	y = y[:len(x)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		s0 += x[i] * y[i]
		s1 += x[i+1] * y[i+1]
		s2 += x[i+2] * y[i+2]
		s3 += x[i+3] * y[i+3]
	}
	for ; i < len(x); i++ {
		s0 += x[i] * y[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// axpy adds alpha*x to y.
func axpy(y []float64, alpha float64, x []float64) {
	x = x[:len(y)]
	for i := range y {
		y[i] += alpha * x[i]
	}
}

// RelError returns ‖got−want‖₂/‖want‖₂, or ‖got‖₂ when want is all zero.
// Entries that are the same infinity in both are skipped; a NaN in either
// gives NaN; an infinity in only one of them, or slices of different
// lengths, give +Inf.
func RelError(got []float32, want []float64) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var diff, norm float64
	inf := false
	for i, w := range want {
		g := float64(got[i])
		if math.IsNaN(g) || math.IsNaN(w) {
			return math.NaN()
		}
		if math.IsInf(g, 0) || math.IsInf(w, 0) {
			if g != w {
				inf = true
			}
			continue
		}
		diff += (g - w) * (g - w)
		norm += w * w
	}
	if inf {
		return math.Inf(1)
	}
	if norm == 0 {
		return math.Sqrt(diff)
	}
	return math.Sqrt(diff / norm)
}
