package gemm

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/shaders"
)

// tolHalf bounds the relative error of the subgroup-matrix engine, whose
// operands are rounded to f16 (unit roundoff 2⁻¹¹ = 4.9·10⁻⁴): each
// product carries the two roundings, ~4·10⁻⁴ rms relative, and a sum of
// random terms keeps that relative error; 1e-3 leaves a margin of 2.5.
const tolHalf = 1e-3

// emulatedMMA is a small subgroup-matrix tiling in its plain-WGSL
// emulation: 4×4×4 fragments, subgroups of 4, four subgroups of 2×2
// fragments on a 16×16 tile, K steps of two slices; rolled, since
// lavapipe's compiler takes minutes over the unrolled emulation.
var emulatedMMA = shaders.GemmTiling{BM: 16, BN: 16, BK: 8, Rolled: true, MMA: shaders.GemmMMA{M: 4, N: 4, K: 4, Subgroup: 4, FM: 2, FN: 2, Emulated: true}}

// TestSubgroupMatrixEmulated runs the subgroup-matrix kernel with its
// builtins emulated: its f16 staging, fragment offsets (row- and
// column-major loads in every case), edges, Accumulate, split-K and
// epilogue against the float64 reference, on any adapter.
func TestSubgroupMatrixEmulated(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, split := range []int{1, 3} {
		op := testOp(t, Options{Tiling: emulatedMMA, Split: split})
		for _, tr := range cases {
			for _, p := range []product{
				{m: 37, n: 45, k: 70, acc: true},
				{m: 64, n: 32, k: 64},
				{m: 9, n: 11, k: 40, pad: 1, off: 3},
			} {
				p.ta, p.tb, p.tol = tr[0], tr[1], tolHalf
				t.Run(p.String(), func(t *testing.T) {
					tiling := check(t, op, rng, p)
					require.Contains(t, tiling, "mma4x4x4")
				})
			}
		}
	}
}
