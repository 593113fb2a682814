package gpu

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/shaders"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestForwardHalfStorage(t *testing.T) {
	op := testOp(t)
	for _, dt := range []attention.DType{attention.Float16, attention.BFloat16} {
		for i, c := range []gpuCase{gpuCases[3], gpuCases[11], gpuCases[15], gpuCases[2], gpuCases[14], gpuCases[8]} {
			t.Run(dt.String()+"/"+c.name, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(i), 0x16))
				a := c.args()
				a.DType = dt
				q := randn(rng, a.TotalQ()*a.NumHeadsQ*a.HeadDim)
				k := randn(rng, a.TotalK()*a.NumHeadsKV*a.HeadDim)
				v := randn(rng, a.TotalK()*a.NumHeadsKV*a.HeadDim)
				wantO, wantLSE, err := attention.ReferenceForward(a, q, k, v)
				require.NoError(t, err)
				dev := op.Device()
				ft := ForwardTensors{
					Q: uploadAs(t, dev, "q", dt, q), K: uploadAs(t, dev, "k", dt, k), V: uploadAs(t, dev, "v", dt, v),
					O: uploadAs(t, dev, "o", dt, nanSlice(len(q))), LSE: poisoned(t, dev, "lse", a.NumHeadsQ*a.TotalQ()),
				}
				require.NoError(t, op.ForwardBuffers(context.Background(), a, ft))
				gotO, err := Download(context.Background(), ft.O, dt, len(q))
				require.NoError(t, err)
				require.LessOrEqual(t, attention.RelError(gotO, wantO), 1e-2)
				gotLSE := download(t, ft.LSE, len(wantLSE))
				for j := range wantLSE {
					if !math.IsInf(wantLSE[j], 1) {
						require.InDelta(t, wantLSE[j], float64(gotLSE[j]), 1e-2, "lse[%d]", j)
					}
				}
				// The host API gives the same as the buffer API.
				hostO, _, err := op.Forward(context.Background(), a, q, k, v)
				require.NoError(t, err)
				assert.Equal(t, gotO, hostO)
			})
		}
	}
}

// TestBackwardHalfStorage runs the backward with f16 and bf16 storage of Q,
// K, V, O, dO and the gradients, with dQ fused (added up in an f32 scratch
// copy, then stored), from stored dS and separate: within 1e-2 relative of the float64
// reference gradients on the unrounded inputs. A fused call runs twice, as
// a prepared launch may, to check that the scratch is cleared between runs.
// D 4 reads 8 bytes a load, the others 16.
func TestBackwardHalfStorage(t *testing.T) {
	dev := testOp(t).Device()
	for _, mode := range []DQMode{DQFused, DQStored, DQSeparate} {
		for _, dt := range []attention.DType{attention.Float16, attention.BFloat16} {
			for i, c := range []gpuCase{gpuCases[3], gpuCases[11], gpuCases[15], gpuCases[2], gpuCases[8]} {
				t.Run(fmt.Sprintf("%s/%s/%s", dt, mode, c.name), func(t *testing.T) {
					in := newBwdInputs(t, c, uint64(500+i))
					a := *in.a
					a.DType = dt
					op := NewWithOptions(dev, Options{DQ: mode})
					if mode == DQFused && (c.d/4)%16 != 0 {
						t.Skipf("the chooser's 16-wide tiling cannot fuse dQ at D=%d; the separate run covers this case", c.d)
					}
					runs := 1
					if mode == DQFused {
						runs = 2
					}
					for range runs {
						dq, dk, dv, err := op.Backward(context.Background(), &a, in.q, in.k, in.v, in.o, in.lse, in.do)
						require.NoError(t, err)
						require.LessOrEqual(t, attention.RelError(dq, in.wantDQ), 1e-2, "dQ")
						require.LessOrEqual(t, attention.RelError(dk, in.wantDK), 1e-2, "dK")
						require.LessOrEqual(t, attention.RelError(dv, in.wantDV), 1e-2, "dV")
					}
				})
			}
		}
	}
}

// TestHalfStorageWideChunks runs half storage through the chunk sizes the
// choosers prefer for it where 48 KiB of workgroup memory allows (32 halves
// per fetched row and chunks of 32 rows, see shaders.ChooseFwd and
// shaders.ChooseBwd), on a tile small enough for lavapipe, with the GPU
// fetch pattern (whose swizzles place each load's two vec4s): the forward
// with K staged untransposed and transposed (the H200's choice for halves),
// then the backward with dQ fused.
func TestHalfStorageWideChunks(t *testing.T) {
	dev := testOp(t).Device()
	op := NewWithOptions(dev, Options{
		ForwardTiling: shaders.FwdTiling{TX: 8, TY: 8, RM: 4, KC: 32, VC: 32},
		BackwardDKV:   shaders.BwdTiling{TX: 8, TY: 8, RM: 4, KC: 32, VC: 32},
		DQ:            DQFused,
	})
	kt := NewWithOptions(dev, Options{ForwardTiling: shaders.FwdTiling{TX: 8, TY: 8, RM: 4, KC: 32, VC: 32, TransposedK: true}})
	for _, dt := range []attention.DType{attention.Float16, attention.BFloat16} {
		for i, c := range []gpuCase{gpuCases[3], gpuCases[2], gpuCases[15]} {
			t.Run(dt.String()+"/"+c.name, func(t *testing.T) {
				in := newBwdInputs(t, c, uint64(700+i))
				a := *in.a
				a.DType = dt
				wantO, _, err := attention.ReferenceForward(&a, in.q, in.k, in.v)
				require.NoError(t, err)
				for _, fwd := range []*Op{op, kt} {
					o, _, err := fwd.Forward(context.Background(), &a, in.q, in.k, in.v)
					require.NoError(t, err)
					require.LessOrEqual(t, attention.RelError(o, wantO), 1e-2, "O, %s", fwd.opts.ForwardTiling)
				}
				dq, dk, dv, err := op.Backward(context.Background(), &a, in.q, in.k, in.v, in.o, in.lse, in.do)
				require.NoError(t, err)
				require.LessOrEqual(t, attention.RelError(dq, in.wantDQ), 1e-2, "dQ")
				require.LessOrEqual(t, attention.RelError(dk, in.wantDK), 1e-2, "dK")
				require.LessOrEqual(t, attention.RelError(dv, in.wantDV), 1e-2, "dV")
			})
		}
	}
}
