//go:build linux && cgo

package dawn

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/x448/float16"
)

// TestMain points the Vulkan loader at the lavapipe that `scripts/dawn.sh
// --lavapipe` installs, when it is there and no driver list is set: Dawn
// refuses Debian 12's Mesa 22.3 lavapipe (it lacks
// shaderUniformBufferArrayDynamicIndexing), Mesa 25's works.
func TestMain(m *testing.M) {
	if os.Getenv("VK_DRIVER_FILES") == "" && os.Getenv("VK_ICD_FILENAMES") == "" {
		if cache, err := CacheDir(); err == nil {
			icd := filepath.Join(cache, "lavapipe", "lvp_icd.json")
			if isFile(icd) {
				os.Setenv("VK_DRIVER_FILES", icd)
				fmt.Fprintf(os.Stderr, "dawn tests: Vulkan driver %s\n", icd)
			}
		}
	}
	os.Exit(m.Run())
}

// library loads Dawn or skips the test.
func library(t *testing.T) *Library {
	t.Helper()
	lib, err := Open("")
	if errors.Is(err, ErrNotFound) {
		t.Skipf("no Dawn library found (%s, %s, system libwebgpu_dawn.so.0): install one with scripts/dawn.sh", EnvLibrary, "install cache")
	}
	require.NoError(t, err, "a Dawn library was found but does not load")
	return lib
}

// device opens a device on the first adapter of backend, or skips.
func device(t *testing.T, backend Backend) *Device {
	t.Helper()
	lib := library(t)
	in, err := lib.NewInstance(InstanceOptions{AllowUnsafeAPIs: true})
	require.NoError(t, err)
	t.Cleanup(in.Release)
	ctx := context.Background()
	adapters, err := in.Adapters(ctx, AdapterOptions{Backend: backend})
	if errors.Is(err, ErrNoAdapter) && backend != BackendNull {
		t.Skipf("Dawn (%s) offers no %v adapter: %v. Debian 12's Mesa 22.3 lavapipe is refused; `scripts/dawn.sh --lavapipe` installs Mesa 25's for these tests", lib.Path(), backend, err)
	}
	require.NoError(t, err)
	for _, a := range adapters[1:] {
		a.Release()
	}
	a := adapters[0]
	t.Cleanup(a.Release)
	d, err := a.NewDevice(ctx, DeviceOptions{Label: t.Name()})
	require.NoError(t, err)
	t.Cleanup(d.Release)
	info := d.Info()
	t.Logf("%s via %s (%v): %s; limits: storage binding %d, workgroup storage %d, invocations %d",
		info, lib.Path(), lib.Form(), info.Capabilities(), info.Limits.MaxStorageBufferBindingSize,
		info.Limits.MaxWorkgroupStorageSize, info.Limits.MaxInvocationsPerWorkgroup)
	return d
}

