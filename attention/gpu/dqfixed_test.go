package gpu

import (
	"context"
	"math"
	"testing"

	"github.com/coreattn/coreattn/attention"

	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/shaders"
	"github.com/coreattn/coreattn/wgpu"
)

// fusedCall prepares the backward of in with dQ fused into the dK/dV kernel.
func fusedCall(t *testing.T, op *Op, in bwdInputs, bt BackwardTensors) *Call {
	t.Helper()
	lim := op.Device().Limits()
	wg, thr := int(lim.MaxWorkgroupStorageSize), int(lim.MaxInvocationsPerWorkgroup)
	dq, err := shaders.ChooseBwd(shaders.BwdDQ, in.a.HeadDim, in.a.DType, wg, thr)
	require.NoError(t, err)
	kv, err := shaders.ChooseBwd(shaders.BwdDKV, in.a.HeadDim, in.a.DType, wg, thr)
	require.NoError(t, err)
	kv.FusedDQ = true
	require.NoError(t, kv.Validate())
	call, err := op.prepareBackward(in.a, bt, dq, kv)
	require.NoError(t, err)
	t.Cleanup(call.Release)
	return call
}

func runCall(t *testing.T, dev *wgpu.Device, call *Call) {
	t.Helper()
	_, err := dev.Run(context.Background(), call.Dispatches()...)
	require.NoError(t, err)
}

// TestFusedDQDeterministic runs one fused backward call three times and a
// second call of the same problem once: dQ must be the same bits every
// time (integer sums do not depend on the order of the atomic adds), which
// also shows that the last pass clears the accumulator and the bound for
// the next run (otherwise the second run would add to the first).
func TestFusedDQDeterministic(t *testing.T) {
	op := testOp(t)
	dev := op.Device()
	c := gpuCase{qLens: []int{300, 40, 130}, kLens: []int{300, 200, 130}, hq: 4, hkv: 2, d: 64, causal: true}
	in := newBwdInputs(t, c, 11)
	bt := in.tensors(t, dev)
	call := fusedCall(t, op, in, bt)
	var first []float32
	for run := 0; run < 3; run++ {
		runCall(t, dev, call)
		dq := download(t, bt.DQ, in.qElems)
		if first == nil {
			first = dq
			in.check(t, bt)
			continue
		}
		require.Equal(t, math32bits(first), math32bits(dq), "run %d: dQ differs from the first run", run)
	}
	bt2 := in.tensors(t, dev)
	runCall(t, dev, fusedCall(t, op, in, bt2))
	require.Equal(t, math32bits(first), math32bits(download(t, bt2.DQ, in.qElems)), "a second call: dQ differs")
}

func math32bits(x []float32) []uint32 {
	b := make([]uint32, len(x))
	for i, v := range x {
		b[i] = math.Float32bits(v)
	}
	return b
}

// TestFusedDQScales checks the fixed-point dQ where the inputs' scales move
// the per-row bound far from 1 (so that the rows' scales 2^e span a wide
// range), where some rows of dO are zero (their bound is 0 and their dQ
// exactly 0), and where a row of dO is NaN (its dQ is NaN, as float sums
// would make it).
func TestFusedDQScales(t *testing.T) {
	op := testOp(t)
	dev := op.Device()
	c := gpuCase{qLens: []int{200, 70}, kLens: []int{260, 70}, hq: 2, hkv: 1, d: 64, causal: true}
	cases := []struct {
		name          string
		sq, sk, sv, s float32 // factors of Q, K, V and dO
		zeroRows      []int   // rows of dO (all heads) set to zero
	}{
		{name: "small Q", sq: 1e-3, sk: 1, sv: 1, s: 1},
		{name: "large dO", sq: 1, sk: 1, sv: 1, s: 1e4},
		{name: "tiny V and dO", sq: 1, sk: 1, sv: 1e-6, s: 1e-6},
		{name: "large K small Q", sq: 1e-2, sk: 1e2, sv: 1, s: 1},
		{name: "zero dO rows", sq: 1, sk: 1, sv: 1, s: 1, zeroRows: []int{0, 5, 201}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := newBwdInputsScaled(t, c, uint64(100+i), tc.sq, tc.sk, tc.sv, tc.s, tc.zeroRows)
			bt := in.tensors(t, dev)
			runCall(t, dev, fusedCall(t, op, in, bt))
			in.check(t, bt)
			dq := download(t, bt.DQ, in.qElems)
			row := in.a.NumHeadsQ * in.a.HeadDim
			for _, r := range tc.zeroRows {
				for _, x := range dq[r*row : (r+1)*row] {
					require.Zero(t, x, "dQ of row %d, whose dO is zero", r)
				}
			}
		})
	}
	t.Run("NaN dO row", func(t *testing.T) {
		in := newBwdInputs(t, c, 7)
		row := in.a.NumHeadsQ * in.a.HeadDim
		in.do[3*row] = float32(math.NaN()) // row 3, head 0, column 0
		bt := in.tensors(t, dev)
		runCall(t, dev, fusedCall(t, op, in, bt))
		dq := download(t, bt.DQ, in.qElems)
		for _, x := range dq[3*row : 3*row+in.a.HeadDim] {
			require.True(t, math.IsNaN(float64(x)), "dQ of row 3, head 0: want NaN, got %v", x)
		}
		require.False(t, math.IsNaN(float64(dq[0])), "dQ of row 0 is NaN")
	})
}

