package gpu

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/shaders"
	"github.com/coreattn/coreattn/wgpu"
)

// Tolerances of the tensor-core path, as ‖got−want‖/‖want‖ against the
// float64 reference. With f16 inputs the reference sees the same rounded
// inputs; the kernels round P (and, backward, dS) to f16 for the
// products, which leaves O a few 1e-4 off; f32 inputs are rounded to f16
// by the cast pass, which adds about as much again. The gradients carry
// dS's and dP's roundings too.
const (
	tcTolO    = 2e-3
	tcTolLSE  = 2e-4
	tcTolGrad = 5e-3
)

var tcSweep = flag.Int("tc.sweep", 0, "TestTensorCoreTilings: the chooser's first N tilings of the preferred matrix shape and the first of every other (0: skip the test)")

// tcDevice opens the test's device, or skips where it has no subgroup
// matrices (Dawn on an NVIDIA GPU, or on Mesa 26's lavapipe: see
// docs/tensorcores.md).
func tcDevice(t testing.TB) *wgpu.Device {
	t.Helper()
	dev := testOp(t).Device()
	if _, err := TensorCoreDevice(dev.Info()); errors.Is(err, ErrNoTensorCores) {
		t.Skipf("%v", err)
	}
	return dev
}

// tcOp is an Op on dev forced onto the tensor-core kernels with opts.
func tcOp(dev *wgpu.Device, opts Options) *Op {
	opts.Kernels = KernelsTensorCore
	return NewWithOptions(dev, opts)
}

// tcCase is one tensor-core problem: segments as (q_len, k_len) pairs.
type tcCase struct {
	name    string
	lens    [][2]int
	hq, hkv int
	d       int
	causal  bool
	dt      attention.DType
	split   int   // forced split-KV piece in keys; 0: never split
	scratch int64 // forced dS scratch cap (passes over KV heads); 0: default
	// growing scales key row j by 1 + j/16: later key tiles hold much
	// larger scores, so rows' maxima jump past the lazy-rescale threshold
	// again and again, and O makes its round trips.
	growing bool
}

func (c tcCase) String() string {
	return fmt.Sprintf("%s D%d Hq%d Hkv%d causal=%v %v", c.name, c.d, c.hq, c.hkv, c.causal, c.dt)
}

func (c tcCase) args() *attention.Args {
	a := &attention.Args{CuSeqlensQ: []int32{0}, CuSeqlensK: []int32{0}, NumHeadsQ: c.hq, NumHeadsKV: c.hkv, HeadDim: c.d, Causal: c.causal, DType: c.dt}
	for _, l := range c.lens {
		a.CuSeqlensQ = append(a.CuSeqlensQ, a.CuSeqlensQ[len(a.CuSeqlensQ)-1]+int32(l[0]))
		a.CuSeqlensK = append(a.CuSeqlensK, a.CuSeqlensK[len(a.CuSeqlensK)-1]+int32(l[1]))
	}
	return a
}

// tcFwdCases cover varlen batches with empty segments, q_len < k_len
// shards, GQA 4:1, causal and not, D 32 to 128 (and 40, padded to 48
// columns on 16-wide shapes), f16 and f32 storage, split-KV and growing
// scores.
var tcFwdCases = []tcCase{
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
	{name: "padded head dim", lens: [][2]int{{50, 90}, {0, 3}, {20, 20}}, hq: 4, hkv: 1, d: 40, causal: true, dt: attention.Float16},
}

var tcBwdCases = []tcCase{
	{name: "varlen causal shards", lens: [][2]int{{0, 5}, {37, 37}, {100, 230}, {1, 70}}, hq: 4, hkv: 1, d: 64, causal: true, dt: attention.Float16},
	{name: "varlen causal shards", lens: [][2]int{{0, 5}, {37, 37}, {100, 230}, {1, 70}}, hq: 4, hkv: 1, d: 128, causal: true, dt: attention.Float32},
	{name: "varlen full, empty keys", lens: [][2]int{{45, 80}, {10, 0}, {0, 0}, {70, 33}}, hq: 4, hkv: 1, d: 128, dt: attention.Float16},
	{name: "passes over KV heads", lens: [][2]int{{45, 80}, {70, 33}}, hq: 4, hkv: 2, d: 64, dt: attention.Float32, scratch: 40 << 10},
	{name: "odd head dims", lens: [][2]int{{50, 90}, {20, 20}}, hq: 4, hkv: 2, d: 96, causal: true, dt: attention.Float16},
	{name: "odd head dims", lens: [][2]int{{50, 90}, {20, 20}}, hq: 2, hkv: 1, d: 32, dt: attention.Float32},
	{name: "growing scores", lens: [][2]int{{70, 400}, {33, 33}}, hq: 2, hkv: 1, d: 64, causal: true, dt: attention.Float16, growing: true},
	{name: "padded head dim", lens: [][2]int{{50, 90}, {0, 3}, {20, 20}}, hq: 4, hkv: 1, d: 40, causal: true, dt: attention.Float16},
}

