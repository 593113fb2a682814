//go:build linux && cgo

package dawnrun

import (
	"testing"

	"github.com/stretchr/testify/assert"

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
	{fwdCase: fwdCase{name: "passes over KV heads", lens: [][2]int{{45, 80}, {70, 33}}, hq: 4, hkv: 2, d: 64, dt: attention.Float32}, scratch: 40 << 10},
	{fwdCase: fwdCase{name: "odd head dims", lens: [][2]int{{50, 90}, {20, 20}}, hq: 4, hkv: 2, d: 96, causal: true, dt: attention.Float16}},
	{fwdCase: fwdCase{name: "odd head dims", lens: [][2]int{{50, 90}, {20, 20}}, hq: 2, hkv: 1, d: 32, dt: attention.Float32}},
	{fwdCase: fwdCase{name: "growing scores", lens: [][2]int{{70, 400}, {33, 33}}, hq: 2, hkv: 1, d: 64, causal: true, dt: attention.Float16, growing: true}},
	{fwdCase: fwdCase{name: "padded head dim", lens: [][2]int{{50, 90}, {0, 3}, {20, 20}}, hq: 4, hkv: 1, d: 40, causal: true, dt: attention.Float16}},
}

func TestBackward(t *testing.T) {
	r, dev := matrixDevice(t, true)
	for i, c := range bwdCases {
		t.Run(c.String(), func(t *testing.T) {
			p := tc.New(dev, tc.Options{DSScratch: c.scratch})
			errs, tiling := newProblem(t, c.args(), uint64(100+i), c.growing).backward(t, r, p)
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
