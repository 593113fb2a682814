package shaders

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestStoredDSTiling checks which tilings can store dS (the dK/dV kernel,
// square, not fused) and that only those generate the stores and the
// aligned query steps.
func TestStoredDSTiling(t *testing.T) {
	sq := BwdTiling{Kernel: BwdDKV, D: 128, TX: 16, TY: 16, KC: 32, VC: 32, StoredDS: true}
	for _, tt := range []struct {
		name string
		edit func(*BwdTiling)
		err  string
	}{
		{name: "square dK/dV", edit: func(*BwdTiling) {}},
		{name: "halves", edit: func(t *BwdTiling) { t.DType = BFloat16 }},
		{name: "dQ kernel", edit: func(t *BwdTiling) { t.Kernel = BwdDQ }, err: "only the dK/dV kernel"},
		{name: "fused too", edit: func(t *BwdTiling) { t.FusedDQ = true }, err: "without fused dQ"},
		{name: "not square", edit: func(t *BwdTiling) { t.TY = 8 }, err: "BR = BC (here 32 and 64)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tl := sq
			tt.edit(&tl)
			err := tl.Validate()
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			for _, stored := range []bool{true, false} {
				tl.StoredDS = stored
				src, err := tl.Source()
				require.NoError(t, err)
				require.Equal(t, stored, strings.Contains(src, "ds_out[ds_at("), "the dS stores")
				require.Contains(t, src, "const STORED_DS: u32 = "+map[bool]string{true: "1u", false: "0u"}[stored])
			}
		})
	}
}

// TestChooseDQStored pins the stored-dS dQ kernel's key chunk: the largest
// whose two stage buffers fit beside pt (32 at D <= 128 in 48 KiB), always at
// most half a square tile.
func TestChooseDQStored(t *testing.T) {
	for _, tt := range []struct {
		d, wgBytes, vc, br int
	}{
		{d: 128, wgBytes: 48 << 10, vc: 32, br: 64},
		{d: 64, wgBytes: 48 << 10, vc: 32, br: 64},
		{d: 256, wgBytes: 48 << 10, vc: 16, br: 64},
		{d: 128, wgBytes: 32 << 10, vc: 16, br: 64},
		{d: 128, wgBytes: 16 << 10, vc: 8, br: 32},
	} {
		for _, dt := range DTypes {
			tl, err := ChooseDQStored(tt.d, dt, tt.wgBytes, 1024)
			require.NoError(t, err)
			require.Equal(t, [3]int{tt.vc, tt.br, tt.br}, [3]int{tl.VC, tl.BR(), tl.BC()}, "D%d %d bytes %s: %s", tt.d, tt.wgBytes, dt, tl)
			require.LessOrEqual(t, 2*tl.VC, tl.BC())
			require.Equal(t, tt.d > 64 && dt != Float32, tl.WidensK(), "WideK at D%d %s", tt.d, dt)
		}
	}
}

// TestWideKSource checks the stored-dS dQ module of a WideK tiling: it reads
// its operands as f32 (one vec4 a load) and writes dQ in the storage type,
// while the tiling's other modules read the stored type; only the BwdDQ
// kernel of half storage widens K; a WideK dK/dV kernel writes the copy
// only when it stores dS, reading the stored type.
func TestWideKSource(t *testing.T) {
	has := func(src, s string) bool { return strings.Contains(src, s) }
	for _, dt := range DTypes {
		tl := BwdTiling{Kernel: BwdDQ, D: 128, TX: 16, TY: 16, KC: 16, VC: 32, DType: dt, WideK: true}
		src, err := tl.Module(DQStoredEntry)
		require.NoError(t, err)
		wantOV := map[DType]string{Float32: "vec4<f32>", Float16: "vec2<u32>", BFloat16: "vec2<u32>"}[dt]
		require.True(t, has(src, "alias IOV = vec4<f32>;"), dt)
		require.True(t, has(src, "alias OV = "+wantOV+";"), dt)
		require.True(t, has(src, "const LOAD_VEC4S: u32 = 1u;"), dt)
		require.Equal(t, dt != Float32, strings.Contains(tl.String(), " widek"), tl.String())
		for _, e := range []BwdEntry{DQEntry, DeltaEntry, BoundEntry} {
			src, err = tl.Module(e)
			require.NoError(t, err)
			require.True(t, has(src, "alias IOV = "+wantOV+";"), "%s %s reads the stored type", dt, e)
		}

		tl.WideK = false
		src, err = tl.Module(DQStoredEntry)
		require.NoError(t, err)
		require.True(t, has(src, "alias IOV = "+wantOV+";"), dt)
		require.NotContains(t, tl.String(), "widek")

		tl.Kernel, tl.WideK = BwdDKV, true
		require.False(t, tl.WidensK(), "the dK/dV kernel never widens K")
		require.False(t, tl.WritesWideK(), "the dK/dV kernel writes the copy only when it stores dS")
		tl.StoredDS = true
		require.Equal(t, dt != Float32, tl.WritesWideK(), dt)
		src, err = tl.Source()
		require.NoError(t, err)
		require.True(t, has(src, fmt.Sprintf("const WRITES_WIDE_K: u32 = %du;", boolInt(dt != Float32))), dt)
		require.True(t, has(src, "alias IOV = "+wantOV+";"), "the dK/dV kernel reads the stored type")
		require.Equal(t, dt != Float32, strings.Contains(tl.String(), " widek"), tl.String())
	}
}

// TestModuleEntries checks which tile shape each backward kernel takes and
// that each module holds its entry point and no other.
func TestModuleEntries(t *testing.T) {
	dq := BwdTiling{Kernel: BwdDQ, D: 64, TX: 8, TY: 8, KC: 16, VC: 16}
	dkv := dq
	dkv.Kernel = BwdDKV
	for _, e := range BwdEntries {
		for _, tl := range []BwdTiling{dq, dkv} {
			src, err := tl.Module(e)
			wantErr := (e == DQEntry || e == DQStoredEntry) && tl.Kernel != BwdDQ || e == DKVEntry && tl.Kernel != BwdDKV
			if wantErr {
				require.ErrorContains(t, err, "needs a", "%s with %s", e, tl)
				continue
			}
			require.NoError(t, err, "%s with %s", e, tl)
			for _, other := range BwdEntries {
				require.Equal(t, other == e, strings.Contains(src, "fn "+other.Name()+"("), "module of %s: entry %s", e, other)
			}
		}
	}
	_, err := dq.Module(BwdEntry(42))
	require.ErrorContains(t, err, "does not exist")
}