// tcProblem is a call's fresh random inputs (rounded to f16 for f16
// calls, so that the reference sees what the kernels see) and its float64
// reference.
type tcProblem struct {
	a                      *attention.Args
	q, k, v, do            []float32
	o, lse                 []float32 // the reference forward's, the backward's inputs
	wantO, wantLSE         []float64
	wantDQ, wantDK, wantDV []float64 // nil until a backward asks
}

func newTCProblem(t testing.TB, a *attention.Args, seed uint64, growing bool) *tcProblem {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	nq, nk := a.TotalQ()*a.NumHeadsQ*a.HeadDim, a.TotalK()*a.NumHeadsKV*a.HeadDim
	p := &tcProblem{a: a, q: randn(rng, nq), k: randn(rng, nk), v: randn(rng, nk), do: randn(rng, nq)}
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
	p.o, p.lse = toF32(p.wantO), toF32(p.wantLSE)
	return p
}

// forward runs op's forward on device buffers with the outputs poisoned
// (NaN) and returns the relative errors of O and LSE and the call's tiling.
func (p *tcProblem) forward(t *testing.T, op *Op) (errO, errLSE float64, tiling string) {
	t.Helper()
	a, dev := p.a, op.Device()
	ft := ForwardTensors{
		Q: uploadAs(t, dev, "q", a.DType, p.q), K: uploadAs(t, dev, "k", a.DType, p.k), V: uploadAs(t, dev, "v", a.DType, p.v),
		O: uploadAs(t, dev, "o", a.DType, nanSlice(len(p.q))), LSE: poisoned(t, dev, "lse", len(p.wantLSE)),
	}
	call, err := op.PrepareForward(a, ft)
	require.NoError(t, err)
	defer call.Release()
	require.Equal(t, KernelsTensorCore, call.Kernels)
	_, err = dev.Run(context.Background(), call.Dispatches()...)
	require.NoError(t, err)
	o, err := Download(context.Background(), ft.O, a.DType, len(p.q))
	require.NoError(t, err)
	return attention.RelError(o, p.wantO), attention.RelError(download(t, ft.LSE, len(p.wantLSE)), p.wantLSE), call.Tiling
}

// backward runs op's backward with O and LSE from the float64 forward
// (gradients poisoned) and returns the relative errors of dQ, dK and dV.
func (p *tcProblem) backward(t *testing.T, op *Op) (errs [3]float64, tiling string) {
	t.Helper()
	a, dev := p.a, op.Device()
	if p.wantDQ == nil {
		var err error
		p.wantDQ, p.wantDK, p.wantDV, err = attention.ReferenceBackward(a, p.q, p.k, p.v, p.do)
		require.NoError(t, err)
	}
	nq, nk := len(p.q), len(p.k)
	bt := BackwardTensors{
		Q: uploadAs(t, dev, "q", a.DType, p.q), K: uploadAs(t, dev, "k", a.DType, p.k), V: uploadAs(t, dev, "v", a.DType, p.v),
		O: uploadAs(t, dev, "o", a.DType, p.o), DO: uploadAs(t, dev, "do", a.DType, p.do), LSE: upload(t, dev, "lse", p.lse),
		DQ: uploadAs(t, dev, "dq", a.DType, nanSlice(nq)), DK: uploadAs(t, dev, "dk", a.DType, nanSlice(nk)), DV: uploadAs(t, dev, "dv", a.DType, nanSlice(nk)),
	}
	call, err := op.PrepareBackward(a, bt)
	require.NoError(t, err)
	defer call.Release()
	require.Equal(t, KernelsTensorCore, call.Kernels)
	_, err = dev.Run(context.Background(), call.Dispatches()...)
	require.NoError(t, err)
	for i, x := range []struct {
		b    *wgpu.Buffer
		n    int
		want []float64
	}{{bt.DQ, nq, p.wantDQ}, {bt.DK, nk, p.wantDK}, {bt.DV, nk, p.wantDV}} {
		got, err := Download(context.Background(), x.b, a.DType, x.n)
		require.NoError(t, err)
		errs[i] = attention.RelError(got, x.want)
	}
	return errs, call.Tiling
}

