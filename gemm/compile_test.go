package gemm

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/shaders"
	"github.com/coreattn/coreattn/wgpu"
)

// TestChosenTilingsCompile compiles, on the test adapter, every tiling the
// chooser returns under lavapipe's, an H100's and a small GPU's limits (for the model's
// shapes and small ones), in the layouts the model uses (the three cases,
// 16-byte access, accumulating where the model does) and with 4-byte
// access, and the reduction's variants.
func TestChosenTilingsCompile(t *testing.T) {
	dev, err := wgpu.OpenBest(wgpu.Options{})
	require.NoError(t, err)
	defer dev.Close()
	lim := dev.Limits()
	seen := map[shaders.GemmTiling]bool{}
	for _, p := range []struct{ wg, inv int }{{32 << 10, 1024}, {48 << 10, 1024}, {16 << 10, 256}} {
		for _, m := range []int{1, 40, 128, 384, 2048, 16384, 65536} {
			for _, n := range []int{1, 40, 128, 256, 384, 768, 1024, 2048} {
				tl, err := shaders.ChooseGemm(m, n, p.wg, p.inv)
				require.NoError(t, err)
				seen[tl] = true
			}
		}
	}
	for base := range seen {
		require.True(t, base.Fits(int(lim.MaxWorkgroupStorageSize), int(lim.MaxInvocationsPerWorkgroup)), "%s does not fit the test adapter", base.Shape())
		for _, v := range []struct{ ta, tb, acc, vec bool }{
			{false, true, false, true}, {false, false, true, true}, {true, false, true, true}, {true, false, true, false},
		} {
			tl := base
			tl.TransA, tl.TransB, tl.Accumulate = v.ta, v.tb, v.acc
			tl.VecA, tl.VecB, tl.VecC = v.vec, v.vec, v.vec
			src, err := tl.Source()
			require.NoError(t, err)
			_, err = dev.Pipeline("gemm "+tl.String(), src, "main")
			require.NoError(t, err, "%s", tl)
		}
	}
	for _, r := range []shaders.GemmReduce{{}, {VecPart: true, VecC: true, Accumulate: true}} {
		src, err := r.Source()
		require.NoError(t, err)
		_, err = dev.Pipeline("gemm "+r.String(), src, "main")
		require.NoError(t, err, "%s", r)
	}
	t.Logf("%d tilings", len(seen))
}
