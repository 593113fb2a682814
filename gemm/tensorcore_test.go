package gemm

import (
	"math/rand/v2"
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
	assert.Equal(t, []shaders.MMAConfig{{M: 16, N: 16, K: 16}, {M: 16, N: 8, K: 8}}, TensorCoreShapes(h100))
	noF16 := h100
	noF16.F16 = false
	assert.Nil(t, TensorCoreShapes(noF16))
	varying := h100
	varying.SubgroupMinSize = 8
	assert.Nil(t, TensorCoreShapes(varying))
	assert.Nil(t, TensorCoreShapes(wgpu.AdapterInfo{}))
	for _, k := range []Kernels{KernelsAuto, KernelsFMA, KernelsTensorCore} {
		got, err := ParseKernels(k.String())
		require.NoError(t, err)
		assert.Equal(t, k, got)
	}
	_, err := ParseKernels("wmma")
	require.ErrorContains(t, err, `"wmma"`)
}

// TestKernelsTensorCore checks the engine choice on the test's device:
// auto and FMA run the FMA engine; tensor cores run the subgroup-matrix
// engine within f16's tolerance where the device offers f16->f32 subgroup
// matrices, and are an error wrapping ErrNoTensorCores elsewhere.
func TestKernelsTensorCore(t *testing.T) {
	dev := testOp(t, Options{}).Device()
	rng := rand.New(rand.NewPCG(3, 4))
	for _, k := range []Kernels{KernelsAuto, KernelsFMA} {
		tiling := check(t, NewWithOptions(dev, Options{Kernels: k}), rng, product{m: 40, n: 36, k: 100})
		assert.NotContains(t, tiling, "mma", k.String())
	}
	buf, err := dev.NewBuffer("m", 3*16*4)
	require.NoError(t, err)
	defer buf.Release()
	spec := Spec{A: Matrix{Buf: buf, Rows: 4, Cols: 4}, B: Matrix{Buf: buf, Offset: 16, Rows: 4, Cols: 4}, C: Matrix{Buf: buf, Offset: 32, Rows: 4, Cols: 4}}
	_, err = NewWithOptions(dev, Options{Kernels: KernelsTensorCore, Tiling: shaders.GemmTiling{BM: 64, BN: 64, BK: 8, TM: 4, TN: 4}}).Prepare(spec)
	require.ErrorContains(t, err, "give an MMA tiling or none")
	op := NewWithOptions(dev, Options{Kernels: KernelsTensorCore})
	if TensorCoreShapes(dev.Info()) == nil {
		_, err := op.Prepare(spec)
		require.ErrorIs(t, err, ErrNoTensorCores)
		return
	}
	for _, tr := range cases {
		p := product{m: 130, n: 70, k: 96, ta: tr[0], tb: tr[1], acc: true, tol: tolHalf}
		t.Run(p.String(), func(t *testing.T) {
			assert.Contains(t, check(t, op, rng, p), "mma")
		})
	}
}
