package local

import (
	"context"
	"errors"
	"fmt"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/disagg/server"
	"github.com/coreattn/coreattn/wgpu"
)

// A request whose tensors exceed the device's buffer limit, or whose call
// fails with wgpu.ErrTooLarge (a scratch buffer of the operator beyond a
// limit), is split into smaller calls rather than failed: first between
// segments, then, for a lone segment, between its query rows (each half
// with the key prefix its rows see). Only a request that no split can fit
// (one query row is still too large) is one the server can never take, and
// fails with server.ErrUnusable.

// part is one piece of a split call: its arguments and the rows of the
// parent call's Q-shaped [q0, q1) and K-shaped [k0, k1) tensors it covers.
type part struct {
	a              attention.Args
	q0, q1, k0, k1 int
}

// tensorBytes is the size the device's largest buffer of a call needs:
// float32 Q-shaped and K-shaped tensors (the storage type may be narrower;
// the accumulators are not), padded as the runtime pads them.
func tensorBytes(a *attention.Args) uint64 {
	q := uint64(a.TotalQ()) * uint64(a.NumHeadsQ*a.HeadDim) * 4
	k := uint64(a.TotalK()) * uint64(a.NumHeadsKV*a.HeadDim) * 4
	return (max(q, k) + 15) &^ 15
}

// fits reports whether call a fits the server's buffer limit.
func (s *Server) fits(a *attention.Args) bool {
	return tensorBytes(a) <= s.maxBytes()
}

// maxBytes is the largest buffer the server's device takes.
func (s *Server) maxBytes() uint64 {
	if s.limit > 0 {
		return s.limit
	}
	return s.op.Device().MaxBufferBytes()
}

// split cuts call a in two: at the segment boundary nearest half its query
// rows, or, for one segment, between its query rows. It fails with
// server.ErrUnusable when a cannot be cut into calls that fit: tensors of
// one query row beyond the limit, or, where the operator failed with
// tooLarge (non-nil) although the tensors fit, a single query row.
func (s *Server) split(a *attention.Args, tooLarge error) ([2]part, error) {
	var out [2]part
	if b := a.Batch(); b > 1 {
		half, m := a.TotalQ()/2, 1
		for m < b-1 && int(a.CuSeqlensQ[m]) < half {
			m++
		}
		for i, r := range [2][2]int{{0, m}, {m, b}} {
			p := part{a: *a, q0: int(a.CuSeqlensQ[r[0]]), q1: int(a.CuSeqlensQ[r[1]]), k0: int(a.CuSeqlensK[r[0]]), k1: int(a.CuSeqlensK[r[1]])}
			p.a.CuSeqlensQ, p.a.CuSeqlensK = rebase(a.CuSeqlensQ[r[0]:r[1]+1]), rebase(a.CuSeqlensK[r[0]:r[1]+1])
			out[i] = p
		}
		return out, nil
	}
	qLen, kLen := a.Segment(0)
	// The last query row sees every key; if those alone do not fit, no
	// split helps.
	last := *a
	last.CuSeqlensQ, last.CuSeqlensK = []int32{0, min(1, int32(qLen))}, []int32{0, int32(kLen)}
	if !s.fits(&last) {
		return out, fmt.Errorf("%w: %s: a segment of %d query rows against %d keys needs %d bytes in one buffer, above the adapter's %d",
			server.ErrUnusable, s.name, qLen, kLen, tensorBytes(&last), s.maxBytes())
	}
	if qLen < 2 {
		return out, fmt.Errorf("%w: %s: one query row against %d keys: %w", server.ErrUnusable, s.name, kLen, tooLarge)
	}
	m := qLen / 2
	k1 := kLen // non-causal rows see every key
	if a.Causal {
		k1 = kLen - (qLen - m)
	}
	for i, r := range [2][3]int{{0, m, k1}, {m, qLen, kLen}} {
		p := part{a: *a, q0: r[0], q1: r[1], k0: 0, k1: r[2]}
		p.a.CuSeqlensQ, p.a.CuSeqlensK = []int32{0, int32(r[1] - r[0])}, []int32{0, int32(r[2])}
		out[i] = p
	}
	return out, nil
}

// rebase returns offsets shifted to start at 0.
func rebase(cu []int32) []int32 {
	out := make([]int32, len(cu))
	for i, x := range cu {
		out[i] = x - cu[0]
	}
	return out
}

