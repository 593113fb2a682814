package wgpu_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/wgpu"
)

// f16Kernel doubles x in f16; subgroupKernel adds x over the subgroup
// and 1000 times the subgroup's size.
const f16Kernel = `
enable f16;
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
	let h = f16(x[id.x]);
	y[id.x] = f32(h + h);
}
`

const subgroupKernel = `
enable subgroups;
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(subgroup_size) n: u32) {
	y[id.x] = subgroupAdd(x[id.x]) + f32(n) * 1000.0;
}
`

// The smallest use of a subgroup matrix: one 8x8 tile product.
const matrixKernel = `
enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium_experimental.subgroup_matrix_uniformity);
@group(0) @binding(0) var<storage, read> a: array<f16>;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@compute @workgroup_size(32)
fn main() {
	let l = subgroupMatrixLoad<subgroup_matrix_left<f16, 8, 8>, row_major>(&a, 0u, 8u);
	let r = subgroupMatrixLoad<subgroup_matrix_right<f16, 8, 8>, row_major>(&a, 0u, 8u);
	var acc = subgroupMatrixLoad<subgroup_matrix_result<f32, 8, 8>, row_major>(&c, 0u, 8u);
	acc = subgroupMatrixMultiplyAccumulate(l, r, acc);
	subgroupMatrixStore<row_major>(&c, 0u, acc, 8u);
}
`

// TestFeaturesAreTrue checks that what AdapterInfo says of f16 and
// subgroups holds: where the device offers them, kernels using them
// compile and compute; where it does not, they are refused.
func TestFeaturesAreTrue(t *testing.T) {
	d := openTest(t)
	ctx := context.Background()
	info := d.Info()
	x := make([]float32, 64)
	for i := range x {
		x[i] = float32(i) / 4
	}
	run := func(src string) []float32 {
		p, err := d.Pipeline("feature", src, "main")
		require.NoError(t, err)
		bx, err := wgpu.Upload(d, "x", x)
		require.NoError(t, err)
		defer bx.Release()
		by, err := d.NewBuffer("y", 4*64)
		require.NoError(t, err)
		defer by.Release()
		_, err = d.Run(ctx, wgpu.Dispatch{Label: "feature", Pipeline: p, Buffers: []*wgpu.Buffer{bx, by}, Workgroups: [3]uint32{1, 1, 1}})
		require.NoError(t, err)
		y := make([]float32, 64)
		require.NoError(t, wgpu.Download(ctx, by, y))
		return y
	}
	if info.F16 {
		y := run(f16Kernel)
		for i := range y {
			require.Equal(t, 2*x[i], y[i], "element %d", i) // quarters are exact in f16
		}
	} else {
		assert.Error(t, d.CheckModule("f16", f16Kernel), "%s offers no f16", info)
	}
	if !info.Subgroups {
		assert.Error(t, d.CheckModule("subgroups", subgroupKernel), "%s offers no subgroups", info)
		return
	}
	y := run(subgroupKernel)
	n := int(y[0] / 1000)
	require.True(t, n >= int(info.SubgroupMinSize) && n <= int(info.SubgroupMaxSize), "subgroup size %d outside [%d, %d]", n, info.SubgroupMinSize, info.SubgroupMaxSize)
	for i := range y {
		start := i / n * n
		var want float32
		for _, v := range x[start : start+n] {
			want += v
		}
		require.InDelta(t, want+float32(1000*n), y[i], 1e-3, "element %d", i)
	}
}

// TestValidator compiles kernels no local adapter may run with Dawn's
// Null backend, and rejects a broken one.
func TestValidator(t *testing.T) {
	v, err := wgpu.OpenValidator(wgpu.Options{})
	if errors.Is(err, wgpu.ErrNoRuntime) {
		t.Skipf("%v", err)
	}
	require.NoError(t, err)
	defer v.Close()
	info := v.Info()
	// The Null adapter compiles subgroup matrices but lists no configuration.
	assert.True(t, info.F16 && info.Subgroups, "the Null adapter offers every WGSL extension: %s", info.Capabilities())
	for name, src := range map[string]string{"f16": f16Kernel, "subgroups": subgroupKernel, "matrix": matrixKernel, "f32": axpy} {
		assert.NoError(t, v.CheckModule(name, src), name)
	}
	assert.Error(t, v.CheckModule("broken matrix", matrixKernel[:len(matrixKernel)-3]))
}
