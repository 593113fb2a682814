package gpu

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/internal/numtest"
	"github.com/coreattn/coreattn/shaders"
	"github.com/coreattn/coreattn/wgpu"
)

// Tests of the numbers the kernels promise (issue 24): any finite scores,
// however large, and NaN or infinite inputs, as the float64 reference
// computes them (see the package attention documentation).

// extremeShapes are causal and full batches for the extreme scores: rows
// that see one key, shards (q_len < k_len), blocks whose first rows see
// whole key tiles masked, and a segment without keys.
var extremeShapes = []gpuCase{
	{name: "causal", qLens: []int{150, 40, 1}, kLens: []int{150, 300, 1}, hq: 2, hkv: 1, d: 32, causal: true},
	{name: "full", qLens: []int{30, 5}, kLens: []int{70, 0}, hq: 2, hkv: 1, d: 32},
}

// TestForwardExtremeScores checks O and LSE against the float64 reference
// where the scaled scores are huge: -1e31 and -1e35 lie below the old
// kernels' finite mask (-1e30 in the log2 domain), ±3e38 overflow the log2
// domain (|S|·log2(e) > 3.4e38) while finite in f32. Rows see one key,
// whole masked key tiles (Br 64 over Bc 16) and split-KV pieces they see
// none of; f32, f16 and bf16 storage.
func TestForwardExtremeScores(t *testing.T) {
	dev := testOp(t).Device()
	lim := dev.Limits()
	type variant struct {
		name   string
		tiling func(d int, dt shaders.DType) shaders.FwdTiling
		split  int
	}
	chosen := func(gpu bool) func(int, shaders.DType) shaders.FwdTiling {
		return func(d int, dt shaders.DType) shaders.FwdTiling {
			tl, err := shaders.ChooseFwd(d, dt, int(lim.MaxWorkgroupStorageSize), int(lim.MaxInvocationsPerWorkgroup))
			require.NoError(t, err)
			tl.CPU = !gpu
			return tl
		}
	}
	tall := func(int, shaders.DType) shaders.FwdTiling {
		return shaders.FwdTiling{TX: 4, TY: 8, RM: 8, KC: 4, VC: 2, CPU: true} // Br 64, Bc 16
	}
	variants := []variant{
		{"cpu pattern", chosen(false), -1},
		{"gpu pattern", chosen(true), -1},
		{"br 64 bc 16", tall, -1},
		{"split-kv 32", chosen(true), 32},
	}
	for _, dt := range []attention.DType{attention.Float32, attention.Float16, attention.BFloat16} {
		tolO := map[attention.DType]float64{attention.Float32: 1e-4, attention.Float16: 1e-3, attention.BFloat16: 1e-2}[dt]
		for vi, vr := range variants {
			if dt != attention.Float32 && vi%2 == 0 {
				continue // halves: the GPU pattern and split pieces only
			}
			for si, sh := range extremeShapes {
				for ti, target := range numtest.Targets {
					t.Run(fmt.Sprintf("%s/%s/%s/%g", dt, vr.name, sh.name, target), func(t *testing.T) {
						a := sh.args()
						a.DType = dt
						rng := rand.New(rand.NewPCG(uint64(100*si+ti), 0xe1))
						q, k, v := numtest.ExtremeScores(a, rng, target)
						require.NoError(t, a.Validate())
						wantO, wantLSE, err := attention.ReferenceForward(a, q, k, v)
						require.NoError(t, err)
						tl := vr.tiling(a.HeadDim, a.DType)
						op := NewWithOptions(dev, Options{ForwardTiling: tl, SplitKV: vr.split})
						ft := ForwardTensors{
							Q: uploadAs(t, dev, "q", dt, q), K: uploadAs(t, dev, "k", dt, k), V: uploadAs(t, dev, "v", dt, v),
							O: uploadAs(t, dev, "o", dt, nanSlice(len(q))), LSE: poisoned(t, dev, "lse", len(wantLSE)),
						}
						call, err := op.PrepareForward(a, ft)
						require.NoError(t, err)
						defer call.Release()
						if vr.split > 0 && sh.causal {
							require.Contains(t, call.Tiling, "split-kv", "the case must split")
						}
						_, err = dev.Run(context.Background(), call.Dispatches()...)
						require.NoError(t, err)
						gotO, err := Download(context.Background(), ft.O, dt, len(q))
						require.NoError(t, err)
						requireAgrees(t, "O", gotO, wantO, tolO, nil)
						requireAgrees(t, "LSE", download(t, ft.LSE, len(wantLSE)), wantLSE, 1e-6, nil)
					})
				}
			}
		}
	}
}

