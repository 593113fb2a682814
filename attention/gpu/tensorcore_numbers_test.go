package gpu

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/internal/numtest"
	"github.com/coreattn/coreattn/wgpu"
)

// The tensor-core kernels' numbers (issue 24), as numbers_test.go checks
// the FFMA kernels': any finite scores, and NaN and Inf inputs, as the
// float64 reference computes them.

// tcForwardRun runs the tensor-core forward of a on the inputs (outputs
// poisoned with NaN) and returns O and LSE and the call's tiling.
func tcForwardRun(t *testing.T, op *Op, a *attention.Args, q, k, v []float32) (o, lse []float32, tiling string) {
	t.Helper()
	dev := op.Device()
	ft := ForwardTensors{
		Q: uploadAs(t, dev, "q", a.DType, q), K: uploadAs(t, dev, "k", a.DType, k), V: uploadAs(t, dev, "v", a.DType, v),
		O: uploadAs(t, dev, "o", a.DType, nanSlice(len(q))), LSE: poisoned(t, dev, "lse", a.NumHeadsQ*a.TotalQ()),
	}
	call, err := op.PrepareForward(a, ft)
	require.NoError(t, err)
	defer call.Release()
	require.Equal(t, KernelsTensorCore, call.Kernels)
	_, err = dev.Run(context.Background(), call.Dispatches()...)
	require.NoError(t, err)
	o, err = Download(context.Background(), ft.O, a.DType, len(q))
	require.NoError(t, err)
	return o, download(t, ft.LSE, a.NumHeadsQ*a.TotalQ()), call.Tiling
}

// TestTensorCoreExtremeScores checks O and LSE where the scaled scores are
// huge (numtest.Targets: below a finite mask, and past the log2 domain):
// rows that see one key, whole masked key tiles, split-KV pieces a row
// sees none of; f16 and f32 storage.
func TestTensorCoreExtremeScores(t *testing.T) {
	dev := tcDevice(t)
	shapes := []tcCase{
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
						o, lse, tiling := tcForwardRun(t, tcOp(dev, Options{SplitKV: split}), a, q, k, v)
						if split > 0 && sh.causal {
							require.Contains(t, tiling, "split-kv", "the case must split")
						}
						require.NoError(t, numtest.Agree(o, wantO, tcTolO, nil), "O")
						tolL := 1e-6 // f16 storage: the reference sees the kernels' inputs
						if dt == attention.Float32 {
							tolL = tcTolLSE // the cast's rounding of Q and K moves the scores by ~1e-4
						}
						require.NoError(t, numtest.Agree(lse, wantLSE, tolL, nil), "LSE")
					})
				}
			}
		}
	}
}

// TestTensorCoreNonFiniteForward checks the forward's NaN and Inf
// semantics (numtest.Forward), whole and in split-KV pieces, f16 and f32
// storage.
func TestTensorCoreNonFiniteForward(t *testing.T) {
	dev := tcDevice(t)
	for _, dt := range []attention.DType{attention.Float16, attention.Float32} {
		for _, split := range []int{-1, 64} {
			for si, s := range numtest.Forward {
				t.Run(fmt.Sprintf("%s/split%d/%s", dt, split, s.Name), func(t *testing.T) {
					a := numtest.Shape(dt)
					q, k, v, _ := s.Inputs(a, uint64(si))
					wantO, wantLSE, err := attention.ReferenceForward(a, q, k, v)
					require.NoError(t, err)
					require.Positive(t, numtest.NonFinite(wantO), "the case must make some of O NaN or infinite")
					o, lse, tiling := tcForwardRun(t, tcOp(dev, Options{SplitKV: split}), a, q, k, v)
					if split > 0 {
						require.Contains(t, tiling, "split-kv", "the case must split")
					}
					require.NoError(t, numtest.Agree(o, wantO, tcTolO, s.OZone(a, numtest.Tile)), "O")
					require.NoError(t, numtest.Agree(lse, wantLSE, tcTolLSE, nil), "LSE")
				})
			}
		}
	}
}

// TestTensorCoreNonFiniteBackward checks the backward's NaN and Inf
// semantics (numtest.Backward) from the reference forward's O and LSE,
// f16 and f32 storage.
func TestTensorCoreNonFiniteBackward(t *testing.T) {
	dev := tcDevice(t)
	op := tcOp(dev, Options{})
	ctx := context.Background()
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
				bt := BackwardTensors{
					Q: uploadAs(t, dev, "q", dt, q), K: uploadAs(t, dev, "k", dt, k), V: uploadAs(t, dev, "v", dt, v),
					O: uploadAs(t, dev, "o", dt, toF32(o64)), DO: uploadAs(t, dev, "do", dt, do), LSE: upload(t, dev, "lse", toF32(lse64)),
					DQ: uploadAs(t, dev, "dq", dt, nanSlice(len(q))), DK: uploadAs(t, dev, "dk", dt, nanSlice(len(k))), DV: uploadAs(t, dev, "dv", dt, nanSlice(len(v))),
				}
				call, err := op.PrepareBackward(a, bt)
				require.NoError(t, err)
				defer call.Release()
				require.Equal(t, KernelsTensorCore, call.Kernels)
				_, err = dev.Run(ctx, call.Dispatches()...)
				require.NoError(t, err)
				zq, zk, zv := s.GradZones(a)
				for _, x := range []struct {
					name string
					src  *wgpu.Buffer
					n    int
					want []float64
					zone func(int) bool
				}{{"dQ", bt.DQ, len(q), wantDQ, zq}, {"dK", bt.DK, len(k), wantDK, zk}, {"dV", bt.DV, len(v), wantDV, zv}} {
					got, err := Download(ctx, x.src, dt, x.n)
					require.NoError(t, err)
					require.NoError(t, numtest.Agree(got, x.want, tcTolGrad, x.zone), x.name)
				}
			})
		}
	}
}