func f32bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func bytesF32(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func randomF32(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

func relErr(got []float32, want []float64) float64 {
	var num, den float64
	for i := range want {
		d := float64(got[i]) - want[i]
		num += d * d
		den += want[i] * want[i]
	}
	return math.Sqrt(num / den)
}

// upload creates a storage buffer holding data.
func upload(t *testing.T, d *Device, label string, data []float32) *Buffer {
	t.Helper()
	b, err := d.NewBuffer(context.Background(), label, uint64(4*len(data)), UsageStorage|UsageCopySrc|UsageCopyDst)
	require.NoError(t, err)
	t.Cleanup(b.Release)
	require.NoError(t, d.Write(b, 0, f32bytes(data)))
	return b
}

func download(t *testing.T, d *Device, b *Buffer) []float32 {
	t.Helper()
	out := make([]byte, b.Size())
	require.NoError(t, d.Read(context.Background(), b, 0, out))
	return bytesF32(out)
}

// run compiles wgsl, binds bufs at 0..n-1 and dispatches grid once.
func run(t *testing.T, d *Device, wgsl string, grid [3]uint32, constants map[string]float64, bufs ...*Buffer) {
	t.Helper()
	ctx := context.Background()
	m, err := d.ShaderModule(ctx, t.Name(), wgsl)
	require.NoError(t, err)
	defer m.Release()
	p, err := d.ComputePipeline(ctx, t.Name(), m, "main", constants)
	require.NoError(t, err)
	defer p.Release()
	bs := make([]Binding, len(bufs))
	for i, b := range bufs {
		bs[i] = Binding{Binding: uint32(i), Buffer: b}
	}
	g, err := d.BindGroup(ctx, t.Name(), p, bs)
	require.NoError(t, err)
	defer g.Release()
	_, err = d.Run(ctx, false, Pass{Pipeline: p, BindGroup: g, Workgroups: grid})
	require.NoError(t, err)
}

func TestRoundTrip(t *testing.T) {
	d := device(t, BackendVulkan)
	r := rand.New(rand.NewPCG(1, 2))
	want := randomF32(r, 3001)
	b := upload(t, d, "x", want)
	assert.Equal(t, want, download(t, d, b))

	// A partial write and a read at an offset.
	patch := randomF32(r, 7)
	require.NoError(t, d.Write(b, 40, f32bytes(patch)))
	out := make([]byte, 28)
	require.NoError(t, d.Read(context.Background(), b, 40, out))
	assert.Equal(t, patch, bytesF32(out))
}

const matmulF32 = `
override TILE: u32 = 8u;
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<storage, read> dims: array<u32>; // M, N, K

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) id: vec3u) {
  let m = dims[0]; let n = dims[1]; let k = dims[2];
  let row = id.y; let col = id.x;
  if (row >= m || col >= n) { return; }
  var acc = 0.0;
  for (var i = 0u; i < k; i++) {
    acc = fma(a[row * k + i], b[i * n + col], acc);
  }
  c[row * n + col] = acc * f32(TILE) / 8.0; // TILE is overridden to 8
}`

func TestMatmulF32(t *testing.T) {
	d := device(t, BackendVulkan)
	r := rand.New(rand.NewPCG(3, 4))
	const M, N, K = 37, 29, 53 // not multiples of the workgroup
	a, b := randomF32(r, M*K), randomF32(r, K*N)
	want := make([]float64, M*N)
	for i := range M {
		for j := range N {
			for k := range K {
				want[i*N+j] += float64(a[i*K+k]) * float64(b[k*N+j])
			}
		}
	}
	poison := make([]float32, M*N)
	for i := range poison {
		poison[i] = float32(math.NaN())
	}
	dims, err := d.NewBuffer(context.Background(), "dims", 16, UsageStorage|UsageCopyDst)
	require.NoError(t, err)
	defer dims.Release()
	dimBytes := make([]byte, 16)
	for i, v := range []uint32{M, N, K} {
		binary.LittleEndian.PutUint32(dimBytes[4*i:], v)
	}
	require.NoError(t, d.Write(dims, 0, dimBytes))
	c := upload(t, d, "c", poison)
	run(t, d, matmulF32, [3]uint32{(N + 7) / 8, (M + 7) / 8, 1}, map[string]float64{"TILE": 8},
		upload(t, d, "a", a), upload(t, d, "b", b), c, dims)
	got := download(t, d, c)
	assert.LessOrEqual(t, relErr(got, want), 1e-4)
}

// f16 storage in, f32 out: y[i] = x[i]*x[i] + 1 computed in f16.
const squareF16 = `
enable f16;
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u) {
  if (id.x >= arrayLength(&x)) { return; }
  let h = f16(x[id.x]);
  y[id.x] = f32(fma(h, h, 1.0h));
}`

func TestF16(t *testing.T) {
	d := device(t, BackendVulkan)
	if !d.Features().F16 {
		t.Skipf("%s has no ShaderF16", d.Info().Name)
	}
	r := rand.New(rand.NewPCG(5, 6))
	x := randomF32(r, 1000)
	want := make([]float64, len(x))
	for i, v := range x {
		want[i] = float64(v)*float64(v) + 1
	}
	y := upload(t, d, "y", make([]float32, len(x)))
	run(t, d, squareF16, [3]uint32{(uint32(len(x)) + 63) / 64, 1, 1}, nil, upload(t, d, "x", x), y)
	// f16 rounds the input and the result to 11 significant bits: relative
	// error up to about 3 * 2^-11 per element.
	assert.LessOrEqual(t, relErr(download(t, d, y), want), 2e-3)
}

// Each invocation writes its subgroup's sum of x and the subgroup size.
const subgroupSum = `
enable subgroups;
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> size: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u, @builtin(subgroup_size) sg: u32) {
  y[id.x] = subgroupAdd(x[id.x]);
  size[id.x] = sg;
}`

func TestSubgroups(t *testing.T) {
	d := device(t, BackendVulkan)
	if !d.Features().Subgroups {
		t.Skipf("%s has no subgroups", d.Info().Name)
	}
	r := rand.New(rand.NewPCG(7, 8))
	x := randomF32(r, 256)
	y := upload(t, d, "y", make([]float32, len(x)))
	sizes, err := d.NewBuffer(context.Background(), "sizes", 4*256, UsageStorage|UsageCopySrc)
	require.NoError(t, err)
	defer sizes.Release()
	run(t, d, subgroupSum, [3]uint32{4, 1, 1}, nil, upload(t, d, "x", x), y, sizes)
	raw := make([]byte, 4*256)
	require.NoError(t, d.Read(context.Background(), sizes, 0, raw))
	sg := int(binary.LittleEndian.Uint32(raw))
	info := d.Info()
	require.True(t, sg >= int(info.SubgroupMinSize) && sg <= int(info.SubgroupMaxSize) && 64%sg == 0, "subgroup size %d", sg)
	// Subgroups are consecutive invocations of a 1-D workgroup.
	want := make([]float64, len(x))
	for s := 0; s < len(x); s += sg {
		var sum float64
		for i := s; i < s+sg; i++ {
			sum += float64(x[i])
		}
		for i := s; i < s+sg; i++ {
			want[i] = sum
		}
	}
	assert.LessOrEqual(t, relErr(download(t, d, y), want), 1e-5)
}

func TestTimestamps(t *testing.T) {
	d := device(t, BackendVulkan)
	if !d.Features().Timestamps {
		t.Skipf("%s has no timestamp queries", d.Info().Name)
	}
	ctx := context.Background()
	m, err := d.ShaderModule(ctx, "spin", `
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u) {
  var v = f32(id.x);
  for (var i = 0; i < 2000; i++) { v = fma(v, 0.999, 0.5); }
  y[id.x] = v;
}`)
	require.NoError(t, err)
	defer m.Release()
	p, err := d.ComputePipeline(ctx, "spin", m, "main", nil)
	require.NoError(t, err)
	defer p.Release()
	y := upload(t, d, "y", make([]float32, 64*16))
	g, err := d.BindGroup(ctx, "spin", p, []Binding{{Binding: 0, Buffer: y}})
	require.NoError(t, err)
	defer g.Release()
	pass := Pass{Pipeline: p, BindGroup: g, Workgroups: [3]uint32{16, 1, 1}}
	start := time.Now()
	times, err := d.Run(ctx, true, pass, pass)
	wall := time.Since(start)
	require.NoError(t, err)
	require.Len(t, times, 2)
	for _, dt := range times {
		assert.Positive(t, dt)
		assert.Less(t, dt, wall, "a pass cannot take longer than the whole run")
	}
}

func TestErrorsAreTyped(t *testing.T) {
	d := device(t, BackendVulkan)
	ctx := context.Background()

	_, err := d.ShaderModule(ctx, "broken", "@compute @workgroup_size(1)\nfn main() {\n  let x: f32 = undefined_name;\n}")
	var ce *CompileError
	require.ErrorAs(t, err, &ce)
	assert.ErrorIs(t, err, ErrCompile)
	require.NotEmpty(t, ce.Messages)
	assert.Equal(t, uint64(3), ce.Messages[0].Line, "the error is on line 3")

	m, err := d.ShaderModule(ctx, "ok", "@group(0) @binding(0) var<storage, read_write> y: array<f32>;\n@compute @workgroup_size(1) fn main() { y[0] = 1.0; }")
	require.NoError(t, err)
	defer m.Release()
	_, err = d.ComputePipeline(ctx, "no entry", m, "nope", nil)
	assert.ErrorIs(t, err, ErrValidation)

	p, err := d.ComputePipeline(ctx, "ok", m, "main", nil)
	require.NoError(t, err)
	defer p.Release()
	uniform, err := d.NewBuffer(ctx, "uniform", 16, UsageUniform)
	require.NoError(t, err)
	defer uniform.Release()
	_, err = d.BindGroup(ctx, "wrong usage", p, []Binding{{Binding: 0, Buffer: uniform}})
	assert.ErrorIs(t, err, ErrValidation)
	var ae *APIError
	assert.ErrorAs(t, err, &ae)

	_, err = d.NewBuffer(ctx, "odd", 6, UsageStorage)
	assert.ErrorIs(t, err, ErrBadArgument)
	b := upload(t, d, "small", make([]float32, 4))
	assert.ErrorIs(t, d.Write(b, 8, make([]byte, 16)), ErrBadArgument)
	assert.ErrorIs(t, d.Read(ctx, b, 2, make([]byte, 4)), ErrBadArgument)

	// The device is still usable after every error above.
	assert.NoError(t, d.Wait(ctx))
}

func TestCancelledWait(t *testing.T) {
	d := device(t, BackendVulkan)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, d.Wait(ctx), context.Canceled)
	b := upload(t, d, "b", make([]float32, 4))
	assert.ErrorIs(t, d.Read(ctx, b, 0, make([]byte, 16)), context.Canceled)
	// Still usable with a live context; the abandoned callbacks freed themselves.
	assert.Equal(t, make([]float32, 4), download(t, d, b))
}

func TestReleaseTwiceConcurrently(t *testing.T) {
	d := device(t, BackendVulkan)
	b := upload(t, d, "b", make([]float32, 4))
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(2)
		go func() { defer wg.Done(); b.Release() }()
		go func() { defer wg.Done(); d.Release() }()
	}
	wg.Wait()
	assert.ErrorIs(t, d.Write(b, 0, make([]byte, 4)), ErrReleased)
	assert.ErrorIs(t, d.Wait(context.Background()), ErrReleased)
	_, err := d.NewBuffer(context.Background(), "after", 4, UsageStorage)
	assert.ErrorIs(t, err, ErrReleased)
}