// rows returns rows [r0, r1) of a tensor of rows of width w.
func rows(x []float32, r0, r1, w int) []float32 { return x[r0*w : r1*w] }

// lseRows returns query rows [r0, r1) of an LSE [Hq, tq] as [Hq, r1-r0].
func lseRows(lse []float32, hq, tq, r0, r1 int) []float32 {
	out := make([]float32, 0, hq*(r1-r0))
	for h := range hq {
		out = append(out, lse[h*tq+r0:h*tq+r1]...)
	}
	return out
}

// forward runs the forward of a, split until each call fits.
func (s *Server) forward(ctx context.Context, a *attention.Args, q, k, v []float32) (o, lse []float32, st attention.Stats, err error) {
	var tooLarge error
	if s.fits(a) {
		o, lse, st, err = s.op.ForwardTimed(ctx, a, q, k, v)
		if !errors.Is(err, wgpu.ErrTooLarge) {
			return o, lse, st, err
		}
		tooLarge = err
	}
	if err := a.Validate(); err != nil {
		return nil, nil, st, err
	}
	if err := a.CheckSizes(len(q), len(k), len(v)); err != nil {
		return nil, nil, st, err
	}
	if a.TotalQ() == 0 {
		return []float32{}, []float32{}, st, nil // no query row: nothing to compute
	}
	parts, err := s.split(a, tooLarge)
	if err != nil {
		return nil, nil, st, err
	}
	wq, wk, hq, tq := a.NumHeadsQ*a.HeadDim, a.NumHeadsKV*a.HeadDim, a.NumHeadsQ, a.TotalQ()
	o, lse = make([]float32, len(q)), make([]float32, hq*tq)
	for _, p := range parts {
		po, plse, pst, err := s.forward(ctx, &p.a, rows(q, p.q0, p.q1, wq), rows(k, p.k0, p.k1, wk), rows(v, p.k0, p.k1, wk))
		if err != nil {
			return nil, nil, st, err
		}
		st.Add(pst)
		copy(o[p.q0*wq:], po)
		n := p.q1 - p.q0
		for h := range hq {
			copy(lse[h*tq+p.q0:h*tq+p.q1], plse[h*n:(h+1)*n])
		}
	}
	return o, lse, st, nil
}

// backward runs the backward of a, split until each call fits; the dK and
// dV of parts that share key rows are summed.
func (s *Server) backward(ctx context.Context, a *attention.Args, q, k, v, o, lse, do []float32) (dq, dk, dv []float32, st attention.Stats, err error) {
	var tooLarge error
	if s.fits(a) {
		dq, dk, dv, st, err = s.op.BackwardTimed(ctx, a, q, k, v, o, lse, do)
		if !errors.Is(err, wgpu.ErrTooLarge) {
			return dq, dk, dv, st, err
		}
		tooLarge = err
	}
	if err := a.Validate(); err != nil {
		return nil, nil, nil, st, err
	}
	if err := a.CheckBackwardSizes(len(q), len(k), len(v), len(o), len(lse), len(do)); err != nil {
		return nil, nil, nil, st, err
	}
	if a.TotalQ() == 0 { // no query row: no gradient
		return []float32{}, make([]float32, len(k)), make([]float32, len(v)), st, nil
	}
	parts, err := s.split(a, tooLarge)
	if err != nil {
		return nil, nil, nil, st, err
	}
	wq, wk, hq, tq := a.NumHeadsQ*a.HeadDim, a.NumHeadsKV*a.HeadDim, a.NumHeadsQ, a.TotalQ()
	dq, dk, dv = make([]float32, len(q)), make([]float32, len(k)), make([]float32, len(v))
	for _, p := range parts {
		pdq, pdk, pdv, pst, err := s.backward(ctx, &p.a,
			rows(q, p.q0, p.q1, wq), rows(k, p.k0, p.k1, wk), rows(v, p.k0, p.k1, wk),
			rows(o, p.q0, p.q1, wq), lseRows(lse, hq, tq, p.q0, p.q1), rows(do, p.q0, p.q1, wq))
		if err != nil {
			return nil, nil, nil, st, err
		}
		st.Add(pst)
		copy(dq[p.q0*wq:], pdq)
		for i := range pdk {
			dk[p.k0*wk+i] += pdk[i]
			dv[p.k0*wk+i] += pdv[i]
		}
	}
	return dq, dk, dv, st, nil
}
