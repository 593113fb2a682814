//go:build linux && cgo

package dawnrun

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/attention/tc"
)

// problem is a call's random inputs and its float64 reference, reused by
// every tiling that runs it.
type problem struct {
	a                      *attention.Args
	q, k, v, do            []float32
	o, lse                 []float32 // the reference forward's, as the backward's inputs
	wantO, wantLSE         []float64
	wantDQ, wantDK, wantDV []float64 // nil until a backward asks
}

// newProblem draws fresh random inputs for a (rounded to f16 for f16
// calls, so that the reference sees what the kernels see) and computes the
// reference forward. With growing, key row j is scaled by 1 + j/16.
func newProblem(t testing.TB, a *attention.Args, seed uint64, growing bool) *problem {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	nq := a.TotalQ() * a.NumHeadsQ * a.HeadDim
	nk := a.TotalK() * a.NumHeadsKV * a.HeadDim
	p := &problem{a: a, q: randomF32(rng, nq), k: randomF32(rng, nk), v: randomF32(rng, nk), do: randomF32(rng, nq)}
	if growing {
		row := a.NumHeadsKV * a.HeadDim
		for i := range p.k {
			p.k[i] *= 1 + float32(i/row)/16
		}
	}
	if a.DType == attention.Float16 {
		for _, x := range []*[]float32{&p.q, &p.k, &p.v, &p.do} {
			*x = attention.Round(a.DType, *x)
		}
	}
	var err error
	p.wantO, p.wantLSE, err = attention.ReferenceForward(a, p.q, p.k, p.v)
	require.NoError(t, err)
	p.o, p.lse = make([]float32, len(p.wantO)), make([]float32, len(p.wantLSE))
	for i, x := range p.wantO {
		p.o[i] = float32(x)
	}
	for i, x := range p.wantLSE {
		p.lse[i] = float32(x)
	}
	return p
}

func (p *problem) sizes() (nq, nk, nlse int) {
	a := p.a
	return a.TotalQ() * a.NumHeadsQ * a.HeadDim, a.TotalK() * a.NumHeadsKV * a.HeadDim, a.NumHeadsQ * a.TotalQ()
}

// forward runs the planner's forward on the inputs (outputs poisoned with
// NaN) and returns the relative errors of O and LSE.
func (p *problem) forward(t *testing.T, r *Runner, pl *tc.Planner) (errO, errLSE float64, tiling string) {
	t.Helper()
	a := p.a
	nq, _, nlse := p.sizes()
	l, err := pl.Forward(a)
	require.NoError(t, err)
	ts := newTensors(t, r.Device())
	ts.put(t, "q", a.DType, p.q)
	ts.put(t, "k", a.DType, p.k)
	ts.put(t, "v", a.DType, p.v)
	ts.poisoned(t, "o", a.DType, nq)
	ts.poisoned(t, "lse", attention.Float32, nlse)
	_, err = r.Run(context.Background(), l, ts.bufs, false)
	require.NoError(t, err)
	errO = attention.RelError(ts.get(t, "o", a.DType, nq), p.wantO)
	errLSE = attention.RelError(ts.get(t, "lse", attention.Float32, nlse), p.wantLSE)
	return errO, errLSE, l.Tiling
}

// backward runs the planner's backward, with O and LSE from the float64
// forward (outputs poisoned with NaN), and returns the relative errors of
// dQ, dK and dV.
func (p *problem) backward(t *testing.T, r *Runner, pl *tc.Planner) (errs [3]float64, tiling string) {
	t.Helper()
	a := p.a
	if p.wantDQ == nil {
		var err error
		p.wantDQ, p.wantDK, p.wantDV, err = attention.ReferenceBackward(a, p.q, p.k, p.v, p.do)
		require.NoError(t, err)
	}
	nq, nk, _ := p.sizes()
	l, err := pl.Backward(a)
	require.NoError(t, err)
	ts := newTensors(t, r.Device())
	ts.put(t, "q", a.DType, p.q)
	ts.put(t, "k", a.DType, p.k)
	ts.put(t, "v", a.DType, p.v)
	ts.put(t, "o", a.DType, p.o)
	ts.put(t, "do", a.DType, p.do)
	ts.put(t, "lse", attention.Float32, p.lse)
	ts.poisoned(t, "dq", a.DType, nq)
	ts.poisoned(t, "dk", a.DType, nk)
	ts.poisoned(t, "dv", a.DType, nk)
	_, err = r.Run(context.Background(), l, ts.bufs, false)
	require.NoError(t, err)
	errs[0] = attention.RelError(ts.get(t, "dq", a.DType, nq), p.wantDQ)
	errs[1] = attention.RelError(ts.get(t, "dk", a.DType, nk), p.wantDK)
	errs[2] = attention.RelError(ts.get(t, "dv", a.DType, nk), p.wantDV)
	return errs, l.Tiling
}
