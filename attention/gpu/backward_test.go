package gpu

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreattn/coreattn/attention"

	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/shaders"
	"github.com/coreattn/coreattn/wgpu"
)

// bwdInputs are fresh random inputs of one backward case, with the
// reference forward's O and LSE (as float32) and the reference gradients.
type bwdInputs struct {
	a               *attention.Args
	q, k, v, do     []float32
	o, lse          []float32
	wantDQ, wantDK  []float64
	wantDV          []float64
	qElems, kvElems int
}

func newBwdInputs(t *testing.T, c gpuCase, seed uint64) bwdInputs {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0xb0))
	a := c.args()
	require.NoError(t, a.Validate())
	in := bwdInputs{a: a, qElems: a.TotalQ() * a.NumHeadsQ * a.HeadDim, kvElems: a.TotalK() * a.NumHeadsKV * a.HeadDim}
	in.q = randn(rng, in.qElems)
	in.k = randn(rng, in.kvElems)
	in.v = randn(rng, in.kvElems)
	in.do = randn(rng, in.qElems)
	in.reference(t)
	return in
}

// reference computes O, LSE and the wanted gradients from the inputs.
func (in *bwdInputs) reference(t *testing.T) {
	t.Helper()
	o, lse, err := attention.ReferenceForward(in.a, in.q, in.k, in.v)
	require.NoError(t, err)
	in.o, in.lse = toF32(o), toF32(lse)
	in.wantDQ, in.wantDK, in.wantDV, err = attention.ReferenceBackward(in.a, in.q, in.k, in.v, in.do)
	require.NoError(t, err)
}

func toF32(x []float64) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = float32(v)
	}
	return y
}

// tensors uploads the inputs and poisons the outputs.
func (in bwdInputs) tensors(t *testing.T, dev *wgpu.Device) BackwardTensors {
	return BackwardTensors{
		Q: upload(t, dev, "q", in.q), K: upload(t, dev, "k", in.k), V: upload(t, dev, "v", in.v),
		O: upload(t, dev, "o", in.o), DO: upload(t, dev, "do", in.do), LSE: upload(t, dev, "lse", in.lse),
		DQ: poisoned(t, dev, "dq", in.qElems), DK: poisoned(t, dev, "dk", in.kvElems), DV: poisoned(t, dev, "dv", in.kvElems),
	}
}

// check downloads the gradients and compares them with the reference.
func (in bwdInputs) check(t *testing.T, bt BackwardTensors) {
	t.Helper()
	in.checkHost(t, download(t, bt.DQ, in.qElems), download(t, bt.DK, in.kvElems), download(t, bt.DV, in.kvElems))
}

func (in bwdInputs) checkHost(t *testing.T, dq, dk, dv []float32) {
	t.Helper()
	require.LessOrEqual(t, attention.RelError(dq, in.wantDQ), 1e-4, "relative error of dQ")
	require.LessOrEqual(t, attention.RelError(dk, in.wantDK), 1e-4, "relative error of dK")
	require.LessOrEqual(t, attention.RelError(dv, in.wantDV), 1e-4, "relative error of dV")
}

// TestBackwardMatchesReference runs the case table with the separate dQ
// kernel, with dS stored for a dQ kernel, and, where the chooser's tiling
// allows it (D/4 a multiple of its TX), with dQ fused into the dK/dV kernel
// (atomic adds).
func TestBackwardMatchesReference(t *testing.T) {
	op := testOp(t)
	dev := op.Device()
	lim := dev.Limits()
	for _, mode := range []string{"fused", "stored", "separate"} {
		for i, c := range gpuCases {
			t.Run(mode+"/"+c.name, func(t *testing.T) {
				in := newBwdInputs(t, c, uint64(i))
				bt := in.tensors(t, dev)
				dq, err := shaders.ChooseBwd(shaders.BwdDQ, c.d, shaders.Float32, int(lim.MaxWorkgroupStorageSize), int(lim.MaxInvocationsPerWorkgroup))
				require.NoError(t, err)
				kv, err := shaders.ChooseBwd(shaders.BwdDKV, c.d, shaders.Float32, int(lim.MaxWorkgroupStorageSize), int(lim.MaxInvocationsPerWorkgroup))
				require.NoError(t, err)
				kv.FusedDQ, kv.StoredDS = mode == "fused", mode == "stored"
				if mode == "stored" {
					dq, err = shaders.ChooseDQStored(c.d, shaders.Float32, int(lim.MaxWorkgroupStorageSize), int(lim.MaxInvocationsPerWorkgroup))
					require.NoError(t, err)
				}
				if err := kv.Validate(); err != nil {
					t.Skipf("%s at D=%d: %v; the separate run covers this case", kv, c.d, err)
				}
				call, err := op.prepareBackward(in.a, bt, dq, kv)
				require.NoError(t, err)
				defer call.Release()
				require.Equal(t, mode == "fused", strings.Contains(call.Tiling, "fused-dq"), call.Tiling)
				require.Equal(t, mode == "stored", strings.Contains(call.Tiling, "stored-ds"), call.Tiling)
				_, err = dev.Run(context.Background(), call.Dispatches()...)
				require.NoError(t, err)
				in.check(t, bt)
			})
		}
	}
}

