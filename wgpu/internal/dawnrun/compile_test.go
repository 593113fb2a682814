//go:build linux && cgo

package dawnrun

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/shaders"
)

// compileTargets are the adapters the tensor-core kernels are built for:
// Mesa 26's lavapipe (8x8x8, subgroups of 8, 32 KiB) and the H100 or H200
// through Dawn (16x16x16, 16x8x16, 16x8x8, subgroups of 32, 48 KiB), with
// each of its shapes alone so that every variant is generated.
func compileTargets() map[string]shaders.TCTarget {
	lavapipe := shaders.TCTarget{Shapes: []shaders.MatrixShape{{M: 8, N: 8, K: 8}}, SubgroupSize: 8, WorkgroupBytes: 32 << 10, MaxThreads: 1024, CPU: true}
	unrolled := lavapipe
	unrolled.CPU = false
	m := map[string]shaders.TCTarget{"lavapipe": lavapipe, "lavapipe unrolled": unrolled}
	for _, s := range []shaders.MatrixShape{{M: 16, N: 16, K: 16}, {M: 16, N: 8, K: 16}, {M: 16, N: 8, K: 8}} {
		m["H100 "+s.String()] = shaders.TCTarget{Shapes: []shaders.MatrixShape{s}, SubgroupSize: 32, WorkgroupBytes: 48 << 10, MaxThreads: 1024, MaxRegisters: shaders.TCRegisterBudget}
	}
	return m
}

// TestCompileNull compiles every tiling the choosers return for the
// compile targets, head dimensions 32 to 128 and both storage types, with
// Dawn's Null backend: WGSL validation, subgroup matrices included, with
// no GPU. (The Null adapter's limits, 16 KiB of workgroup memory, are
// below every target's, so pipelines are not created; lavapipe and the
// GPU create them in the numeric tests.)
func TestCompileNull(t *testing.T) {
	d := openDevice(t, 1 /* dawn.BackendNull */, true)
	ctx := context.Background()
	sources := map[string]string{"cast": shaders.TCCastSource}
	for name, tg := range compileTargets() {
		for _, dim := range []int{32, 64, 96, 128} {
			for _, dt := range []shaders.DType{shaders.Float16, shaders.Float32} {
				fwd, err := shaders.TCFwdTilings(dim, dt, tg)
				require.NoError(t, err, "%s D%d", name, dim)
				for _, tl := range fwd {
					src, err := tl.Source()
					require.NoError(t, err)
					sources[tl.String()] = src
				}
				bwd, err := shaders.TCBwdTilings(dim, dt, tg)
				require.NoError(t, err, "%s D%d", name, dim)
				for _, tl := range bwd {
					src, err := tl.Source()
					require.NoError(t, err)
					sources[tl.String()] = src
				}
			}
		}
	}
	t.Logf("%d modules", len(sources))
	for name, src := range sources {
		m, err := d.ShaderModule(ctx, name, src)
		require.NoError(t, err, "%s", name)
		m.Release()
	}
	require.Greater(t, len(sources), 50, fmt.Sprintf("the choosers return every candidate that fits: %d modules", len(sources)))
}
