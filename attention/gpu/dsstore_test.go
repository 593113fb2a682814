package gpu

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/coreattn/coreattn/attention"

	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/shaders"
	"github.com/coreattn/coreattn/wgpu"
)

// TestBackwardStoredPasses runs DQStored with scratch caps that split the
// KV heads into several passes (evenly where they divide, a short last pass
// where they do not) and with one too small for a single KV head, which is
// an error naming the sizes rather than a fallback.
func TestBackwardStoredPasses(t *testing.T) {
	dev := testOp(t).Device()
	const tile = 64 * 16 * 16 // a 64 x 64 dS tile, f32
	for i, tt := range []struct {
		c       gpuCase
		scratch int64
		passes  string // in the call's Tiling
		err     string
	}{
		// Segments of 70 and 33 rows: 3 + 1 tiles per query head.
		{c: gpuCases[6], scratch: 4*4*tile + 100, passes: "(2 passes of 1 KV heads"},                 // GQA 4: 8 query heads, 2 KV heads
		{c: gpuCases[4], scratch: 2*4*tile + 100, passes: "(2 passes of 2 KV heads"},                 // 3 KV heads: 2 + 1
		{c: gpuCases[4], scratch: 3 * 4 * tile, passes: "(1 passes of 3 KV heads"},                   // all at once
		{c: gpuCases[3], scratch: 4 * tile, err: "the dS tiles of one KV head need 917504 bytes"},    // CA-task shards: 14 tiles for each of 4 query heads
		{c: gpuCases[16], scratch: 16 * tile, passes: "(1 passes of 1 KV heads, 16384 bytes of dS)"}, // non-causal, a segment without keys: one tile
	} {
		t.Run(fmt.Sprintf("%s/%d", tt.c.name, tt.scratch), func(t *testing.T) {
			in := newBwdInputs(t, tt.c, uint64(700+i))
			bt := in.tensors(t, dev)
			call := prepareBwd(t, NewWithOptions(dev, Options{DQ: DQStored, DSScratch: tt.scratch}), in, bt, tt.err)
			if call == nil {
				return
			}
			require.Contains(t, call.Tiling, tt.passes)
			for range 2 { // a prepared launch runs again with the same scratch
				in.runCheck(t, dev, call, bt)
			}
		})
	}
}

// TestBackwardStoredTilings runs DQStored with forced square tilings of 32
// rows, whose dQ kernel stages key chunks of half a tile (as the H200's
// chunks of 32 in tiles of 64 do), and rejects a chunk that leaves pt no
// room for the next one.
func TestBackwardStoredTilings(t *testing.T) {
	dev := testOp(t).Device()
	kv := shaders.BwdTiling{TX: 8, TY: 8, KC: 16, VC: 16}
	for i, tt := range []struct {
		dq  shaders.BwdTiling
		c   gpuCase
		err string
	}{
		{dq: shaders.BwdTiling{TX: 8, TY: 8, KC: 16, VC: 16}, c: gpuCases[3]},
		{dq: shaders.BwdTiling{TX: 8, TY: 8, KC: 16, VC: 16}, c: gpuCases[13]},
		{dq: shaders.BwdTiling{TX: 8, TY: 8, KC: 8, VC: 8}, c: gpuCases[15]},
		{dq: shaders.BwdTiling{TX: 8, TY: 8, KC: 16, VC: 32}, c: gpuCases[3], err: "VC = 32 must be at most half its BC = 32"},
		{dq: shaders.BwdTiling{TX: 16, TY: 16, KC: 16, VC: 16}, c: gpuCases[3], err: "square and of one size"},
	} {
		t.Run(fmt.Sprintf("%s/VC%d", tt.c.name, tt.dq.VC), func(t *testing.T) {
			in := newBwdInputs(t, tt.c, uint64(720+i))
			bt := in.tensors(t, dev)
			call := prepareBwd(t, NewWithOptions(dev, Options{DQ: DQStored, BackwardDQ: tt.dq, BackwardDKV: kv}), in, bt, tt.err)
			if call == nil {
				return
			}
			require.Contains(t, call.Tiling, "stored-ds")
			in.runCheck(t, dev, call, bt)
		})
	}
}