// TestParseDQMode checks that ParseDQMode reads what String writes, for
// every mode, and names a bad value.
func TestParseDQMode(t *testing.T) {
	for _, m := range []DQMode{DQAuto, DQFused, DQSeparate, DQStored} {
		got, err := ParseDQMode(m.String())
		require.NoError(t, err)
		require.Equal(t, m, got)
	}
	_, err := ParseDQMode("maybe")
	require.EqualError(t, err, `attention: DQ mode "maybe": want one of auto, fused, separate, stored`)
}

// TestBackwardDQModes checks that Options.DQ is obeyed, and that DQFused
// and DQStored report a tiling that cannot fuse or store instead of
// falling back.
func TestBackwardDQModes(t *testing.T) {
	dev := testOp(t).Device()
	c := gpuCases[2]
	for _, tt := range []struct {
		name          string
		opts          Options
		fused, stored bool
		err           string
	}{
		{name: "separate", opts: Options{DQ: DQSeparate}},
		{name: "stored", opts: Options{DQ: DQStored}, stored: true},
		{name: "stored, non-square tiling", opts: Options{DQ: DQStored, BackwardDKV: shaders.BwdTiling{TX: 8, TY: 16, KC: 8, VC: 8}}, err: "cannot store dS"},
		{name: "fused", opts: Options{DQ: DQFused, BackwardDKV: shaders.BwdTiling{TX: 16, TY: 16, KC: 8, VC: 8}}, fused: true},
		{name: "auto, unfusable tiling", opts: Options{BackwardDKV: shaders.BwdTiling{TX: 8, TY: 4, KC: 8, VC: 8}}},
		{name: "fused, unfusable tiling", opts: Options{DQ: DQFused, BackwardDKV: shaders.BwdTiling{TX: 8, TY: 4, KC: 8, VC: 8}}, err: "cannot fuse dQ"},
		{name: "bad mode", opts: Options{DQ: DQMode(7)}, err: "DQ mode 7"},
		{name: "negative scratch", opts: Options{DSScratch: -5}, err: "Options.DSScratch -5"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := newBwdInputs(t, c, 400)
			bt := in.tensors(t, dev)
			call := prepareBwd(t, NewWithOptions(dev, tt.opts), in, bt, tt.err)
			if call == nil {
				return
			}
			require.Equal(t, tt.fused, strings.Contains(call.Tiling, "fused-dq"), call.Tiling)
			require.Equal(t, tt.stored, strings.Contains(call.Tiling, "stored-ds"), call.Tiling)
			in.runCheck(t, dev, call, bt)
		})
	}
}

// TestFetchPatternFollowsAdapter checks that the automatic tilings of both
// passes take the CPU fetch pattern exactly on CPU adapters (forced tilings
// keep theirs, which is how the tests run the GPU pattern on lavapipe).
func TestFetchPatternFollowsAdapter(t *testing.T) {
	op := testOp(t)
	dev := op.Device()
	cpu := dev.Info().IsCPU()
	fwd, err := op.forwardTiling(64, attention.Float32)
	require.NoError(t, err)
	require.Equal(t, cpu, fwd.CPU, fwd.String())
	in := newBwdInputs(t, gpuCases[2], 401)
	call, err := op.PrepareBackward(in.a, in.tensors(t, dev))
	require.NoError(t, err)
	defer call.Release()
	require.Equal(t, cpu, strings.Contains(call.Tiling, " cpu"), call.Tiling)
}

