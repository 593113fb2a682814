//go:build linux && cgo

package dawnrun

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/attention/tc"
	"github.com/coreattn/coreattn/internal/numtest"
)

// The tensor-core kernels' numbers (issue 24), as attention/gpu's tests
// check the FFMA kernels': any finite scores, and NaN and Inf inputs, as
// the float64 reference computes them.

// TestForwardExtremeScores checks O and LSE where the scaled scores are
// huge (numtest.Targets: below a finite mask, and past the log2 domain):
// rows that see one key, whole masked key tiles, split-KV pieces a row
// sees none of; f16 and f32 storage.
func TestForwardExtremeScores(t *testing.T) {
	r, dev := matrixDevice(t, true)
	shapes := []fwdCase{
		{name: "causal", lens: [][2]int{{150, 150}, {40, 300}, {1, 1}}, hq: 2, hkv: 1, d: 32, causal: true},
		{name: "full", lens: [][2]int{{30, 70}, {5, 0}}, hq: 2, hkv: 1, d: 32},
	}
	for _, dt := range []attention.DType{attention.Float16, attention.Float32} {
		for _, split := range []int{-1, 64} {
			for si, sh := range shapes {
				for ti, target := range numtest.Targets {
					t.Run(fmt.Sprintf("%s/split%d/%s/%g", dt, split, sh.name, target), func(t *testing.T) {
						sh.dt = dt
						a := sh.args()
						q, k, v := numtest.ExtremeScores(a, rand.New(rand.NewPCG(uint64(100*si+ti), 0xe2)), target)
						require.NoError(t, a.Validate())
						wantO, wantLSE, err := attention.ReferenceForward(a, q, k, v)
						require.NoError(t, err)
						l, err := tc.New(dev, tc.Options{SplitKV: split}).Forward(a)
						require.NoError(t, err)
						if split > 0 && sh.causal {
							require.Contains(t, l.Tiling, "split-kv", "the case must split")
						}
						ts := runForward(t, r, l, a, q, k, v)
						require.NoError(t, numtest.Agree(ts.get(t, "o", dt, len(q)), wantO, tolO, nil), "O")
						tolL := 1e-6 // f16 storage: the reference sees the kernels' inputs
						if dt == attention.Float32 {
							tolL = tolLSE // the cast's rounding of Q and K moves the scores by ~1e-4
						}
						require.NoError(t, numtest.Agree(ts.get(t, "lse", attention.Float32, len(wantLSE)), wantLSE, tolL, nil), "LSE")
					})
				}
			}
		}
	}
}

// runForward runs launch l on the inputs, its outputs poisoned with NaN.
func runForward(t *testing.T, r *Runner, l *tc.Launch, a *attention.Args, q, k, v []float32) *tensors {
	t.Helper()
	ts := newTensors(t, r.Device())
	ts.put(t, "q", a.DType, q)
	ts.put(t, "k", a.DType, k)
	ts.put(t, "v", a.DType, v)
	ts.poisoned(t, "o", a.DType, len(q))
	ts.poisoned(t, "lse", attention.Float32, a.NumHeadsQ*a.TotalQ())
	_, err := r.Run(context.Background(), l, ts.bufs, false)
	require.NoError(t, err)
	return ts
}

// TestForwardNonFinite checks the forward's NaN and Inf semantics
// (numtest.Forward), whole and in split-KV pieces, f16 and f32 storage.
func TestForwardNonFinite(t *testing.T) {
	r, dev := matrixDevice(t, true)
	for _, dt := range []attention.DType{attention.Float16, attention.Float32} {
		for _, split := range []int{-1, 64} {
			for si, s := range numtest.Forward {
				t.Run(fmt.Sprintf("%s/split%d/%s", dt, split, s.Name), func(t *testing.T) {
					a := numtest.Shape(dt)
					q, k, v, _ := s.Inputs(a, uint64(si))
					wantO, wantLSE, err := attention.ReferenceForward(a, q, k, v)
					require.NoError(t, err)
					require.Positive(t, numtest.NonFinite(wantO), "the case must make some of O NaN or infinite")
					l, err := tc.New(dev, tc.Options{SplitKV: split}).Forward(a)
					require.NoError(t, err)
					if split > 0 {
						require.Contains(t, l.Tiling, "split-kv", "the case must split")
					}
					ts := runForward(t, r, l, a, q, k, v)
					require.NoError(t, numtest.Agree(ts.get(t, "o", dt, len(q)), wantO, tolO, s.OZone(a, numtest.Tile)), "O")
					require.NoError(t, numtest.Agree(ts.get(t, "lse", attention.Float32, len(wantLSE)), wantLSE, tolLSE, nil), "LSE")
				})
			}
		}
	}
}

// TestBackwardNonFinite checks the backward's NaN and Inf semantics
// (numtest.Backward) from the reference forward's O and LSE, f16 and f32
// storage.
func TestBackwardNonFinite(t *testing.T) {
	r, dev := matrixDevice(t, true)
	for _, dt := range []attention.DType{attention.Float16, attention.Float32} {
		for si, s := range numtest.Backward {
			t.Run(fmt.Sprintf("%s/%s", dt, s.Name), func(t *testing.T) {
				a := numtest.Shape(dt)
				q, k, v, do := s.Inputs(a, uint64(si))
				o64, lse64, err := attention.ReferenceForward(a, q, k, v)
				require.NoError(t, err)
				wantDQ, wantDK, wantDV, err := attention.ReferenceBackward(a, q, k, v, do)
				require.NoError(t, err)
				require.Positive(t, numtest.NonFinite(wantDQ)+numtest.NonFinite(wantDK)+numtest.NonFinite(wantDV), "the case must make some gradient NaN or infinite")
				l, err := tc.New(dev, tc.Options{}).Backward(a)
				require.NoError(t, err)
				ts := newTensors(t, r.Device())
				ts.put(t, "q", dt, q)
				ts.put(t, "k", dt, k)
				ts.put(t, "v", dt, v)
				ts.put(t, "o", dt, f32s(o64))
				ts.put(t, "do", dt, do)
				ts.put(t, "lse", attention.Float32, f32s(lse64))
				ts.poisoned(t, "dq", dt, len(q))
				ts.poisoned(t, "dk", dt, len(k))
				ts.poisoned(t, "dv", dt, len(v))
				_, err = r.Run(context.Background(), l, ts.bufs, false)
				require.NoError(t, err)
				zq, zk, zv := s.GradZones(a)
				require.NoError(t, numtest.Agree(ts.get(t, "dq", dt, len(q)), wantDQ, tolGrad, zq), "dQ")
				require.NoError(t, numtest.Agree(ts.get(t, "dk", dt, len(k)), wantDK, tolGrad, zk), "dK")
				require.NoError(t, numtest.Agree(ts.get(t, "dv", dt, len(v)), wantDV, tolGrad, zv), "dV")
			})
		}
	}
}

func f32s(x []float64) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = float32(v)
	}
	return y
}
