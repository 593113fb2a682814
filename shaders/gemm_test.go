package shaders

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// gemmLayouts are the layout variants of a tiling that package gemm
// generates: every case, access width, accumulation and aliasing.
func gemmLayouts(t GemmTiling) []GemmTiling {
	var out []GemmTiling
	for mask := range 1 << 7 {
		v := t
		v.TransA, v.TransB = mask&1 != 0, mask&2 != 0
		v.VecA, v.VecB, v.VecC = mask&4 != 0, mask&8 != 0, mask&16 != 0
		v.Accumulate = mask&32 != 0
		v.AliasA = mask&64 != 0 && v.VecA == v.VecC
		out = append(out, v)
	}
	return out
}

// TestGemmSources generates every named tiling in every layout and checks
// the generated constants and bindings.
func TestGemmSources(t *testing.T) {
	for _, base := range GemmTilings {
		require.NoError(t, base.Validate(), "%s", base)
		for _, tl := range gemmLayouts(base) {
			src, err := tl.Source()
			require.NoError(t, err, "%s", tl)
			require.Contains(t, src, fmt.Sprintf("@workgroup_size(%d)", tl.Threads()), "%s", tl)
			require.Contains(t, src, fmt.Sprintf("const LA: u32 = %du;", tl.BM*tl.BK/4/tl.Threads()), "%s", tl)
			require.NotContains(t, src, "@unroll", "%s: every marked loop unrolled", tl)
			require.NotContains(t, src, "SRC_", "%s: placeholders replaced", tl)
			require.Equal(t, !tl.AliasA, strings.Contains(src, "@binding(1)"), "%s: A's binding", tl)
			require.Equal(t, tl.Bindings()[0], uint32(0))
		}
	}
	for _, r := range []GemmReduce{{}, {VecPart: true}, {VecC: true, Accumulate: true}, {VecPart: true, VecC: true}} {
		src, err := r.Source()
		require.NoError(t, err, "%s", r)
		require.Contains(t, src, fmt.Sprintf("@workgroup_size(%d)", GemmReduceThreads))
	}
}

// TestGemmValidate pins the tilings the kernel refuses.
func TestGemmValidate(t *testing.T) {
	for _, c := range []struct {
		t   GemmTiling
		err string
	}{
		{GemmTiling{BM: 64, BN: 64, BK: 16, TM: 6, TN: 4}, "TM 6"},
		{GemmTiling{BM: 64, BN: 64, BK: 16, TM: 4, TN: 20}, "TN 20"},
		{GemmTiling{BM: 60, BN: 64, BK: 16, TM: 8, TN: 8}, "BM 60 and BN 64 must be multiples"},
		{GemmTiling{BM: 64, BN: 64, BK: 6, TM: 8, TN: 8}, "BK 6"},
		{GemmTiling{BM: 256, BN: 256, BK: 16, TM: 4, TN: 4}, "4096 invocations"},
		{GemmTiling{BM: 64, BN: 64, BK: 8, TM: 4, TN: 4}, "split the slabs' 128 and 128 vec4s evenly"},
		{GemmTiling{BM: 64, BN: 64, BK: 16, TM: 4, TN: 4, AliasA: true, VecA: true}, "C's access width"},
	} {
		require.ErrorContains(t, c.t.Validate(), c.err, "%+v", c.t)
	}
}

// TestChooseGemm checks the chooser against the adapters' limits and pins
// its picks: the large tile for every model shape, smaller tiles for thin
// matrices, the least padding for small ones.
func TestChooseGemm(t *testing.T) {
	dims := []int{1, 7, 64, 65, 100, 128, 200, 256, 384, 768, 1024, 2048, 16384, 65536}
	for _, lim := range []struct {
		name    string
		wg, inv int
	}{{"lavapipe", 32 << 10, 1024}, {"H100", 48 << 10, 1024}, {"small GPU", 16 << 10, 256}} {
		for _, m := range dims {
			for _, n := range dims {
				tl, err := ChooseGemm(m, n, lim.wg, lim.inv)
				require.NoError(t, err, "%s %dx%d", lim.name, m, n)
				require.NoError(t, tl.Validate())
				require.True(t, tl.Fits(lim.wg, lim.inv), "%s %dx%d: %s", lim.name, m, n, tl)
			}
		}
	}
	for _, c := range []struct {
		m, n int
		want GemmTiling
	}{
		{65536, 384, GemmLarge}, {16384, 128, GemmLarge}, {2048, 768, GemmLarge}, {4096, 4096, GemmLarge},
		{40, 4096, GemmWide}, {4096, 40, GemmTall}, {7, 13, GemmSmall}, {16384, 64, GemmTall}, {64, 192, GemmWide},
	} {
		got, err := ChooseGemm(c.m, c.n, 48<<10, 1024)
		require.NoError(t, err)
		require.Equal(t, c.want, got, "%dx%d", c.m, c.n)
	}
	// An adapter with 16 KiB and 256 invocations gets the 64x64 tiles.
	got, err := ChooseGemm(4096, 4096, 16<<10, 256)
	require.NoError(t, err)
	require.Equal(t, GemmSmall, got)
	_, err = ChooseGemm(64, 64, 4<<10, 256)
	require.ErrorContains(t, err, "no gemm tiling fits 4096 bytes")
}
