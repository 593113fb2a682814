package gpu

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/coreattn/coreattn/attention"

	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/shaders"
	"github.com/coreattn/coreattn/wgpu"
)

// testOp opens the best adapter (lavapipe in CI) for one test.
func testOp(t testing.TB) *Op {
	t.Helper()
	dev, err := wgpu.OpenBest(wgpu.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { dev.Close() })
	return New(dev)
}

// gpuCase is one row of the kernel test table: segment lengths and shape.
type gpuCase struct {
	name    string
	qLens   []int
	kLens   []int // nil: same as qLens
	hq, hkv int
	d       int
	causal  bool
	scale   float64
}

func (c gpuCase) args() *attention.Args {
	kl := c.kLens
	if kl == nil {
		kl = c.qLens
	}
	a := &attention.Args{NumHeadsQ: c.hq, NumHeadsKV: c.hkv, HeadDim: c.d, SoftmaxScale: c.scale, Causal: c.causal}
	a.CuSeqlensQ, a.CuSeqlensK = []int32{0}, []int32{0}
	for i := range c.qLens {
		a.CuSeqlensQ = append(a.CuSeqlensQ, a.CuSeqlensQ[i]+int32(c.qLens[i]))
		a.CuSeqlensK = append(a.CuSeqlensK, a.CuSeqlensK[i]+int32(kl[i]))
	}
	return a
}

// gpuCases covers the table: single tokens, zero-length segments,
// CA-task shards (q_len < k_len), GQA 1/2/4/8, the head dimensions, non-causal,
// a custom scale and a few thousand tokens.
var gpuCases = []gpuCase{
	{name: "single token", qLens: []int{1}, hq: 1, hkv: 1, d: 64, causal: true},
	{name: "single tokens batch", qLens: []int{1, 1, 1}, hq: 2, hkv: 1, d: 32, causal: true},
	{name: "zero-length segments", qLens: []int{0, 37, 0, 5}, kLens: []int{9, 37, 0, 70}, hq: 2, hkv: 2, d: 64, causal: true},
	{name: "CA-task shards", qLens: []int{128, 17, 64}, kLens: []int{300, 17, 200}, hq: 4, hkv: 1, d: 64, causal: true},
	{name: "GQA 1", qLens: []int{70, 33}, hq: 3, hkv: 3, d: 32, causal: true},
	{name: "GQA 2", qLens: []int{70, 33}, hq: 4, hkv: 2, d: 32, causal: true},
	{name: "GQA 4", qLens: []int{70, 33}, hq: 8, hkv: 2, d: 32, causal: true},
	{name: "GQA 8", qLens: []int{50}, hq: 8, hkv: 1, d: 64, causal: true},
	{name: "D4", qLens: []int{20, 9}, hq: 2, hkv: 1, d: 4, causal: true},
	{name: "D32", qLens: []int{65, 3}, hq: 2, hkv: 2, d: 32, causal: true},
	{name: "D64", qLens: []int{130}, hq: 2, hkv: 1, d: 64, causal: true},
	{name: "D80", qLens: []int{70, 10}, kLens: []int{90, 10}, hq: 4, hkv: 2, d: 80, causal: true},
	{name: "D96", qLens: []int{66}, hq: 2, hkv: 1, d: 96, causal: true},
	{name: "D128", qLens: []int{100, 28}, kLens: []int{150, 28}, hq: 2, hkv: 2, d: 128, causal: true},
	{name: "D256", qLens: []int{70}, kLens: []int{80}, hq: 2, hkv: 1, d: 256, causal: true},
	{name: "non-causal", qLens: []int{40, 70}, kLens: []int{100, 20}, hq: 4, hkv: 2, d: 64},
	{name: "non-causal empty keys", qLens: []int{5, 8}, kLens: []int{0, 8}, hq: 1, hkv: 1, d: 32},
	{name: "custom scale", qLens: []int{90}, hq: 2, hkv: 1, d: 64, causal: true, scale: 0.37},
	{name: "few thousand tokens", qLens: []int{1500, 700, 300, 60}, kLens: []int{2000, 700, 900, 60}, hq: 4, hkv: 2, d: 64, causal: true},
}

