//go:build linux && cgo

package dawnrun

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/attention/tc"
)

// tolGrad bounds the relative errors of dQ, dK and dV: beside the forward's
// roundings, dS is rounded to f16 for dQ = dS K and dK = dSᵀ Q, and dP is
// a product of f16 operands, so the gradients land around 1e-3.
const tolGrad = 5e-3

type bwdCase struct {
	fwdCase
	scratch int64 // forced dS scratch cap (passes over KV heads); 0: default
}

var bwdCases = []bwdCase{
	{fwdCase: fwdCase{name: "varlen causal shards", lens: [][2]int{{0, 5}, {37, 37}, {100, 230}, {1, 70}}, hq: 4, hkv: 1, d: 64, causal: true, dt: attention.Float16}},
	{fwdCase: fwdCase{name: "varlen causal shards", lens: [][2]int{{0, 5}, {37, 37}, {100, 230}, {1, 70}}, hq: 4, hkv: 1, d: 128, causal: true, dt: attention.Float32}},
	{fwdCase: fwdCase{name: "varlen full, empty keys", lens: [][2]int{{45, 80}, {10, 0}, {0, 0}, {70, 33}}, hq: 4, hkv: 1, d: 128, dt: attention.Float16}},
	{fwdCase: fwdCase{name: "passes over KV heads", lens: [][2]int{{45, 80}, {70, 33}}, hq: 4, hkv: 2, d: 64, dt: attention.Float32}, scratch: 16 << 10},
	{fwdCase: fwdCase{name: "odd head dims", lens: [][2]int{{50, 90}, {20, 20}}, hq: 4, hkv: 2, d: 96, causal: true, dt: attention.Float16}},
	{fwdCase: fwdCase{name: "odd head dims", lens: [][2]int{{50, 90}, {20, 20}}, hq: 2, hkv: 1, d: 32, dt: attention.Float32}},
}

// runBackward runs the backward of a on fresh random inputs, with O and
// LSE from the float64 forward, and returns the relative errors of dQ,
// dK and dV.
func runBackward(t *testing.T, r *Runner, p *tc.Planner, a *attention.Args, seed uint64) (errs [3]float64, tiling string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 11))
	nq := a.TotalQ() * a.NumHeadsQ * a.HeadDim
	nk := a.TotalK() * a.NumHeadsKV * a.HeadDim
	q, k, v, do := randomF32(rng, nq), randomF32(rng, nk), randomF32(rng, nk), randomF32(rng, nq)
	if a.DType == attention.Float16 {
		q, k, v, do = attention.Round(a.DType, q), attention.Round(a.DType, k), attention.Round(a.DType, v), attention.Round(a.DType, do)
	}
	o64, lse64, err := attention.ReferenceForward(a, q, k, v)
	require.NoError(t, err)
	wantDQ, wantDK, wantDV, err := attention.ReferenceBackward(a, q, k, v, do)
	require.NoError(t, err)
	o, lse := make([]float32, len(o64)), make([]float32, len(lse64))
	for i, x := range o64 {
		o[i] = float32(x)
	}
	for i, x := range lse64 {
		lse[i] = float32(x)
	}

	l, err := p.Backward(a)
	require.NoError(t, err)
	ts := newTensors(t, r.Device())
	ts.put(t, "q", a.DType, q)
	ts.put(t, "k", a.DType, k)
	ts.put(t, "v", a.DType, v)
	ts.put(t, "o", a.DType, o)
	ts.put(t, "do", a.DType, do)
	ts.put(t, "lse", attention.Float32, lse)
	ts.poisoned(t, "dq", a.DType, nq)
	ts.poisoned(t, "dk", a.DType, nk)
	ts.poisoned(t, "dv", a.DType, nk)
	_, err = r.Run(context.Background(), l, ts.bufs, false)
	require.NoError(t, err)
	errs[0] = attention.RelError(ts.get(t, "dq", a.DType, nq), wantDQ)
	errs[1] = attention.RelError(ts.get(t, "dk", a.DType, nk), wantDK)
	errs[2] = attention.RelError(ts.get(t, "dv", a.DType, nk), wantDV)
	return errs, l.Tiling
}

func TestBackward(t *testing.T) {
	r, dev := matrixDevice(t, true)
	for i, c := range bwdCases {
		t.Run(c.String(), func(t *testing.T) {
			p := tc.New(dev, tc.Options{DSScratch: c.scratch})
			errs, tiling := runBackward(t, r, p, c.args(), uint64(100+i))
			t.Logf("%s: dQ %.2e, dK %.2e, dV %.2e", tiling, errs[0], errs[1], errs[2])
			if c.scratch > 0 {
				assert.NotContains(t, tiling, "(1 passes", "the case must take several passes")
			}
			for j, name := range []string{"dQ", "dK", "dV"} {
				assert.LessOrEqual(t, errs[j], tolGrad, name)
			}
		})
	}
}
