package shaders

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestChooseGemmMMA pins the subgroup-matrix chooser: the H100's
// configurations give GemmTensor, others their own fragment counts, short
// memory shorter K steps, no configuration no tiling.
func TestChooseGemmMMA(t *testing.T) {
	h100 := []MMAConfig{{16, 16, 16}, {16, 8, 16}, {16, 8, 8}}
	got, ok := ChooseGemmMMA(h100, 32, 48<<10, 1024)
	require.True(t, ok)
	require.Equal(t, GemmTensor, got)
	require.Equal(t, 256, got.Threads())
	require.Equal(t, 48<<10, got.WorkgroupBytes())

	got, ok = ChooseGemmMMA([]MMAConfig{{16, 8, 8}}, 32, 48<<10, 1024)
	require.True(t, ok)
	require.Equal(t, GemmMMA{M: 16, N: 8, K: 8, Subgroup: 32, FM: 4, FN: 4}, got.MMA)
	require.Equal(t, 32, got.BK)

	got, ok = ChooseGemmMMA(h100, 32, 32<<10, 1024)
	require.True(t, ok)
	require.Equal(t, 16, got.BK)
	require.LessOrEqual(t, got.WorkgroupBytes(), 32<<10)

	got, ok = ChooseGemmMMA([]MMAConfig{{8, 8, 8}}, 8, 32<<10, 1024) // Mesa 26's lavapipe
	require.True(t, ok)
	require.NoError(t, got.Validate())

	_, ok = ChooseGemmMMA(nil, 32, 48<<10, 1024)
	require.False(t, ok)
	_, ok = ChooseGemmMMA(h100, 32, 8<<10, 1024)
	require.False(t, ok)
}

// TestGemmMMAValidate pins the subgroup-matrix tilings the kernel refuses.
func TestGemmMMAValidate(t *testing.T) {
	mma := GemmMMA{M: 16, N: 16, K: 16, Subgroup: 32, FM: 4, FN: 2}
	for _, c := range []struct {
		t   GemmTiling
		err string
	}{
		{GemmTiling{BM: 128, BN: 128, BK: 32, MMA: GemmMMA{M: 16, N: 6, K: 16, Subgroup: 32, FM: 4, FN: 2}}, "configuration 16x6x16"},
		{GemmTiling{BM: 128, BN: 128, BK: 32, MMA: GemmMMA{M: 16, N: 16, K: 16, Subgroup: 24, FM: 4, FN: 2}}, "subgroup size 24"},
		{GemmTiling{BM: 128, BN: 128, BK: 32, TM: 8, MMA: mma}, "TM, TN and WX belong to the FMA engine"},
		{GemmTiling{BM: 96, BN: 128, BK: 32, MMA: mma}, "BM 96 and BN 128 must be multiples of FM*M 64"},
		{GemmTiling{BM: 128, BN: 128, BK: 24, MMA: mma}, "BK 24 must be a multiple of the configuration's K 16"},
		{GemmTiling{BM: 128, BN: 128, BK: 32, MMA: GemmMMA{M: 16, N: 16, K: 16, Subgroup: 128, FM: 1, FN: 1}}, "8192 invocations"},
	} {
		require.ErrorContains(t, c.t.Validate(), c.err, "%+v", c.t)
	}
}

// TestGemmMMASources generates the subgroup-matrix kernel in every layout
// (hardware and emulated builtins) and, where Dawn's WGSL compiler tint
// is on PATH, has it validate the hardware ones (tint checks the
// chromium_experimental_subgroup_matrix builtins without a GPU). The
// emulated ones run in package gemm's tests.
func TestGemmMMASources(t *testing.T) {
	tint, err := exec.LookPath("tint")
	if err != nil {
		t.Log("tint is not on PATH: the subgroup-matrix sources are generated but not validated")
	}
	dir := t.TempDir()
	bases := []GemmTiling{GemmTensor}
	if x, ok := ChooseGemmMMA([]MMAConfig{{16, 8, 8}}, 32, 32<<10, 1024); ok {
		bases = append(bases, x)
	}
	for _, base := range bases {
		for _, emulated := range []bool{false, true} {
			base.MMA.Emulated = emulated
			for i, tl := range gemmLayouts(base) {
				src, err := tl.Source()
				require.NoError(t, err, "%s", tl)
				require.NotContains(t, src, "MAJ_", "%s", tl)
				require.Equal(t, !emulated, strings.Contains(src, "enable chromium_experimental_subgroup_matrix;"), "%s", tl)
				if emulated || tint == "" || i%5 != 0 { // every fifth layout keeps the test short
					continue
				}
				path := filepath.Join(dir, "gemm.wgsl")
				require.NoError(t, os.WriteFile(path, []byte(src), 0o644))
				out, err := exec.Command(tint, path, "--format", "wgsl", "-o", os.DevNull).CombinedOutput()
				require.NoError(t, err, "%s: tint:\n%s", tl, out)
			}
		}
	}
}