// TestStoredDQSameBits checks that the stored path's gradients do not
// depend on how the KV heads are split into passes: every dQ element sums
// the same dS K terms in the same order, and dK and dV come from the same
// kernel, so one pass and one head per pass give the same bits.
func TestStoredDQSameBits(t *testing.T) {
	dev := testOp(t).Device()
	c := gpuCase{qLens: []int{300, 40, 130}, kLens: []int{300, 200, 130}, hq: 4, hkv: 2, d: 64, causal: true}
	in := newBwdInputs(t, c, 12)
	var first [3][]uint32
	var bytes int64 // of the first call's one pass
	for i := range 2 {
		opts := Options{DQ: DQStored}
		if i == 1 {
			opts.DSScratch = bytes / int64(c.hkv) // one KV head's tiles: two passes
		}
		bt := in.tensors(t, dev)
		call := prepareBwd(t, NewWithOptions(dev, opts), in, bt, "")
		tiling := call.Tiling[strings.Index(call.Tiling, "("):]
		var passes, heads int
		_, err := fmt.Sscanf(tiling, "(%d passes of %d KV heads, %d bytes of dS)", &passes, &heads, &bytes)
		require.NoError(t, err, tiling)
		require.Equal(t, i+1, passes, tiling)
		in.runCheck(t, dev, call, bt)
		got := [3][]uint32{math32bits(download(t, bt.DQ, in.qElems)), math32bits(download(t, bt.DK, in.kvElems)), math32bits(download(t, bt.DV, in.kvElems))}
		if i == 0 {
			first = got
			continue
		}
		require.Equal(t, first, got, "one head per pass against one pass")
	}
}

// prepareBwd prepares op's backward of in on tensors bt, released when the
// test ends; with wantErr it checks that preparing fails so and returns nil.
func prepareBwd(t *testing.T, op *Op, in bwdInputs, bt BackwardTensors, wantErr string) *Call {
	t.Helper()
	call, err := op.PrepareBackward(in.a, bt)
	if wantErr != "" {
		require.ErrorContains(t, err, wantErr)
		return nil
	}
	require.NoError(t, err)
	t.Cleanup(call.Release)
	return call
}

// runCheck runs a prepared backward and checks its gradients.
func (in bwdInputs) runCheck(t *testing.T, dev *wgpu.Device, call *Call, bt BackwardTensors) {
	t.Helper()
	_, err := dev.Run(context.Background(), call.Dispatches()...)
	require.NoError(t, err)
	in.check(t, bt)
}

// TestPreferStored pins DQAuto's choice: stored dS on GPUs in at most
// maxAutoPasses passes, the fused dQ otherwise.
func TestPreferStored(t *testing.T) {
	for _, tt := range []struct {
		cpu    bool
		passes int
		want   bool
	}{
		{passes: 1, want: true},
		{passes: maxAutoPasses, want: true},
		{passes: maxAutoPasses + 1},
		{cpu: true, passes: 1},
	} {
		require.Equal(t, tt.want, preferStored(tt.cpu, tt.passes), "%+v", tt)
	}
}

// TestAutoKeepsFusedOnCPU checks what DQAuto runs on this adapter at D 128:
// the fused dQ on a CPU adapter, stored dS on a GPU.
func TestAutoKeepsFusedOnCPU(t *testing.T) {
	op := testOp(t)
	in := newBwdInputs(t, gpuCases[13], 710)
	call, err := op.PrepareBackward(in.a, in.tensors(t, op.Device()))
	require.NoError(t, err)
	defer call.Release()
	cpu := op.Device().Info().IsCPU()
	require.Equal(t, cpu, strings.Contains(call.Tiling, "fused-dq"), call.Tiling)
	require.Equal(t, !cpu, strings.Contains(call.Tiling, "stored-ds"), call.Tiling)
}