// The subgroup-matrix kernel of the tensor-core work, in the templated
// load/store spelling, compiled by Dawn's Null backend: no GPU needed.
const subgroupMatrixTile = `
enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium_experimental.subgroup_matrix_uniformity);
alias L = subgroup_matrix_left<f16, 16, 16>;
alias R = subgroup_matrix_right<f16, 16, 16>;
alias Acc = subgroup_matrix_result<f32, 16, 16>;
@group(0) @binding(0) var<storage, read> a: array<f16>;
@group(0) @binding(1) var<storage, read> b: array<f16>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@compute @workgroup_size(32)
fn main() {
  let l = subgroupMatrixLoad<L, row_major>(&a, 0u, 16u);
  let r = subgroupMatrixLoad<R, row_major>(&b, 0u, 16u);
  var acc = subgroupMatrixLoad<Acc, row_major>(&c, 0u, 16u);
  acc = subgroupMatrixMultiplyAccumulate(l, r, acc);
  subgroupMatrixStore<row_major>(&c, 0u, acc, 16u);
}`

func TestNullBackendCompiles(t *testing.T) {
	d := device(t, BackendNull)
	f := d.Features()
	require.True(t, f.F16 && f.Subgroups && f.SubgroupMatrix, "the Null adapter offers every WGSL feature: %+v", f)
	ctx := context.Background()
	for name, src := range map[string]string{"subgroup-matrix": subgroupMatrixTile, "subgroup-matrix via workgroup memory": matrixTileWGSL(32), "f16": squareF16, "subgroups": subgroupSum, "f32": matmulF32} {
		t.Run(name, func(t *testing.T) {
			m, err := d.ShaderModule(ctx, name, src)
			require.NoError(t, err)
			m.Release()
		})
	}
	// And it still rejects what is wrong: a matrix load with a mismatched element type.
	_, err := d.ShaderModule(ctx, "bad matrix", subgroupMatrixTile[:len(subgroupMatrixTile)-1]+"\nfn f() { let x = subgroupMatrixLoad<L, row_major>(&c, 0u, 16u); }")
	assert.ErrorIs(t, err, ErrCompile)
}