// TestBackwardEdgeCases covers calls that leave one of the kernels without
// work: no query rows at all (every dK and dV is 0 and must still be
// written) and no key rows at all (every dQ is 0), with the adapter's
// default dQ and with dS stored (no tiles at all, or blocks without one).
func TestBackwardEdgeCases(t *testing.T) {
	dev := testOp(t).Device()
	for _, mode := range []DQMode{DQAuto, DQStored} {
		op := NewWithOptions(dev, Options{DQ: mode})
		for i, c := range []gpuCase{
			{name: "no queries", qLens: []int{0, 0}, kLens: []int{70, 5}, hq: 4, hkv: 2, d: 32, causal: true},
			{name: "no keys", qLens: []int{9, 3}, kLens: []int{0, 0}, hq: 2, hkv: 1, d: 32},
			{name: "unseen key blocks", qLens: []int{1, 0}, kLens: []int{300, 130}, hq: 2, hkv: 2, d: 32, causal: true},
		} {
			t.Run(mode.String()+"/"+c.name, func(t *testing.T) {
				in := newBwdInputs(t, c, uint64(300+i))
				bt := in.tensors(t, dev)
				require.NoError(t, op.BackwardBuffers(context.Background(), in.a, bt))
				in.check(t, bt)
			})
		}
	}
}

// TestBackwardAfterForward chains the GPU forward into the host-slice
// backward, as the CLI does.
func TestBackwardAfterForward(t *testing.T) {
	op := testOp(t)
	for i, c := range []gpuCase{gpuCases[2], gpuCases[3], gpuCases[15]} {
		t.Run(c.name, func(t *testing.T) {
			in := newBwdInputs(t, c, uint64(100+i))
			o, lse, err := op.Forward(context.Background(), in.a, in.q, in.k, in.v)
			require.NoError(t, err)
			dq, dk, dv, err := op.Backward(context.Background(), in.a, in.q, in.k, in.v, o, lse, in.do)
			require.NoError(t, err)
			in.checkHost(t, dq, dk, dv)
		})
	}
}