// randn fills a fresh slice of n standard normal values.
func randn(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// poisoned allocates a device buffer of n float32 NaNs, so that a kernel
// that skips an element is caught.
func poisoned(t testing.TB, dev *wgpu.Device, name string, n int) *wgpu.Buffer {
	t.Helper()
	b, err := wgpu.Upload(dev, name, nanSlice(n))
	require.NoError(t, err)
	t.Cleanup(b.Release)
	return b
}

// nanSlice is n NaNs, to poison outputs before a run.
func nanSlice(n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(math.NaN())
	}
	return x
}

func upload(t testing.TB, dev *wgpu.Device, name string, x []float32) *wgpu.Buffer {
	t.Helper()
	b, err := wgpu.Upload(dev, name, x)
	require.NoError(t, err)
	t.Cleanup(b.Release)
	return b
}

// uploadAs uploads x stored as dt (Upload), released when the test ends.
func uploadAs(t testing.TB, dev *wgpu.Device, name string, dt attention.DType, x []float32) *wgpu.Buffer {
	t.Helper()
	b, err := Upload(dev, name, dt, x)
	require.NoError(t, err)
	t.Cleanup(b.Release)
	return b
}

func download(t testing.TB, b *wgpu.Buffer, n int) []float32 {
	t.Helper()
	x := make([]float32, n)
	require.NoError(t, wgpu.Download(context.Background(), b, x))
	return x
}

// requireLSE checks LSE entry by entry to 1e-4 absolute (+Inf must match).
func requireLSE(t *testing.T, got []float32, want []float64) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		if math.IsInf(want[i], 1) {
			require.True(t, math.IsInf(float64(got[i]), 1), "lse[%d] = %v, want +Inf", i, got[i])
			continue
		}
		require.InDelta(t, want[i], float64(got[i]), 1e-4, "lse[%d]", i)
	}
}

// checkForward runs op.Forward on fresh random inputs drawn from rng and
// compares O (relative error at most tol) with the float64 reference, and
// LSE too for float32 storage.
func checkForward(t *testing.T, op *Op, a *attention.Args, rng *rand.Rand, tol float64) {
	t.Helper()
	q := randn(rng, a.TotalQ()*a.NumHeadsQ*a.HeadDim)
	k := randn(rng, a.TotalK()*a.NumHeadsKV*a.HeadDim)
	v := randn(rng, a.TotalK()*a.NumHeadsKV*a.HeadDim)
	wantO, wantLSE, err := attention.ReferenceForward(a, q, k, v)
	require.NoError(t, err)
	gotO, gotLSE, err := op.Forward(context.Background(), a, q, k, v)
	require.NoError(t, err)
	require.LessOrEqual(t, attention.RelError(gotO, wantO), tol)
	if a.DType == attention.Float32 {
		requireLSE(t, gotLSE, wantLSE)
	}
}

func TestForwardMatchesReference(t *testing.T) {
	op := testOp(t)
	dev := op.Device()
	for i, c := range gpuCases {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 0xf0))
			a := c.args()
			require.NoError(t, a.Validate())
			q := randn(rng, a.TotalQ()*a.NumHeadsQ*a.HeadDim)
			k := randn(rng, a.TotalK()*a.NumHeadsKV*a.HeadDim)
			v := randn(rng, a.TotalK()*a.NumHeadsKV*a.HeadDim)
			wantO, wantLSE, err := attention.ReferenceForward(a, q, k, v)
			require.NoError(t, err)

			ft := ForwardTensors{
				Q: upload(t, dev, "q", q), K: upload(t, dev, "k", k), V: upload(t, dev, "v", v),
				O: poisoned(t, dev, "o", len(q)), LSE: poisoned(t, dev, "lse", a.NumHeadsQ*a.TotalQ()),
			}
			require.NoError(t, op.ForwardBuffers(context.Background(), a, ft))
			gotO := download(t, ft.O, len(q))
			require.LessOrEqual(t, attention.RelError(gotO, wantO), 1e-4, "relative error of O")
			requireLSE(t, download(t, ft.LSE, len(wantLSE)), wantLSE)
		})
	}
}