func TestTensorCoreForward(t *testing.T) {
	dev := tcDevice(t)
	for i, c := range tcFwdCases {
		t.Run(c.String(), func(t *testing.T) {
			op := tcOp(dev, Options{SplitKV: c.split})
			if c.split == 0 {
				op = tcOp(dev, Options{SplitKV: -1})
			}
			errO, errLSE, tiling := newTCProblem(t, c.args(), uint64(i+1), c.growing).forward(t, op)
			t.Logf("%s: O %.2e, LSE %.2e", tiling, errO, errLSE)
			if c.split > 0 {
				assert.Contains(t, tiling, "split-kv", "the case must split")
			}
			assert.LessOrEqual(t, errO, tcTolO, "O")
			assert.LessOrEqual(t, errLSE, tcTolLSE, "LSE")
		})
	}
}

func TestTensorCoreBackward(t *testing.T) {
	dev := tcDevice(t)
	for i, c := range tcBwdCases {
		t.Run(c.String(), func(t *testing.T) {
			op := tcOp(dev, Options{DSScratch: c.scratch})
			errs, tiling := newTCProblem(t, c.args(), uint64(100+i), c.growing).backward(t, op)
			t.Logf("%s: dQ %.2e, dK %.2e, dV %.2e", tiling, errs[0], errs[1], errs[2])
			if c.scratch > 0 {
				assert.NotContains(t, tiling, "(1 passes", "the case must take several passes")
			}
			for j, name := range []string{"dQ", "dK", "dV"} {
				assert.LessOrEqual(t, errs[j], tcTolGrad, name)
			}
		})
	}
}

// TestTensorCoreHost runs the host-slice API on tensor cores, forward then
// backward from the kernels' own O and LSE, and checks that KernelsAuto
// takes them for f16 storage and leaves f32 to the FFMA kernels.
func TestTensorCoreHost(t *testing.T) {
	op := tcOp(tcDevice(t), Options{})
	ctx := context.Background()
	c := tcCase{name: "host", lens: [][2]int{{60, 150}, {33, 33}}, hq: 4, hkv: 2, d: 64, causal: true, dt: attention.Float16}
	p := newTCProblem(t, c.args(), 77, false)
	a := p.a
	o, lse, st, err := op.ForwardTimed(ctx, a, p.q, p.k, p.v)
	require.NoError(t, err)
	assert.Positive(t, st.Kernel)
	assert.LessOrEqual(t, attention.RelError(o, p.wantO), tcTolO)
	assert.LessOrEqual(t, attention.RelError(lse, p.wantLSE), tcTolLSE)
	dq, dk, dv, err := op.Backward(ctx, a, p.q, p.k, p.v, o, lse, p.do)
	require.NoError(t, err)
	wq, wk, wv, err := attention.ReferenceBackward(a, p.q, p.k, p.v, p.do)
	require.NoError(t, err)
	for name, e := range map[string]float64{"dQ": attention.RelError(dq, wq), "dK": attention.RelError(dk, wk), "dV": attention.RelError(dv, wv)} {
		assert.LessOrEqual(t, e, tcTolGrad, name)
	}

	auto := New(op.Device())
	for _, x := range []struct {
		dt   attention.DType
		want Kernels
	}{{attention.Float16, KernelsTensorCore}, {attention.Float32, KernelsFFMA}, {attention.BFloat16, KernelsFFMA}} {
		b := *a
		b.DType = x.dt
		call, err := auto.PrepareForward(&b, p.tensors(t, op.Device(), &b))
		require.NoError(t, err)
		assert.Equal(t, x.want, call.Kernels, "auto for %v", x.dt)
		call.Release()
	}
}

// tensors uploads p's forward tensors stored as a.DType.
func (p *tcProblem) tensors(t *testing.T, dev *wgpu.Device, a *attention.Args) ForwardTensors {
	return ForwardTensors{
		Q: uploadAs(t, dev, "q", a.DType, p.q), K: uploadAs(t, dev, "k", a.DType, p.k), V: uploadAs(t, dev, "v", a.DType, p.v),
		O: uploadAs(t, dev, "o", a.DType, nanSlice(len(p.q))), LSE: poisoned(t, dev, "lse", len(p.wantLSE)),
	}
}

