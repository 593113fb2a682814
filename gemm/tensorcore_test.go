package gemm

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/shaders"
	"github.com/coreattn/coreattn/wgpu"
)

func TestTensorCoreShapes(t *testing.T) {
	h100 := wgpu.AdapterInfo{F16: true, Subgroups: true, SubgroupMinSize: 32, SubgroupMaxSize: 32, MatrixConfigs: []wgpu.MatrixConfig{
		{M: 16, N: 16, K: 16, Component: "f16", Result: "f32"}, {M: 16, N: 16, K: 16, Component: "f16", Result: "f16"}, {M: 16, N: 8, K: 8, Component: "f16", Result: "f32"},
	}}
	assert.Equal(t, []shaders.MatrixShape{{M: 16, N: 16, K: 16}, {M: 16, N: 8, K: 8}}, TensorCoreShapes(h100))
	noF16 := h100
	noF16.F16 = false
	assert.Nil(t, TensorCoreShapes(noF16))
	assert.Nil(t, TensorCoreShapes(wgpu.AdapterInfo{}))
}

// TestKernelsHook checks the hook's contract on the test's device: auto
// and FMA run the FMA engine; tensor cores, which main has no engine for,
// are an error wrapping ErrNoTensorCores.
func TestKernelsHook(t *testing.T) {
	dev := testOp(t, Options{}).Device()
	for _, k := range []Kernels{KernelsAuto, KernelsFMA} {
		g := NewWithOptions(dev, Options{Kernels: k})
		_, ok, err := g.tensorCoreTiling(Spec{})
		require.NoError(t, err, k.String())
		assert.False(t, ok, k.String())
	}
	_, _, err := NewWithOptions(dev, Options{Kernels: KernelsTensorCore}).tensorCoreTiling(Spec{})
	require.ErrorIs(t, err, ErrNoTensorCores)
}