// TestForwardTilings runs a few cases under tilings other than the one this
// adapter would pick, down to those of a 16 KiB laptop GPU, so every shape
// the chooser can return is checked on any machine.
func TestForwardTilings(t *testing.T) {
	tilings := []shaders.FwdTiling{
		{TX: 16, TY: 8, RM: 8, KC: 8, VC: 8},
		{TX: 8, TY: 16, RM: 4, KC: 8, VC: 8, CPU: true, TransposedK: true},
		{TX: 8, TY: 8, RM: 4, KC: 16, VC: 4},
		{TX: 4, TY: 8, RM: 8, KC: 4, VC: 2, CPU: true},
		{TX: 8, TY: 32, RM: 4, KC: 8, VC: 8},                    // Br 128 x Bc 32: row partials span several stage rows
		{TX: 8, TY: 24, RM: 4, KC: 8, VC: 8, TransposedK: true}, // Br 96: not a power of two, K transposed, as the H200's D 64 choice
		{TX: 8, TY: 8, RM: 4, KC: 32, VC: 8},                    // K chunks of 32, as the H200's D 128 choice
		{TX: 16, TY: 16, RM: 4, KC: 8, VC: 16},                  // V rows folded two to a stage row below D 64 + 1
		{TX: 16, TY: 16, RM: 4, KC: 8, VC: 16, CPU: true, TransposedK: true},
	}
	cases := []gpuCase{gpuCases[3], gpuCases[11], gpuCases[15], gpuCases[2]}
	for _, tl := range tilings {
		dev := testOp(t).Device()
		op := NewWithOptions(dev, Options{ForwardTiling: tl})
		for i, c := range cases {
			t.Run(fmt.Sprintf("%dx%dx%dx%dx%d/cpu=%t/kt=%t/%s", tl.TX, tl.TY, tl.RM, tl.KC, tl.VC, tl.CPU, tl.TransposedK, c.name), func(t *testing.T) {
				checkForward(t, op, c.args(), rand.New(rand.NewPCG(uint64(i), 0xf1)), 1e-4)
			})
		}
	}
}

// TestForwardFoldedHalves runs the folded V staging (two V rows to a stage
// row, as the H200's D 64 choice for halves) with half storage, whose V
// loads carry eight values, in a tiling that fits lavapipe.
func TestForwardFoldedHalves(t *testing.T) {
	dev := testOp(t).Device()
	for _, cpu := range []bool{false, true} {
		for _, dt := range []attention.DType{attention.Float16, attention.BFloat16} {
			tl := shaders.FwdTiling{TX: 16, TY: 16, RM: 4, KC: 8, VC: 16, CPU: cpu, TransposedK: true}
			op := NewWithOptions(dev, Options{ForwardTiling: tl})
			for i, c := range []gpuCase{gpuCases[3], gpuCases[15]} {
				t.Run(fmt.Sprintf("cpu=%t/%s/%s", cpu, dt, c.name), func(t *testing.T) {
					a := c.args()
					a.DType = dt
					checkForward(t, op, a, rand.New(rand.NewPCG(uint64(i), 0xf4)), 1e-2)
				})
			}
		}
	}
}