// requireAgrees is numtest.Agree as a test assertion.
func requireAgrees(t *testing.T, name string, got []float32, want []float64, tol float64, mayNaN func(i int) bool) {
	t.Helper()
	require.NoError(t, numtest.Agree(got, want, tol, mayNaN), name)
}

// TestForwardNonFinite checks the forward's NaN and Inf semantics against
// the reference: a row's O and LSE are NaN where it sees a NaN or +Inf
// score, or only -Inf ones; NaN and Inf in V reach O of the rows that see
// them (the rows a causal mask hides them from only within one tile of the
// diagonal); rows that cannot see a poisoned key, and other segments, are
// exact. Both fetch patterns, split-KV pieces, f32 and f16.
func TestForwardNonFinite(t *testing.T) {
	dev := testOp(t).Device()
	lim := dev.Limits()
	for _, dt := range []attention.DType{attention.Float32, attention.Float16} {
		tol := map[attention.DType]float64{attention.Float32: 1e-4, attention.Float16: 1e-2}[dt]
		for _, v := range []struct {
			name  string
			gpu   bool
			split int
		}{{"cpu pattern", false, -1}, {"gpu pattern", true, -1}, {"split-kv 64", true, 64}} {
			for si, s := range numtest.Forward {
				t.Run(fmt.Sprintf("%s/%s/%s", dt, v.name, s.Name), func(t *testing.T) {
					a := numtest.Shape(dt)
					q, k, vv, _ := s.Inputs(a, uint64(si))
					wantO, wantLSE, err := attention.ReferenceForward(a, q, k, vv)
					require.NoError(t, err)
					require.Positive(t, numtest.NonFinite(wantO), "the case must make some of O NaN or infinite")
					tl, err := shaders.ChooseFwd(a.HeadDim, a.DType, int(lim.MaxWorkgroupStorageSize), int(lim.MaxInvocationsPerWorkgroup))
					require.NoError(t, err)
					tl.CPU = !v.gpu
					op := NewWithOptions(dev, Options{ForwardTiling: tl, SplitKV: v.split})
					ft := ForwardTensors{
						Q: uploadAs(t, dev, "q", dt, q), K: uploadAs(t, dev, "k", dt, k), V: uploadAs(t, dev, "v", dt, vv),
						O: uploadAs(t, dev, "o", dt, nanSlice(len(q))), LSE: poisoned(t, dev, "lse", len(wantLSE)),
					}
					call, err := op.PrepareForward(a, ft)
					require.NoError(t, err)
					defer call.Release()
					if v.split > 0 {
						require.Contains(t, call.Tiling, "split-kv", "the case must split")
					}
					_, err = dev.Run(context.Background(), call.Dispatches()...)
					require.NoError(t, err)
					gotO, err := Download(context.Background(), ft.O, dt, len(q))
					require.NoError(t, err)
					requireAgrees(t, "O", gotO, wantO, tol, s.OZone(a, tl.BR()))
					requireAgrees(t, "LSE", download(t, ft.LSE, len(wantLSE)), wantLSE, 1e-4, nil)
				})
			}
		}
	}
}

