//go:build linux && cgo

package dawnrun

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/attention/tc"
)

// Tolerances for f16 operands, as ‖got−want‖/‖want‖ against the float64
// reference. With f16 inputs the reference sees the same rounded inputs;
// the kernels round P (and, backward, dS) to f16 for the products, which
// leaves O a few 1e-4 off. With f32 inputs the cast's rounding of Q, K and
// V adds about as much again.
const (
	tolO   = 2e-3
	tolLSE = 2e-4
)

type fwdCase struct {
	name    string
	lens    [][2]int // (q_len, k_len) per segment
	hq, hkv int
	d       int
	causal  bool
	dt      attention.DType
	split   int // forced split-KV piece in keys; 0: the planner's choice
	// growing scales key row j by 1 + j/16: later key tiles hold much
	// larger scores, so rows' maxima jump by more than the lazy-rescale
	// threshold again and again, and O makes its round trips.
	growing bool
}

// fwdCases cover varlen batches with empty segments, q_len < k_len
// shards, GQA 4:1, causal and not, D 64 and 128 (and 32, 96), f16 and f32
// storage, and split-KV.
var fwdCases = []fwdCase{
	{name: "varlen causal shards", lens: [][2]int{{0, 5}, {37, 37}, {100, 230}, {1, 70}}, hq: 4, hkv: 1, d: 64, causal: true, dt: attention.Float16},
	{name: "varlen causal shards", lens: [][2]int{{0, 5}, {37, 37}, {100, 230}, {1, 70}}, hq: 4, hkv: 1, d: 128, causal: true, dt: attention.Float32},
	{name: "varlen full, empty keys", lens: [][2]int{{45, 80}, {10, 0}, {0, 0}, {70, 33}}, hq: 4, hkv: 1, d: 128, dt: attention.Float16},
	{name: "varlen full", lens: [][2]int{{45, 80}, {70, 33}}, hq: 2, hkv: 2, d: 64, dt: attention.Float32},
	{name: "odd head dims", lens: [][2]int{{50, 90}, {20, 20}}, hq: 4, hkv: 2, d: 96, causal: true, dt: attention.Float16},
	{name: "odd head dims", lens: [][2]int{{50, 90}, {20, 20}}, hq: 4, hkv: 2, d: 32, dt: attention.Float32},
	{name: "split-kv", lens: [][2]int{{40, 300}, {9, 9}, {64, 200}}, hq: 4, hkv: 1, d: 64, causal: true, dt: attention.Float16, split: 64},
	{name: "split-kv", lens: [][2]int{{40, 300}, {64, 200}}, hq: 4, hkv: 1, d: 128, dt: attention.Float32, split: 64},
	{name: "growing scores", lens: [][2]int{{70, 400}, {33, 33}}, hq: 2, hkv: 1, d: 64, causal: true, dt: attention.Float16, growing: true},
	{name: "growing scores", lens: [][2]int{{40, 300}}, hq: 2, hkv: 2, d: 128, dt: attention.Float32, growing: true, split: 128},
	// D 40 pads to 48 columns where K or N is 16 (the GPUs' shapes).
	{name: "padded head dim", lens: [][2]int{{50, 90}, {0, 3}, {20, 20}}, hq: 4, hkv: 1, d: 40, causal: true, dt: attention.Float16},
}

func (c fwdCase) args() *attention.Args {
	cuQ, cuK := segments(c.lens...)
	return &attention.Args{CuSeqlensQ: cuQ, CuSeqlensK: cuK, NumHeadsQ: c.hq, NumHeadsKV: c.hkv, HeadDim: c.d, Causal: c.causal, DType: c.dt}
}

func TestForward(t *testing.T) {
	r, dev := matrixDevice(t, true)
	for i, c := range fwdCases {
		t.Run(c.String(), func(t *testing.T) {
			p := tc.New(dev, tc.Options{SplitKV: max(c.split, -1)})
			if c.split == 0 {
				p = tc.New(dev, tc.Options{SplitKV: -1})
			}
			errO, errLSE, tiling := newProblem(t, c.args(), uint64(i+1), c.growing).forward(t, r, p)
			t.Logf("%s: O %.2e, LSE %.2e", tiling, errO, errLSE)
			if c.split > 0 {
				assert.Contains(t, tiling, "split-kv", "the case must split")
			}
			assert.LessOrEqual(t, errO, tolO, "O")
			assert.LessOrEqual(t, errLSE, tolLSE, "LSE")
		})
	}
}