// TestTensorCoreTilings checks the swept forward and backward tilings
// (-tc.sweep N) of every matrix shape the adapter offers at a moderate
// varlen causal GQA batch, with robustness off as benchmarks run them:
// the GPU check that goes with `coreattn bench --tc-sweep`.
func TestTensorCoreTilings(t *testing.T) {
	if *tcSweep <= 0 {
		t.Skip("-tc.sweep N runs it (each tiling compiles for minutes on lavapipe)")
	}
	dev, err := wgpu.OpenBest(wgpu.Options{DisableRobustness: true})
	require.NoError(t, err)
	t.Cleanup(func() { dev.Close() })
	td, err := TensorCoreDevice(dev.Info())
	if errors.Is(err, ErrNoTensorCores) {
		t.Skipf("%v", err)
	}
	require.NoError(t, err)
	lens := [][2]int{{300, 700}, {512, 512}, {129, 1000}, {0, 40}}
	for _, d := range []int{64, 128} {
		c := tcCase{name: "moderate", lens: lens, hq: 8, hkv: 2, d: d, causal: true, dt: attention.Float16}
		in := newTCProblem(t, c.args(), uint64(d), false)
		sw, err := TensorCoreSweep(d, c.dt, td, *tcSweep)
		require.NoError(t, err)
		for _, ft := range sw.Forward {
			t.Run("fwd "+ft.String(), func(t *testing.T) {
				op := NewWithOptions(dev, Options{Kernels: KernelsTensorCore, TensorCoreForward: ft, SplitKV: -1})
				errO, errLSE, tiling := in.forward(t, op)
				t.Logf("%s: O %.2e, LSE %.2e", tiling, errO, errLSE)
				assert.LessOrEqual(t, errO, tcTolO)
				assert.LessOrEqual(t, errLSE, tcTolLSE)
			})
		}
		for _, bt := range sw.Backward {
			t.Run("bwd "+bt.String(), func(t *testing.T) {
				op := NewWithOptions(dev, Options{Kernels: KernelsTensorCore, TensorCoreBackward: bt})
				errs, tiling := in.backward(t, op)
				t.Logf("%s: dQ %.2e, dK %.2e, dV %.2e", tiling, errs[0], errs[1], errs[2])
				for j, name := range []string{"dQ", "dK", "dV"} {
					assert.LessOrEqual(t, errs[j], tcTolGrad, name)
				}
			})
		}
	}
}

func TestParseKernels(t *testing.T) {
	for _, k := range []Kernels{KernelsAuto, KernelsFFMA, KernelsTensorCore} {
		got, err := ParseKernels(k.String())
		require.NoError(t, err)
		assert.Equal(t, k, got)
	}
	_, err := ParseKernels("wmma")
	require.ErrorContains(t, err, `"wmma"`)
}

// TestTensorCoreDevice maps adapters' features to the kernels' target.
func TestTensorCoreDevice(t *testing.T) {
	h100 := wgpu.AdapterInfo{
		Name: "NVIDIA H100", Type: "DiscreteGPU", Runtime: wgpu.RuntimeDawn, F16: true, Subgroups: true, SubgroupMinSize: 32, SubgroupMaxSize: 32,
		MatrixConfigs: []wgpu.MatrixConfig{{M: 16, N: 16, K: 16, Component: "f16", Result: "f16"}, {M: 16, N: 8, K: 16, Component: "f16", Result: "f32"}, {M: 16, N: 16, K: 32, Component: "i8", Result: "i32"}},
		Limits:        wgpu.Limits{MaxWorkgroupStorageSize: 49152, MaxInvocationsPerWorkgroup: 1024, MaxBufferSize: 1 << 40, MaxStorageBufferBindingSize: 1 << 31, MaxWorkgroupsPerDimension: 65535, MaxStorageBuffersPerStage: 10},
	}
	d, err := TensorCoreDevice(h100)
	require.NoError(t, err)
	assert.Equal(t, []shaders.MatrixShape{{M: 16, N: 8, K: 16}}, d.Target.Shapes, "f16->f32 shapes only")
	assert.Equal(t, 32, d.Target.SubgroupSize)
	assert.Equal(t, 49152, d.Target.WorkgroupBytes)
	assert.Equal(t, uint64(1<<31), d.MaxBufferBytes)
	assert.False(t, d.CPU)
	assert.Equal(t, shaders.TCRegisterBudget, d.Target.MaxRegisters)

	lvp := h100
	lvp.Type, lvp.SubgroupMinSize, lvp.SubgroupMaxSize = "CPU", 8, 8
	lvp.MatrixConfigs = []wgpu.MatrixConfig{{M: 8, N: 8, K: 8, Component: "f16", Result: "f32"}}
	d, err = TensorCoreDevice(lvp)
	require.NoError(t, err)
	assert.True(t, d.CPU && d.Target.CPU)
	assert.Zero(t, d.Target.MaxRegisters)

	for name, info := range map[string]wgpu.AdapterInfo{
		"go-webgpu":        {Name: "x", Runtime: wgpu.RuntimeGoWebGPU},
		"no f16->f32":      func() wgpu.AdapterInfo { a := h100; a.MatrixConfigs = a.MatrixConfigs[:1]; return a }(),
		"no f16":           func() wgpu.AdapterInfo { a := h100; a.F16 = false; return a }(),
		"varying subgroup": func() wgpu.AdapterInfo { a := h100; a.SubgroupMinSize = 16; return a }(),
	} {
		_, err := TensorCoreDevice(info)
		assert.ErrorIs(t, err, ErrNoTensorCores, name)
	}
}