// TestBackwardNonFinite checks the backward's NaN and Inf semantics
// against the reference, from the reference forward's O and LSE (NaN in
// the rows it makes NaN), with dQ fused, separate and from stored dS, f32
// and f16: gradients the reference makes NaN are NaN, infinite ones
// infinite or NaN, and the others exact, except within one tile of the
// diagonal where a hidden NaN in K, Q or dO is documented to reach.
func TestBackwardNonFinite(t *testing.T) {
	dev := testOp(t).Device()
	for _, dt := range []attention.DType{attention.Float32, attention.Float16} {
		tol := map[attention.DType]float64{attention.Float32: 1e-4, attention.Float16: 1e-2}[dt]
		for _, mode := range []DQMode{DQFused, DQSeparate, DQStored} {
			op := NewWithOptions(dev, Options{DQ: mode})
			for si, s := range numtest.Backward {
				t.Run(fmt.Sprintf("%s/%s/%s", dt, mode, s.Name), func(t *testing.T) {
					a := numtest.Shape(dt)
					q, k, v, do := s.Inputs(a, uint64(si))
					o64, lse64, err := attention.ReferenceForward(a, q, k, v)
					require.NoError(t, err)
					wantDQ, wantDK, wantDV, err := attention.ReferenceBackward(a, q, k, v, do)
					require.NoError(t, err)
					require.Positive(t, numtest.NonFinite(wantDQ)+numtest.NonFinite(wantDK)+numtest.NonFinite(wantDV), "the case must make some gradient NaN or infinite")
					o, lse := toF32(o64), toF32(lse64)
					bt := BackwardTensors{
						Q: uploadAs(t, dev, "q", dt, q), K: uploadAs(t, dev, "k", dt, k), V: uploadAs(t, dev, "v", dt, v),
						O: uploadAs(t, dev, "o", dt, o), DO: uploadAs(t, dev, "do", dt, do), LSE: upload(t, dev, "lse", lse),
						DQ: uploadAs(t, dev, "dq", dt, nanSlice(len(q))), DK: uploadAs(t, dev, "dk", dt, nanSlice(len(k))), DV: uploadAs(t, dev, "dv", dt, nanSlice(len(v))),
					}
					call, err := op.PrepareBackward(a, bt)
					require.NoError(t, err)
					defer call.Release()
					require.Contains(t, call.Tiling, map[DQMode]string{DQFused: "fused-dq", DQStored: "stored-ds", DQSeparate: ""}[mode])
					_, err = dev.Run(context.Background(), call.Dispatches()...)
					require.NoError(t, err)
					get := func(b *wgpu.Buffer, n int) []float32 {
						x, err := Download(context.Background(), b, dt, n)
						require.NoError(t, err)
						return x
					}
					zq, zk, zv := s.GradZones(a)
					requireAgrees(t, "dQ", get(bt.DQ, len(q)), wantDQ, tol, zq)
					requireAgrees(t, "dK", get(bt.DK, len(k)), wantDK, tol, zk)
					requireAgrees(t, "dV", get(bt.DV, len(v)), wantDV, tol, zv)
				})
			}
		}
	}
}

// TestScratchTooLarge: a backward whose stored dS tiles of one KV head
// exceed the scratch cap fails with wgpu.ErrTooLarge, which a caller (the
// pool's local server) tells from a bad request and answers by splitting
// the call.
func TestScratchTooLarge(t *testing.T) {
	dev := testOp(t).Device()
	in := newBwdInputs(t, gpuCases[3], 5)
	op := NewWithOptions(dev, Options{DQ: DQStored, DSScratch: 1 << 10})
	_, _, _, err := op.Backward(context.Background(), in.a, in.q, in.k, in.v, in.o, in.lse, in.do)
	require.ErrorIs(t, err, wgpu.ErrTooLarge)
	_, err = op.PrepareBackward(in.a, in.tensors(t, dev))
	require.ErrorIs(t, err, wgpu.ErrTooLarge)
}