// newBwdInputsScaled is newBwdInputs with Q, K, V and dO multiplied by the
// given factors and the given rows of dO cleared, before the reference runs.
func newBwdInputsScaled(t *testing.T, c gpuCase, seed uint64, sq, sk, sv, sdo float32, zeroRows []int) bwdInputs {
	t.Helper()
	in := newBwdInputs(t, c, seed)
	row := in.a.NumHeadsQ * in.a.HeadDim
	for _, x := range []struct {
		t []float32
		f float32
	}{{in.q, sq}, {in.k, sk}, {in.v, sv}, {in.do, sdo}} {
		for i := range x.t {
			x.t[i] *= x.f
		}
	}
	for _, r := range zeroRows {
		clear(in.do[r*row : (r+1)*row])
	}
	in.reference(t)
	return in
}

// TestFusedDQLooseBound checks the lo fields of the fixed-point dQ: the
// second segment's last key row is 1e4 times the others, so every row's
// bound (which takes max|K| over all keys) is about 1e6 times its dQ, and
// the hi words alone (units of 2^-29 of the bound) would leave the other
// rows' dQ about 1e-3 off (1.6e-3 measured with the lo fields dropped);
// with them it stays within 1e-4. The one query row that sees the large
// key is left out, and dK and dV are not checked: float32 arithmetic alone
// puts that row's dQ 4e-3 off (the separate dQ kernel as much) and, through
// its P, dV 3e-4.
func TestFusedDQLooseBound(t *testing.T) {
	op := testOp(t)
	dev := op.Device()
	c := gpuCase{qLens: []int{200, 70}, kLens: []int{260, 70}, hq: 2, hkv: 1, d: 64, causal: true}
	in := newBwdInputs(t, c, 21)
	spike := (260 + 69) * in.a.NumHeadsKV * in.a.HeadDim // the second segment's last key
	for i := range in.a.NumHeadsKV * in.a.HeadDim {
		in.k[spike+i] *= 1e4
	}
	in.reference(t)
	bt := in.tensors(t, dev)
	runCall(t, dev, fusedCall(t, op, in, bt))
	dq := download(t, bt.DQ, in.qElems)
	rest := (200 + 69) * in.a.NumHeadsQ * in.a.HeadDim // every query row but the last
	require.LessOrEqual(t, attention.RelError(dq[:rest], in.wantDQ[:rest]), 1e-4, "dQ of the rows that do not see the large key")
}

// TestLoBits pins L, the lo fields' fractional bits: one lo term per key
// block of the longest segment, at most 2^(L-1) each, must sum below 2^15
// (a signed 16-bit field): L is the largest such, down to 0 (no lo terms)
// from 2^15 blocks on.
func TestLoBits(t *testing.T) {
	cases := []struct {
		kLens []int
		want  int
	}{
		{[]int{0}, 15},
		{[]int{64}, 15},
		{[]int{65}, 14},
		{[]int{100, 8192}, 8},
		{[]int{8193}, 8},
		{[]int{16384, 5}, 7},
		{[]int{1 << 16}, 5},
		{[]int{1 << 20}, 1},
		{[]int{1 << 21}, 0},
		{[]int{1 << 22}, 0},
	}
	for _, c := range cases {
		a := gpuCase{qLens: make([]int, len(c.kLens)), kLens: c.kLens, hq: 1, hkv: 1, d: 64}.args()
		require.Equal(t, c.want, loBits(a, 64), "key lengths %v", c.kLens)
		n := 1
		for _, k := range c.kLens {
			n = max(n, (k+63)/64)
		}
		if c.want > 0 {
			require.Less(t, int64(n)<<(c.want-1), int64(1)<<15, "key lengths %v: the lo field's bound", c.kLens)
			require.GreaterOrEqual(t, int64(n)<<c.want, int64(1)<<15, "key lengths %v: L could be larger", c.kLens)
		}
	}
}
