package shaders

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The targets the tensor-core kernels are built for: Mesa lavapipe (26.x,
// VK_KHR_cooperative_matrix on the CPU) and NVIDIA H100/H200 through Dawn,
// with each shape the H100 offers alone.
var (
	tcLavapipe = TCTarget{Shapes: []MatrixShape{{8, 8, 8}}, SubgroupSize: 8, WorkgroupBytes: 32 << 10, MaxThreads: 1024, CPU: true}
	tcH100     = TCTarget{Shapes: []MatrixShape{{16, 16, 16}, {16, 8, 16}, {16, 8, 8}}, SubgroupSize: 32, WorkgroupBytes: 48 << 10, MaxThreads: 1024, MaxRegisters: TCRegisterBudget}
)

// TCTargets lists the targets by name, for the tests of other packages
// that compile every chosen tiling.
func tcTargets() map[string]TCTarget {
	m := map[string]TCTarget{"lavapipe 8x8x8": tcLavapipe, "H100": tcH100}
	for _, s := range tcH100.Shapes {
		t := tcH100
		t.Shapes = []MatrixShape{s}
		m["H100 "+s.String()] = t
	}
	return m
}

func TestTCFwdChooser(t *testing.T) {
	for name, tg := range tcTargets() {
		for _, d := range []int{8, 16, 32, 64, 72, 96, 128, 256} {
			for _, out := range []DType{Float16, Float32} {
				all, err := TCFwdTilings(d, out, tg)
				if d == 256 && err != nil {
					continue // may not fit: the FFMA kernels take it
				}
				require.NoError(t, err, "%s D%d", name, d)
				for _, tl := range all {
					require.NoError(t, tl.Validate())
					assert.LessOrEqual(t, tl.WorkgroupBytes(), tg.WorkgroupBytes, "%s", tl)
					assert.LessOrEqual(t, tl.Threads(), tg.MaxThreads, "%s", tl)
					assert.Equal(t, tg.SubgroupSize, tl.SG)
					assert.Equal(t, out, tl.Out)
					src, err := tl.Source()
					require.NoError(t, err, "%s", tl)
					assert.Equal(t, tg.CPU, tl.Rolled, "%s: CPU targets keep their loops", tl)
					if !tl.Rolled {
						assert.NotContains(t, src, "@unroll", "%s: every marked loop is expanded", tl)
					}
					assert.Contains(t, src, fmt.Sprintf("@workgroup_size(%d)", tl.Threads()))
					dumpWGSL(t, tl.String(), src)
				}
				first, err := ChooseTCFwd(d, out, tg)
				require.NoError(t, err)
				assert.Equal(t, all[0], first)
			}
		}
	}
	// The H100 (measured) prefers 16x8x16: at D 128 eight subgroups of 16
	// rows with 32-key tiles, at D 64 four.
	tl, err := ChooseTCFwd(128, Float16, tcH100)
	require.NoError(t, err)
	assert.Equal(t, TCFwdTiling{D: 128, Shape: MatrixShape{16, 8, 16}, SG: 32, NS: 8, MT: 1, BC: 32, Out: Float16}, tl)
	assert.Equal(t, 128, tl.BR())
	tl, err = ChooseTCFwd(64, Float16, tcH100)
	require.NoError(t, err)
	assert.Equal(t, TCFwdTiling{D: 64, Shape: MatrixShape{16, 8, 16}, SG: 32, NS: 4, MT: 1, BC: 32, Out: Float16}, tl)
	tl, err = ChooseTCFwd(64, Float32, tcLavapipe)
	require.NoError(t, err)
	assert.Equal(t, MatrixShape{8, 8, 8}, tl.Shape)
	assert.True(t, tl.Rolled)
}

func TestTCFwdRejects(t *testing.T) {
	_, err := ChooseTCFwd(128, Float16, TCTarget{Shapes: []MatrixShape{{8, 8, 8}}, SubgroupSize: 6, WorkgroupBytes: 32 << 10, MaxThreads: 1024})
	assert.ErrorIs(t, err, ErrNoTensorCores)
	_, err = ChooseTCFwd(128, Float16, TCTarget{SubgroupSize: 32, WorkgroupBytes: 48 << 10, MaxThreads: 1024})
	assert.ErrorIs(t, err, ErrNoTensorCores)
	_, err = ChooseTCFwd(60, Float16, tcH100)
	assert.ErrorIs(t, err, ErrNoTensorCores)
	_, err = ChooseTCFwd(64, BFloat16, tcH100)
	assert.ErrorIs(t, err, ErrNoTensorCores)
	_, err = ChooseTCFwd(128, Float16, TCTarget{Shapes: []MatrixShape{{16, 8, 16}}, SubgroupSize: 32, WorkgroupBytes: 4 << 10, MaxThreads: 1024})
	assert.ErrorIs(t, err, ErrNoTensorCores)
	bad := TCFwdTiling{D: 64, Shape: MatrixShape{16, 8, 16}, SG: 32, NS: 4, MT: 3, BC: 32, Out: Float16}
	assert.Error(t, bad.Validate())
	_, err = bad.Source()
	assert.Error(t, err)
}

// dumpWGSL writes src to $COREATTN_DUMP_WGSL/<name>.wgsl when that is set,
// for compiling by hand.
func dumpWGSL(t *testing.T, name, src string) {
	dir := os.Getenv("COREATTN_DUMP_WGSL")
	if dir == "" {
		return
	}
	name = strings.NewReplacer(" ", "_", "/", "_").Replace(name)
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".wgsl"), []byte(src), 0o644))
}