// TestBackwardTilings runs a few cases under tilings other than the ones
// this adapter would pick, including the choices for a 16 KiB, 256-thread
// laptop GPU and for a 48 KiB NVIDIA GPU (where they fit), so that every
// shape the chooser can return is checked on any machine. The explicit
// tilings cover two row groups per thread (RM 8), VC below 4 and dQ fused
// with narrow chunks; -bwd.extra adds the padded transposed tile (RM 12,
// TY 6), partial d-chunks (KC 12), the widest chunks (KC 32, VC = BC) and
// fused dQ on small workgroups. Those pass wherever they run, but on
// lavapipe (Mesa 22.3) they crash the driver's queue thread now and then
// while it compiles them, so CI, which starts with an empty shader cache,
// leaves them out.
func TestBackwardTilings(t *testing.T) {
	type pair struct{ dq, kv shaders.BwdTiling }
	explicit := []pair{
		{dq: shaders.BwdTiling{TX: 8, TY: 8, RM: 8, KC: 8, VC: 4}, kv: shaders.BwdTiling{TX: 4, TY: 8, RM: 8, KC: 4, VC: 2}},
		{dq: shaders.BwdTiling{TX: 4, TY: 4, KC: 4, VC: 1, CPU: true}, kv: shaders.BwdTiling{TX: 16, TY: 4, KC: 8, VC: 8, CPU: true, Transposed: true}},
		{dq: shaders.BwdTiling{TX: 16, TY: 16, KC: 8, VC: 8, Transposed: true}, kv: shaders.BwdTiling{TX: 16, TY: 16, KC: 8, VC: 8, FusedDQ: true}},
		{dq: shaders.BwdTiling{TX: 8, TY: 16, KC: 16, VC: 8}, kv: shaders.BwdTiling{TX: 16, TY: 16, KC: 16, VC: 16, FusedDQ: true, Transposed: true}},
	}
	if *bwdExtra {
		for _, x := range extraTilings {
			explicit = append(explicit, pair(x))
		}
	}
	// Tilings given with -bwd.dq and -bwd.dkv (see BenchmarkBackward) are
	// checked too, paired by position, so that tuning candidates can be
	// verified on the device they are tuned for.
	dqs, err := parseBwdTilings(shaders.BwdDQ, 0, *bwdDQ)
	require.NoError(t, err)
	kvs, err := parseBwdTilings(shaders.BwdDKV, 0, *bwdDKV)
	require.NoError(t, err)
	for i := range min(len(dqs), len(kvs)) {
		explicit = append(explicit, pair{dqs[i], kvs[i]})
	}
	cases := []gpuCase{gpuCases[2], gpuCases[3], gpuCases[11], gpuCases[15]}
	op := testOp(t)
	lim := op.Device().Limits()
	for ci, c := range cases {
		var pairs []pair
		for _, p := range explicit {
			p.dq.Kernel, p.dq.D = shaders.BwdDQ, c.d
			p.kv.Kernel, p.kv.D = shaders.BwdDKV, c.d
			if p.kv.FusedDQ && p.kv.Validate() != nil {
				continue // this D cannot be fused with this TX
			}
			pairs = append(pairs, p)
		}
		for _, wg := range []int{16 << 10, 48 << 10} {
			dq, err := shaders.ChooseBwd(shaders.BwdDQ, c.d, shaders.Float32, wg, 256)
			require.NoError(t, err)
			kv, err := shaders.ChooseBwd(shaders.BwdDKV, c.d, shaders.Float32, wg, 256)
			require.NoError(t, err)
			if dq.WorkgroupBytes() <= int(lim.MaxWorkgroupStorageSize) && kv.WorkgroupBytes() <= int(lim.MaxWorkgroupStorageSize) {
				pairs = append(pairs, pair{dq, kv})
			}
		}
		for _, p := range pairs {
			t.Run(fmt.Sprintf("%s/%s/%s", c.name, p.dq, p.kv), func(t *testing.T) {
				in := newBwdInputs(t, c, uint64(200+ci))
				bt := in.tensors(t, op.Device())
				call, err := op.prepareBackward(in.a, bt, p.dq, p.kv)
				require.NoError(t, err)
				defer call.Release()
				_, err = op.Device().Run(context.Background(), call.Dispatches()...)
				require.NoError(t, err)
				in.check(t, bt)
			})
		}
	}
}