// TestKernelsOption checks the choice of kernels on the test's device:
// FFMA where asked or where auto finds no tensor cores, an error wrapping
// ErrNoTensorCores where tensor cores are asked for and cannot run.
func TestKernelsOption(t *testing.T) {
	dev := testOp(t).Device()
	_, tcErr := TensorCoreDevice(dev.Info())
	c := tcCase{lens: [][2]int{{20, 30}}, hq: 2, hkv: 1, d: 32, causal: true, dt: attention.Float16}
	p := newTCProblem(t, c.args(), 5, false)
	prepare := func(opts Options, a *attention.Args) (*Call, error) {
		call, err := NewWithOptions(dev, opts).PrepareForward(a, p.tensors(t, dev, a))
		if call != nil {
			t.Cleanup(call.Release)
		}
		return call, err
	}
	call, err := prepare(Options{Kernels: KernelsFFMA}, p.a)
	require.NoError(t, err)
	assert.Equal(t, KernelsFFMA, call.Kernels)
	call, err = prepare(Options{}, p.a)
	require.NoError(t, err)
	if tcErr != nil {
		assert.Equal(t, KernelsFFMA, call.Kernels, "auto without tensor cores")
		_, err = prepare(Options{Kernels: KernelsTensorCore}, p.a)
		require.ErrorIs(t, err, ErrNoTensorCores)
		return
	}
	assert.Equal(t, KernelsTensorCore, call.Kernels, "auto with tensor cores, f16")
	fixed, err := prepare(Options{ForwardTiling: shaders.FwdTiling{TX: 8, TY: 8, RM: 4, KC: 16, VC: 16}}, p.a)
	require.NoError(t, err)
	assert.Equal(t, KernelsFFMA, fixed.Kernels, "a fixed FFMA tiling keeps auto on the FFMA kernels")
	odd := *p.a
	odd.HeadDim = 4
	q := tcProblem{q: make([]float32, odd.TotalQ()*2*4), k: make([]float32, odd.TotalK()*4), v: make([]float32, odd.TotalK()*4), wantLSE: make([]float64, 2*odd.TotalQ())}
	call, err = NewWithOptions(dev, Options{}).PrepareForward(&odd, q.tensors(t, dev, &odd))
	require.NoError(t, err)
	call.Release()
	assert.Equal(t, KernelsFFMA, call.Kernels, "auto falls back for D 4")
	_, err = NewWithOptions(dev, Options{Kernels: KernelsTensorCore}).PrepareForward(&odd, q.tensors(t, dev, &odd))
	require.ErrorIs(t, err, ErrNoTensorCores)
}

func TestSweep(t *testing.T) {
	a, b, c := shaders.MatrixShape{M: 16, N: 8, K: 16}, shaders.MatrixShape{M: 16, N: 16, K: 16}, shaders.MatrixShape{M: 16, N: 8, K: 8}
	all := []shaders.MatrixShape{a, a, a, b, b, c}
	id := func(s shaders.MatrixShape) shaders.MatrixShape { return s }
	assert.Equal(t, []shaders.MatrixShape{a, a, b, c}, sweep(all, id, 2))
	assert.Equal(t, all, sweep(all, id, 0))
}
