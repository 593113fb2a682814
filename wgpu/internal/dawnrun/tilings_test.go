//go:build linux && cgo

package dawnrun

import (
	"flag"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/attention/tc"
	"github.com/coreattn/coreattn/shaders"
)

var (
	cpuTilings = flag.Bool("tc.cpu-tilings", false, "run TestTilings on CPU adapters too (each tiling compiles for minutes on lavapipe)")
	sweepN     = flag.Int("tc.sweep", 4, "tilings per pass that TestTilings checks and BenchmarkTC measures: the chooser's first N of the preferred matrix shape and the first of every other shape (0: all)")
)

// sweep picks the tilings to check and measure from a chooser's list
// (ordered by shape preference, then by the chooser's order): the first n
// of the first shape and the first of each other shape; all for n <= 0.
func sweep[T any](all []T, shape func(T) shaders.MatrixShape, n int) []T {
	if n <= 0 {
		return all
	}
	var out []T
	seen := map[shaders.MatrixShape]int{}
	for i, t := range all {
		s := shape(t)
		limit := 1
		if s == shape(all[0]) {
			limit = n
		}
		if seen[s] < limit {
			out = append(out, all[i])
		}
		seen[s]++
	}
	return out
}

func fwdShape(t shaders.TCFwdTiling) shaders.MatrixShape { return t.Shape }
func bwdShape(t shaders.TCBwdTiling) shaders.MatrixShape { return t.Shape }

// TestTilings checks the swept forward and backward tilings (see
// -tc.sweep) of every matrix shape the adapter offers against the float64
// reference, at a moderate varlen causal GQA batch with robustness off, as
// BenchmarkTC runs them: on a GPU this is the check that goes with the
// benchmark. On CPU adapters it needs -tc.cpu-tilings.
func TestTilings(t *testing.T) {
	r, dev := matrixDevice(t, false)
	if dev.CPU && !*cpuTilings {
		t.Skip("CPU adapter: TestForward and TestBackward cover the chosen tilings; -tc.cpu-tilings runs these too")
	}
	lens := [][2]int{{300, 700}, {512, 512}, {129, 1000}, {0, 40}}
	for _, d := range []int{64, 128} {
		c := fwdCase{name: "moderate", lens: lens, hq: 8, hkv: 2, d: d, causal: true, dt: attention.Float16}
		a := c.args()
		in := newProblem(t, a, uint64(d), false)
		fwds, err := shaders.TCFwdTilings(d, a.DType, dev.Target)
		if !assert.NoError(t, err) {
			continue
		}
		for _, ft := range sweep(fwds, fwdShape, *sweepN) {
			t.Run("fwd "+ft.String(), func(t *testing.T) {
				errO, errLSE, tiling := in.forward(t, r, tc.New(dev, tc.Options{Forward: ft, SplitKV: -1}))
				t.Logf("%s: O %.2e, LSE %.2e", tiling, errO, errLSE)
				assert.LessOrEqual(t, errO, tolO)
				assert.LessOrEqual(t, errLSE, tolLSE)
			})
		}
		bwds, err := shaders.TCBwdTilings(d, a.DType, dev.Target)
		if !assert.NoError(t, err) {
			continue
		}
		for _, bt := range sweep(bwds, bwdShape, *sweepN) {
			t.Run("bwd "+bt.String(), func(t *testing.T) {
				errs, tiling := in.backward(t, r, tc.New(dev, tc.Options{Backward: bt}))
				t.Logf("%s: dQ %.2e, dK %.2e, dV %.2e", tiling, errs[0], errs[1], errs[2])
				for j, name := range []string{"dQ", "dK", "dV"} {
					assert.LessOrEqual(t, errs[j], tolGrad, name)
				}
			})
		}
	}
}

func TestSweep(t *testing.T) {
	a, b, c := shaders.MatrixShape{M: 16, N: 8, K: 16}, shaders.MatrixShape{M: 16, N: 16, K: 16}, shaders.MatrixShape{M: 16, N: 8, K: 8}
	all := []shaders.MatrixShape{a, a, a, b, b, c}
	id := func(s shaders.MatrixShape) shaders.MatrixShape { return s }
	assert.Equal(t, []shaders.MatrixShape{a, a, b, c}, sweep(all, id, 2))
	assert.Equal(t, all, sweep(all, id, 0))
}
