package wgpu_test

import (
	"context"
	"os"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/wgpu"
)

const axpy = `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
	if (id.x < arrayLength(&x)) { y[id.x] = 2.0 * x[id.x] + y[id.x]; }
}
`

func openTest(t *testing.T) *wgpu.Device {
	t.Helper()
	d, err := wgpu.OpenBest(wgpu.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { d.Close() })
	t.Logf("%s on %s: %s", d.Info(), d.Runtime(), d.Info().Capabilities())
	return d
}

func TestAdapters(t *testing.T) {
	list, err := wgpu.Adapters(wgpu.Options{})
	require.NoError(t, err)
	rt, err := wgpu.ParseRuntime(os.Getenv(wgpu.EnvRuntime))
	require.NoError(t, err)
	for i, a := range list {
		assert.Equal(t, i, a.Index)
		assert.NotEmpty(t, a.Name)
		assert.NotEqual(t, "OpenGL", a.Backend, "GL adapters are hidden by default")
		assert.Greater(t, a.Limits.MaxWorkgroupStorageSize, uint32(0))
		if rt != wgpu.RuntimeAuto {
			assert.Equal(t, rt, a.Runtime, "the runtime asked for lists the adapters")
		}
		if a.Runtime == wgpu.RuntimeGoWebGPU {
			assert.False(t, a.F16 || a.Subgroups || a.MatrixConfigs != nil, "wgpu-native 0.17 gives WGSL no f16, subgroups or subgroup matrices")
		}
		if a.Subgroups {
			assert.Positive(t, a.SubgroupMinSize)
			assert.LessOrEqual(t, a.SubgroupMinSize, a.SubgroupMaxSize)
		}
	}
	d := openTest(t)
	assert.Equal(t, list[0].Name, d.Info().Name)
	assert.Equal(t, list[0].Runtime, d.Runtime())
}

func TestRunRoundTrip(t *testing.T) {
	d := openTest(t)
	n := 1000
	x := make([]float32, n)
	y := make([]float32, n)
	for i := range x {
		x[i], y[i] = float32(i), float32(3*i+1)
	}
	bx, err := wgpu.Upload(d, "x", x)
	require.NoError(t, err)
	defer bx.Release()
	by, err := wgpu.Upload(d, "y", y)
	require.NoError(t, err)
	defer by.Release()
	p, err := d.Pipeline("axpy", axpy, "main")
	require.NoError(t, err)
	timing, err := d.Run(context.Background(), wgpu.Dispatch{Label: "axpy", Pipeline: p, Buffers: []*wgpu.Buffer{bx, by}, Workgroups: [3]uint32{uint32((n + 63) / 64), 1, 1}})
	require.NoError(t, err)
	assert.Positive(t, timing.Wall)
	if d.Info().Timestamps {
		assert.Len(t, timing.Passes, 1)
	}
	got := make([]float32, n)
	require.NoError(t, wgpu.Download(context.Background(), by, got))
	for i := range got {
		require.Equal(t, float32(5*i+1), got[i], "element %d", i)
	}
	// The pipeline is cached.
	p2, err := d.Pipeline("axpy", axpy, "main")
	require.NoError(t, err)
	assert.Same(t, p, p2)
}

func TestErrorsAreValues(t *testing.T) {
	d := openTest(t)
	_, err := d.Pipeline("broken", "fn main( {", "main")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "broken")

	_, err = d.Pipeline("no entry", axpy, "nope")
	require.Error(t, err)

	_, err = wgpu.Open(99, wgpu.Options{})
	require.ErrorContains(t, err, "adapter 99")

	_, err = d.NewBuffer("huge", d.Limits().MaxStorageBufferBindingSize+16)
	require.ErrorContains(t, err, "huge")

	p, err := d.Pipeline("axpy", axpy, "main")
	require.NoError(t, err)
	b, err := d.NewBuffer("b", 64)
	require.NoError(t, err)
	// Too few bindings is a validation error, not a crash.
	_, err = d.Run(context.Background(), wgpu.Dispatch{Label: "short", Pipeline: p, Buffers: []*wgpu.Buffer{b}, Workgroups: [3]uint32{1, 1, 1}})
	require.Error(t, err)
	_, err = d.Run(context.Background(), wgpu.Dispatch{Label: "big", Pipeline: p, Buffers: []*wgpu.Buffer{b, b}, Workgroups: [3]uint32{1 << 20, 1, 1}})
	require.ErrorContains(t, err, "exceed")
	_, err = d.Run(context.Background(), wgpu.Dispatch{Label: "numbered", Pipeline: p, Buffers: []*wgpu.Buffer{b, b}, Bindings: []uint32{1}, Workgroups: [3]uint32{1, 1, 1}})
	require.ErrorContains(t, err, "1 binding numbers for 2 buffers")
	_, err = d.Run(context.Background(), wgpu.Dispatch{Label: "misnumbered", Pipeline: p, Buffers: []*wgpu.Buffer{b, b}, Bindings: []uint32{0, 5}, Workgroups: [3]uint32{1, 1, 1}})
	require.Error(t, err, "binding 5 is not in the pipeline's layout")

	b.Release()
	_, err = d.Run(context.Background(), wgpu.Dispatch{Label: "released", Pipeline: p, Buffers: []*wgpu.Buffer{b, b}, Workgroups: [3]uint32{1, 1, 1}})
	require.ErrorContains(t, err, "released")

	require.NoError(t, d.Close())
	_, err = d.NewBuffer("after close", 16)
	require.ErrorIs(t, err, wgpu.ErrClosed)
}

// TestDownloadSurvivesGC reads buffers back (Download, and Run's timestamp
// readback) while another goroutine collects garbage without pause:
// go-webgpu's map callback data is not kept alive by Go, and mapping while
// a collection could run crashed the process (see mapRead).
func TestDownloadSurvivesGC(t *testing.T) {
	d := openTest(t)
	src := make([]float32, 1<<16)
	for i := range src {
		src[i] = float32(i)
	}
	b, err := wgpu.Upload(d, "src", src)
	require.NoError(t, err)
	defer b.Release()
	y, err := d.NewBuffer("y", 4*uint64(len(src)))
	require.NoError(t, err)
	defer y.Release()
	p, err := d.Pipeline("axpy", axpy, "main")
	require.NoError(t, err)
	disp := wgpu.Dispatch{Label: "axpy", Pipeline: p, Buffers: []*wgpu.Buffer{b, y}, Workgroups: [3]uint32{uint32(len(src) / 64), 1, 1}}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				// Small objects reuse freed 8-byte slots with other values.
				junk := make([]*uint64, 4096)
				for j := range junk {
					v := uint64(0xdeadbeef) << 8
					junk[j] = &v
				}
				runtime.GC()
			}
		}
	}()
	defer func() { close(stop); <-done }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dst := make([]float32, len(src))
	for i := range 200 {
		require.NoError(t, wgpu.Download(ctx, b, dst))
		require.Equal(t, src[i*7%len(src)], dst[i*7%len(src)])
		_, err := d.Run(ctx, disp)
		require.NoError(t, err)
	}
}