// TestForwardGPUPattern checks the forward's GPU fetch pattern (the block's
// Q held in registers, coalesced K; see FwdTiling.CPU), which CPU adapters
// do not choose, for head dimensions with whole and partial d-chunks, empty
// segments, split pieces and half storage.
func TestForwardGPUPattern(t *testing.T) {
	dev := testOp(t).Device()
	lim := dev.Limits()
	cases := []struct {
		c     gpuCase
		dtype attention.DType
		split int
	}{
		{gpuCases[8], attention.Float32, 0},  // D4
		{gpuCases[6], attention.Float32, 0},  // GQA 4, D32
		{gpuCases[2], attention.Float32, 0},  // zero-length segments
		{gpuCases[3], attention.Float32, 64}, // CA-task shards, split into pieces
		{gpuCases[11], attention.Float32, 0}, // D80
		{gpuCases[13], attention.Float32, 0}, // D128
		{gpuCases[15], attention.Float32, 0}, // non-causal
		{gpuCases[3], attention.Float16, 0},
		{gpuCases[3], attention.BFloat16, 0},
	}
	for i, tc := range cases {
		t.Run(fmt.Sprintf("%s/%s/split%d", tc.c.name, tc.dtype, tc.split), func(t *testing.T) {
			a := tc.c.args()
			a.DType = tc.dtype
			tl, err := shaders.ChooseFwd(a.HeadDim, a.DType, int(lim.MaxWorkgroupStorageSize), int(lim.MaxInvocationsPerWorkgroup))
			require.NoError(t, err)
			require.False(t, tl.CPU)
			op := NewWithOptions(dev, Options{ForwardTiling: tl, SplitKV: tc.split})
			tol := 1e-4
			if a.DType != attention.Float32 {
				tol = 1e-2
			}
			checkForward(t, op, a, rand.New(rand.NewPCG(uint64(i), 0xf2)), tol)
		})
	}
}

// TestForwardGrowingMax drives every row's maximum score up by hundreds
// (log2 domain) from one key tile to the next, so that the online softmax
// must rescale O and l at every tile: P against a stale maximum would
// overflow f32. Key row j is scaled by 1 + j/32 and the softmax scale is
// 4, so scores reach the thousands; both fetch patterns, causal or not.
func TestForwardGrowingMax(t *testing.T) {
	dev := testOp(t).Device()
	lim := dev.Limits()
	for _, causal := range []bool{true, false} {
		for _, cpu := range []bool{true, false} {
			t.Run(fmt.Sprintf("causal=%t/cpu=%t", causal, cpu), func(t *testing.T) {
				a := &attention.Args{CuSeqlensQ: []int32{0, 150}, CuSeqlensK: []int32{0, 300}, NumHeadsQ: 2, NumHeadsKV: 1, HeadDim: 64, SoftmaxScale: 4, Causal: causal}
				rng := rand.New(rand.NewPCG(31, 0xf3))
				q := randn(rng, a.TotalQ()*a.NumHeadsQ*a.HeadDim)
				k := randn(rng, a.TotalK()*a.NumHeadsKV*a.HeadDim)
				v := randn(rng, a.TotalK()*a.NumHeadsKV*a.HeadDim)
				for j := range a.TotalK() {
					for d := range a.HeadDim {
						k[j*a.HeadDim+d] *= 1 + float32(j)/32
					}
				}
				tl, err := shaders.ChooseFwd(a.HeadDim, a.DType, int(lim.MaxWorkgroupStorageSize), int(lim.MaxInvocationsPerWorkgroup))
				require.NoError(t, err)
				tl.CPU = cpu
				op := NewWithOptions(dev, Options{ForwardTiling: tl})
				wantO, wantLSE, err := attention.ReferenceForward(a, q, k, v)
				require.NoError(t, err)
				gotO, gotLSE, err := op.Forward(context.Background(), a, q, k, v)
				require.NoError(t, err)
				require.LessOrEqual(t, attention.RelError(gotO, wantO), 1e-4, "relative error of O")
				require.LessOrEqual(t, attention.RelError(gotLSE, wantLSE), 1e-6, "relative error of LSE (scores in the thousands)")
			})
		}
	}
}