// TestWideKSameBits checks the dQ kernel that reads K from an f32 copy
// (shaders.BwdTiling.WideK), written by the dK/dV kernel or by the widen
// pass, against the one that widens half K as it stages it: all three
// multiply the same f32 values in the same order, so dQ, dK and dV are the
// same bits, and within 1e-2 of the float64 reference. Each variant must
// run the passes it names.
func TestWideKSameBits(t *testing.T) {
	dev := testOp(t).Device()
	lim := dev.Limits()
	for _, dt := range []attention.DType{attention.Float16, attention.BFloat16} {
		for i, c := range []gpuCase{gpuCases[13], gpuCases[11]} {
			t.Run(dt.String()+"/"+c.name, func(t *testing.T) {
				in := newBwdInputs(t, c, uint64(900+i))
				a := *in.a
				a.DType = dt
				var first [3][]uint32
				for j, v := range []struct {
					name           string
					dqWide, kvWide bool
				}{{"copied by dK/dV", true, true}, {"widen pass", true, false}, {"half K", false, false}} {
					dqT, err := shaders.ChooseDQStored(c.d, dt, int(lim.MaxWorkgroupStorageSize), int(lim.MaxInvocationsPerWorkgroup))
					require.NoError(t, err)
					kvT, err := shaders.ChooseBwd(shaders.BwdDKV, c.d, dt, int(lim.MaxWorkgroupStorageSize), int(lim.MaxInvocationsPerWorkgroup))
					require.NoError(t, err)
					dqT.WideK, kvT.WideK = v.dqWide, v.kvWide
					op := NewWithOptions(dev, Options{DQ: DQStored, BackwardDQ: dqT, BackwardDKV: kvT})
					bt := halfTensors(t, op, &a, in)
					call, err := op.PrepareBackward(&a, bt)
					require.NoError(t, err)
					t.Cleanup(call.Release)
					var widen bool
					for _, d := range call.Dispatches() {
						widen = widen || d.Label == "attn_bwd widen k"
					}
					require.Equal(t, v.dqWide && !v.kvWide, widen, "%s: %s", v.name, call.Tiling)
					dqName, kvName, _ := strings.Cut(call.Tiling, "; ")
					require.Equal(t, v.dqWide, strings.Contains(dqName, " widek"), "%s: %s", v.name, call.Tiling)
					require.Equal(t, v.kvWide, strings.Contains(kvName, " widek"), "%s: %s", v.name, call.Tiling)
					_, err = dev.Run(context.Background(), call.Dispatches()...)
					require.NoError(t, err)
					var got [3][]uint32
					for k, x := range []struct {
						b *wgpu.Buffer
						n int
					}{{bt.DQ, in.qElems}, {bt.DK, in.kvElems}, {bt.DV, in.kvElems}} {
						h, err := Download(context.Background(), x.b, dt, x.n)
						require.NoError(t, err)
						require.LessOrEqual(t, attention.RelError(h, [][]float64{in.wantDQ, in.wantDK, in.wantDV}[k]), 1e-2, "%s: gradient %d", v.name, k)
						got[k] = math32bits(h)
					}
					if j == 0 {
						first = got
						continue
					}
					require.Equal(t, first, got, "%s against the copy written by dK/dV", v.name)
				}
			})
		}
	}
}

// TestDKVWritesWideK pins who writes the dQ kernel's f32 K: the dK/dV
// kernel that stores dS, where an eleventh storage buffer is allowed, else
// the widen pass; nobody where the dQ kernel reads half K.
func TestDKVWritesWideK(t *testing.T) {
	wide := shaders.BwdTiling{Kernel: shaders.BwdDQ, D: 128, TX: 16, TY: 16, KC: 16, VC: 32, DType: attention.Float16, WideK: true}
	half := wide
	half.WideK = false
	stored := shaders.BwdTiling{Kernel: shaders.BwdDKV, D: 128, TX: 16, TY: 16, KC: 32, VC: 16, DType: attention.Float16, StoredDS: true}
	fused := stored
	fused.StoredDS, fused.FusedDQ = false, true
	for _, tt := range []struct {
		name       string
		kvT, dqT   shaders.BwdTiling
		maxStorage uint32
		want       bool
	}{
		{"stored, 11 buffers", stored, wide, 11, true},
		{"stored, 16 buffers", stored, wide, 16, true},
		{"stored, 10 buffers", stored, wide, 10, false},
		{"dQ reads half K", stored, half, 16, false},
		{"fused dQ", fused, wide, 16, false},
	} {
		require.Equal(t, tt.want, dkvWritesWideK(tt.kvT, tt.dqT, tt.maxStorage), tt.name)
	}
}

// halfTensors uploads in's inputs in a's storage type and makes poisoned
// gradients of that type, released when the test ends.
func halfTensors(t *testing.T, op *Op, a *attention.Args, in bwdInputs) BackwardTensors {
	t.Helper()
	dev, dt := op.Device(), a.DType
	return BackwardTensors{
		Q: uploadAs(t, dev, "q", dt, in.q), K: uploadAs(t, dev, "k", dt, in.k), V: uploadAs(t, dev, "v", dt, in.v),
		O: uploadAs(t, dev, "o", dt, in.o), DO: uploadAs(t, dev, "do", dt, in.do), LSE: uploadAs(t, dev, "lse", attention.Float32, in.lse),
		DQ: uploadAs(t, dev, "dq", dt, nanSlice(in.qElems)), DK: uploadAs(t, dev, "dk", dt, nanSlice(in.kvElems)), DV: uploadAs(t, dev, "dv", dt, nanSlice(in.kvElems)),
	}
}
