package gpu

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/shaders"
	"github.com/coreattn/coreattn/wgpu"
)

// TestRuntimeKeyCases runs a few key cases of the suite, forward and
// backward, through the host-slice and the device-buffer APIs, on the
// FFMA kernels: the cases that every runtime passes (package wgputest runs
// this test over Dawn too, where the whole suite would take too long; a
// D128 case would add three minutes of lavapipe compiling there).
func TestRuntimeKeyCases(t *testing.T) {
	dev := testOp(t).Device()
	t.Logf("%s on %s: %s", dev.Info(), dev.Runtime(), dev.Info().Capabilities())
	op := NewWithOptions(dev, Options{Kernels: KernelsFFMA})
	ctx := context.Background()
	for i, c := range []struct {
		gpuCase
		dt attention.DType
	}{
		{gpuCases[2], attention.Float32},  // zero-length segments
		{gpuCases[3], attention.Float32},  // CA-task shards, GQA 4:1
		{gpuCases[15], attention.Float16}, // non-causal, q_len != k_len
	} {
		t.Run(c.name+"/"+c.dt.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 0x4e))
			a := c.args()
			a.DType = c.dt
			tol := 1e-4
			if c.dt != attention.Float32 {
				tol = 1e-2 // half storage of the inputs and results
			}
			checkForward(t, op, a, rng, tol)
			in := newBwdInputs(t, c.gpuCase, uint64(i))
			in.a.DType = c.dt
			if c.dt != attention.Float32 {
				return // TestBackwardHalfStorage covers it on go-webgpu
			}
			bt := in.tensors(t, dev)
			require.NoError(t, op.BackwardBuffers(ctx, in.a, bt))
			in.check(t, bt)
		})
	}
}

// tcCompileTargets are the adapters the tensor-core kernels are built
// for: Mesa 26's lavapipe (8x8x8, subgroups of 8, 32 KiB) and the H100 or
// H200 through Dawn (16x16x16, 16x8x16, 16x8x8, subgroups of 32, 48 KiB),
// with each of its shapes alone so that every variant is generated.
func tcCompileTargets() map[string]shaders.TCTarget {
	lavapipe := shaders.TCTarget{Shapes: []shaders.MatrixShape{{M: 8, N: 8, K: 8}}, SubgroupSize: 8, WorkgroupBytes: 32 << 10, MaxThreads: 1024, CPU: true}
	unrolled := lavapipe
	unrolled.CPU = false
	m := map[string]shaders.TCTarget{"lavapipe": lavapipe, "lavapipe unrolled": unrolled}
	for _, s := range []shaders.MatrixShape{{M: 16, N: 16, K: 16}, {M: 16, N: 8, K: 16}, {M: 16, N: 8, K: 8}} {
		m["H100 "+s.String()] = shaders.TCTarget{Shapes: []shaders.MatrixShape{s}, SubgroupSize: 32, WorkgroupBytes: 48 << 10, MaxThreads: 1024, MaxRegisters: shaders.TCRegisterBudget}
	}
	return m
}

// TestKernelsCompileTensorCore compiles every tiling the tensor-core
// choosers return for the compile targets, head dimensions 32 to 128 and
// both storage types, with Dawn's Null backend (wgpu.OpenValidator):
// WGSL validation, subgroup matrices included, with no GPU. It is CI's
// check of the kernels no CI adapter runs; it skips without Dawn.
func TestKernelsCompileTensorCore(t *testing.T) {
	v, err := wgpu.OpenValidator(wgpu.Options{})
	if errors.Is(err, wgpu.ErrNoRuntime) {
		t.Skipf("%v", err)
	}
	require.NoError(t, err)
	defer v.Close()
	sources := map[string]string{"cast": shaders.TCCastSource}
	for name, tg := range tcCompileTargets() {
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
	for name, src := range sources {
		require.NoError(t, v.CheckModule(name, src), "%s", name)
	}
	assert.Greater(t, len(sources), 50, "the choosers return every candidate that fits")
	t.Logf("%d modules compiled", len(sources))
}