// TestSubgroupMatrixTile runs one 16x16x16 f16->f32 multiply-accumulate on
// an adapter that offers it (an NVIDIA GPU through Vulkan; not lavapipe) and
// checks it against float64 on the f16-rounded inputs.
func TestSubgroupMatrixTile(t *testing.T) {
	d := device(t, BackendVulkan)
	info := d.Info()
	want := MatrixConfig{F16, F32, 16, 16, 16}
	found := false
	for _, c := range info.MatrixConfigs {
		found = found || c == want
	}
	if !d.Features().SubgroupMatrix || !found {
		t.Skipf("%s offers no %v subgroup matrix (configs %v, %v)", info.Name, want, info.MatrixConfigs, info.MatrixConfigsErr)
	}
	// Inputs arrive as f32 and are narrowed in workgroup memory, so the host
	// needs no f16 encoding; one subgroup does the whole tile.
	wgsl := matrixTileWGSL(info.SubgroupMaxSize)
	r := rand.New(rand.NewPCG(9, 10))
	a, b, c0 := randomF32(r, 256), randomF32(r, 256), randomF32(r, 256)
	ref := make([]float64, 256)
	for i := range 16 {
		for j := range 16 {
			s := float64(c0[i*16+j])
			for k := range 16 {
				s += float64(float16.Fromfloat32(a[i*16+k]).Float32()) * float64(float16.Fromfloat32(b[k*16+j]).Float32())
			}
			ref[i*16+j] = s
		}
	}
	c := upload(t, d, "c", c0)
	run(t, d, wgsl, [3]uint32{1, 1, 1}, nil, upload(t, d, "a", a), upload(t, d, "b", b), c)
	// f16 products are exact in f32; only the accumulation order differs.
	assert.LessOrEqual(t, relErr(download(t, d, c), ref), 1e-5)
}

// matrixTileWGSL is one 16x16x16 f16->f32 tile for a subgroup of size sg.
func matrixTileWGSL(sg uint32) string {
	return fmt.Sprintf(`enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium_experimental.subgroup_matrix_uniformity);
@group(0) @binding(0) var<storage, read> a: array<f32, 256>;
@group(0) @binding(1) var<storage, read> b: array<f32, 256>;
@group(0) @binding(2) var<storage, read_write> c: array<f32, 256>;
var<workgroup> ah: array<f16, 256>;
var<workgroup> bh: array<f16, 256>;
@compute @workgroup_size(%d)
fn main(@builtin(local_invocation_index) li: u32) {
  for (var i = li; i < 256u; i += %du) { ah[i] = f16(a[i]); bh[i] = f16(b[i]); }
  workgroupBarrier();
  let l = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&ah, 0u, 16u);
  let r = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, row_major>(&bh, 0u, 16u);
  var acc = subgroupMatrixLoad<subgroup_matrix_result<f32, 16, 16>, row_major>(&c, 0u, 16u);
  acc = subgroupMatrixMultiplyAccumulate(l, r, acc);
  subgroupMatrixStore<row_major>(&c, 0u, acc, 16u);
}`, sg, sg)
}