func TestTCBwdChooser(t *testing.T) {
	for name, tg := range tcTargets() {
		for _, d := range []int{16, 32, 64, 96, 128} {
			for _, dt := range []DType{Float16, Float32} {
				all, err := TCBwdTilings(d, dt, tg)
				require.NoError(t, err, "%s D%d", name, d)
				for _, tl := range all {
					require.NoError(t, tl.Validate())
					assert.LessOrEqual(t, tl.WorkgroupBytes(), tg.WorkgroupBytes, "%s", tl)
					assert.LessOrEqual(t, tl.Threads(), tg.MaxThreads, "%s", tl)
					src, err := tl.Source()
					require.NoError(t, err, "%s", tl)
					assert.Equal(t, tg.CPU, tl.Rolled, "%s", tl)
					if !tl.Rolled {
						assert.NotContains(t, src, "@unroll", "%s", tl)
					}
					dumpWGSL(t, tl.String(), src)
				}
			}
		}
	}
	// The H100 (measured): 16x16x16 with four pairs at D 128, 16x8x16 with
	// two pairs and 16-query steps at D 64.
	tl, err := ChooseTCBwd(128, Float16, tcH100)
	require.NoError(t, err)
	assert.Equal(t, TCBwdTiling{D: 128, Shape: MatrixShape{16, 16, 16}, SG: 32, NP: 4, BQ: 32, NQS: 4, DT: Float16}, tl)
	assert.Equal(t, 64, tl.BKV())
	tl, err = ChooseTCBwd(64, Float16, tcH100)
	require.NoError(t, err)
	assert.Equal(t, TCBwdTiling{D: 64, Shape: MatrixShape{16, 8, 16}, SG: 32, NP: 2, BQ: 16, NQS: 4, DT: Float16}, tl)
	_, err = ChooseTCBwd(128, BFloat16, tcH100)
	assert.ErrorIs(t, err, ErrNoTensorCores)
}

// TestTCLaneMaps replays, for every chosen tiling, the lane-to-element maps
// the kernels use (which lavapipe's subgroups of 8 with 8-row blocks
// exercise only partly): the softmax's lanes cover each row and column of a
// subgroup's tile exactly once, and dkv_main's element-wise lanes cover the
// pair's tile once, in pairs of neighbouring keys of one query.
func TestTCLaneMaps(t *testing.T) {
	for name, tg := range tcTargets() {
		for _, d := range []int{64, 128} {
			fwds, err := TCFwdTilings(d, Float16, tg)
			require.NoError(t, err)
			for _, tl := range fwds {
				ll := lanes(tl.SG, tl.RS())
				seen := make([]int, tl.RS()*tl.BC)
				for lane := range tl.SG {
					for i := range ll.rpl {
						r := lane/ll.lpr + i*(tl.SG/ll.lpr)
						for c := range tl.BC / ll.lpr {
							seen[r*tl.BC+c*ll.lpr+lane%ll.lpr]++
						}
					}
				}
				for e, n := range seen {
					require.Equal(t, 1, n, "%s %s: element %d", name, tl, e)
				}
			}
			bwds, err := TCBwdTilings(d, Float16, tg)
			require.NoError(t, err)
			for _, tl := range bwds {
				m, epl := tl.Shape.M, tl.elemsPerLane()
				seen := make([]int, m*tl.BQ)
				for pl := range 2 * tl.SG {
					for j := range epl / 2 {
						e := pl*epl + 2*j
						c, r := e/m, e%m
						require.Less(t, r+1, m, "%s: a pair of elements stays in one query", tl)
						seen[(r)*tl.BQ+c]++
						seen[(r+1)*tl.BQ+c]++
					}
				}
				for e, n := range seen {
					require.Equal(t, 1, n, "%s %s: element %d", name, tl, e)
				}
			}
		}
	}
}