func TestBackwardErrors(t *testing.T) {
	op := testOp(t)
	dev := op.Device()
	c := gpuCase{qLens: []int{3, 5}, kLens: []int{4, 5}, hq: 2, hkv: 1, d: 8, causal: true}
	in := newBwdInputs(t, c, 7)
	good := in.tensors(t, dev)
	short := upload(t, dev, "short", make([]float32, 4))

	tests := []struct {
		name string
		edit func(*BackwardTensors, *attention.Args)
		want string
	}{
		{"missing dq", func(bt *BackwardTensors, _ *attention.Args) { bt.DQ = nil }, "tensor dq is missing"},
		{"missing do", func(bt *BackwardTensors, _ *attention.Args) { bt.DO = nil }, "tensor do is missing"},
		{"missing o", func(bt *BackwardTensors, _ *attention.Args) { bt.O = nil }, "tensor o is missing"},
		{"missing lse", func(bt *BackwardTensors, _ *attention.Args) { bt.LSE = nil }, "tensor lse is missing"},
		{"short dk", func(bt *BackwardTensors, _ *attention.Args) { bt.DK = short }, "tensor dk holds 16 bytes"},
		{"short dv", func(bt *BackwardTensors, _ *attention.Args) { bt.DV = short }, "tensor dv holds 16 bytes"},
		{"short do", func(bt *BackwardTensors, _ *attention.Args) { bt.DO = short }, "tensor do holds 16 bytes"},
		{"short lse", func(bt *BackwardTensors, _ *attention.Args) { bt.LSE = short }, "tensor lse holds 16 bytes"},
		{"dq aliases q", func(bt *BackwardTensors, _ *attention.Args) { bt.DQ = bt.Q }, "tensors dq and q share a buffer"},
		{"dk aliases dv", func(bt *BackwardTensors, _ *attention.Args) { bt.DK = bt.DV }, "tensors dk and dv share a buffer"},
		{"bad head dim", func(_ *BackwardTensors, a *attention.Args) { a.HeadDim = 6 }, "head_dim = 6"},
		{"causal q_len > k_len", func(_ *BackwardTensors, a *attention.Args) { a.CuSeqlensK = []int32{0, 2, 7} }, "causal attention needs q_len <= k_len"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bt := good
			a := *in.a
			tc.edit(&bt, &a)
			_, err := op.PrepareBackward(&a, bt)
			require.ErrorContains(t, err, tc.want)
			require.ErrorContains(t, op.BackwardBuffers(context.Background(), &a, bt), tc.want)
		})
	}

	other := testOp(t).Device()
	t.Run("other device", func(t *testing.T) {
		bt := good
		bt.V = upload(t, other, "v", in.v)
		_, err := op.PrepareBackward(in.a, bt)
		require.ErrorContains(t, err, "tensor v lives on another device")
	})

	host := []struct {
		name                string
		q, k, v, o, lse, do []float32
		want                string
	}{
		{"host q", in.q[1:], in.k, in.v, in.o, in.lse, in.do, "q has"},
		{"host v", in.q, in.k, in.v[1:], in.o, in.lse, in.do, "v has"},
		{"host o", in.q, in.k, in.v, in.o[1:], in.lse, in.do, "o has"},
		{"host do", in.q, in.k, in.v, in.o, in.lse, append(in.do, 0), "do has"},
		{"host lse", in.q, in.k, in.v, in.o, in.lse[1:], in.do, "lse has"},
	}
	for _, tc := range host {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := op.Backward(context.Background(), in.a, tc.q, tc.k, tc.v, tc.o, tc.lse, tc.do)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// extraTilings are the explicit tilings of TestBackwardTilings that run
// only with -bwd.extra (see there).
var extraTilings = []struct{ dq, kv shaders.BwdTiling }{
	{dq: shaders.BwdTiling{TX: 8, TY: 4, RM: 12, KC: 12, VC: 8}, kv: shaders.BwdTiling{TX: 8, TY: 8, KC: 32, VC: 32}},
	{dq: shaders.BwdTiling{TX: 8, TY: 8, KC: 32, VC: 32}, kv: shaders.BwdTiling{TX: 8, TY: 6, KC: 12, VC: 16}},
	{dq: shaders.BwdTiling{TX: 8, TY: 8, KC: 8, VC: 8}, kv: shaders.BwdTiling{TX: 8, TY: 4, RM: 8, KC: 8, VC: 8, FusedDQ: true}},
	{dq: shaders.BwdTiling{TX: 8, TY: 8, KC: 8, VC: 8}, kv: shaders.BwdTiling{TX: 8, TY: 8, KC: 32, VC: 32, FusedDQ: true}},
}

var (
	bwdExtra = flag.Bool("bwd.extra", false, "TestBackwardTilings: also the tilings that crash lavapipe at times on a cold shader cache")
	bwdShape = flag.String("bwd.shape", "1024,128,2", "BenchmarkBackward: causal shape S,D,H (one segment, H query and KV heads)")
	bwdDQ    = flag.String("bwd.dq", "", "BenchmarkBackward: dQ tilings TX,TY,RM,KC,VC separated by spaces (default: the chooser's)")
	bwdDKV   = flag.String("bwd.dkv", "", "BenchmarkBackward: dK/dV tilings, as -bwd.dq")
)

// parseBwdTilings reads the tilings of -bwd.dq or -bwd.dkv.
func parseBwdTilings(k shaders.BwdKernel, d int, s string) ([]shaders.BwdTiling, error) {
	var out []shaders.BwdTiling
	for _, f := range strings.Fields(s) {
		t := shaders.BwdTiling{Kernel: k, D: d}
		if _, err := fmt.Sscanf(f, "%d,%d,%d,%d,%d", &t.TX, &t.TY, &t.RM, &t.KC, &t.VC); err != nil {
			return nil, fmt.Errorf("tiling %q: want TX,TY,RM,KC,VC: %w", f, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// BenchmarkBackward times the backward kernels at one causal shape (by
// default sized for lavapipe) under the chooser's tilings or under the
// tilings of -bwd.dq and -bwd.dkv, paired by position (the chooser's fill
// the shorter list). It reports the median GPU time of each kernel (from
// timestamp queries, or the wall clock of the whole backward without them)
// and the backward's TFLOP/s, counted as 2.5× the forward's FLOPs, and
// the time to compile the kernels and run them once.
func BenchmarkBackward(b *testing.B) {
	var sq, d, h int
	if _, err := fmt.Sscanf(*bwdShape, "%d,%d,%d", &sq, &d, &h); err != nil {
		b.Fatalf("-bwd.shape %q: want S,D,H: %v", *bwdShape, err)
	}
	op := testOp(b)
	dev := op.Device()
	lim := dev.Limits()
	dqs, err := parseBwdTilings(shaders.BwdDQ, d, *bwdDQ)
	require.NoError(b, err)
	kvs, err := parseBwdTilings(shaders.BwdDKV, d, *bwdDKV)
	require.NoError(b, err)
	defDQ, err := shaders.ChooseBwd(shaders.BwdDQ, d, shaders.Float32, int(lim.MaxWorkgroupStorageSize), int(lim.MaxInvocationsPerWorkgroup))
	require.NoError(b, err)
	defKV, err := shaders.ChooseBwd(shaders.BwdDKV, d, shaders.Float32, int(lim.MaxWorkgroupStorageSize), int(lim.MaxInvocationsPerWorkgroup))
	require.NoError(b, err)

	a := &attention.Args{CuSeqlensQ: []int32{0, int32(sq)}, CuSeqlensK: []int32{0, int32(sq)}, NumHeadsQ: h, NumHeadsKV: h, HeadDim: d, Causal: true}
	require.NoError(b, a.Validate())
	rng := rand.New(rand.NewPCG(3, 4))
	n := sq * h * d
	bt := BackwardTensors{
		Q: upload(b, dev, "q", randn(rng, n)), K: upload(b, dev, "k", randn(rng, n)), V: upload(b, dev, "v", randn(rng, n)),
		DO: upload(b, dev, "do", randn(rng, n)), O: poisoned(b, dev, "o", n), LSE: poisoned(b, dev, "lse", sq*h),
		DQ: poisoned(b, dev, "dq", n), DK: poisoned(b, dev, "dk", n), DV: poisoned(b, dev, "dv", n),
	}
	ctx := context.Background()
	fwd, err := op.PrepareForward(a, ForwardTensors{Q: bt.Q, K: bt.K, V: bt.V, O: bt.O, LSE: bt.LSE})
	require.NoError(b, err)
	_, err = dev.Run(ctx, fwd.Dispatches()...)
	fwd.Release()
	require.NoError(b, err)

	for i := range max(1, len(dqs), len(kvs)) {
		dqT, kvT := defDQ, defKV
		if i < len(dqs) {
			dqT = dqs[i]
		}
		if i < len(kvs) {
			kvT = kvs[i]
		}
		b.Run(fmt.Sprintf("S%d_D%d_H%d/%s/%s", sq, d, h, dqT, kvT), func(b *testing.B) {
			start := time.Now()
			call, err := op.prepareBackward(a, bt, dqT, kvT) // compiles the kernels
			require.NoError(b, err)
			defer call.Release()
			_, err = dev.Run(ctx, call.Dispatches()...) // warm-up
			require.NoError(b, err)
			prepare := time.Since(start)
			times := map[string][]time.Duration{}
			var walls []time.Duration
			b.ResetTimer()
			for range b.N {
				timing, err := dev.Run(ctx, call.Dispatches()...)
				require.NoError(b, err)
				walls = append(walls, timing.GPU())
				for j, p := range timing.Passes {
					times[call.Dispatches()[j].Label] = append(times[call.Dispatches()[j].Label], p)
				}
			}
			b.StopTimer()
			median := func(x []time.Duration) float64 {
				slices.Sort(x)
				return float64(x[len(x)/2]) / float64(time.Millisecond)
			}
			for label, x := range times {
				b.ReportMetric(median(x), strings.TrimPrefix(label, "attn_bwd ")+"-ms")
			}
			b.ReportMetric(2.5*a.FLOPs()/median(walls)/1e9, "bwd-TFLOP/s")
			b.ReportMetric(prepare.Seconds(), "prepare-s")
		})
	}
}
