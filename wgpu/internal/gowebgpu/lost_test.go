package gowebgpu

import (
	"context"
	"errors"
	"testing"

	webgpu "github.com/rajveermalviya/go-webgpu/wgpu"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/wgpu/internal/backend"
)

// openTest opens the first adapter for one test.
func openTest(t *testing.T) *Device {
	t.Helper()
	d, err := Runtime{}.Open(0, backend.Options{})
	require.NoError(t, err)
	t.Cleanup(d.Close)
	return d.(*Device)
}

const lostAxpy = `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
	if (id.x < arrayLength(&x)) { y[id.x] = 2.0 * x[id.x] + y[id.x]; }
}
`

// TestErrorTextIsNotLoss makes validation errors whose text says "lost"
// (from the labels a caller chose) and checks that the device is not taken
// for lost: loss is learnt from typed information only.
func TestErrorTextIsNotLoss(t *testing.T) {
	d := openTest(t)
	p, err := d.Pipeline("axpy", lostAxpy, "main")
	require.NoError(t, err)
	defer p.Release()
	b, err := d.NewBuffer("lost+found", 64, backend.Storage, nil)
	require.NoError(t, err)
	defer b.Release()
	ctx := context.Background()
	// One binding of two: a validation error naming the dispatch.
	_, err = d.Run(ctx, []backend.Dispatch{{Label: "device lost", Pipeline: p, Bindings: []backend.Binding{{Slot: 0, Buffer: b}}, Workgroups: [3]uint32{1, 1, 1}}})
	require.ErrorContains(t, err, "lost")
	assert.NotErrorIs(t, err, backend.ErrDeviceLost)
	err = d.Submit([]backend.Dispatch{{Label: "lost again", Pipeline: p, Bindings: []backend.Binding{{Slot: 0, Buffer: b}}, Workgroups: [3]uint32{1, 1, 1}}})
	require.ErrorContains(t, err, "lost")
	assert.NotErrorIs(t, err, backend.ErrDeviceLost)
	// The device still works.
	y, err := d.NewBuffer("y", 64, backend.Storage, nil)
	require.NoError(t, err)
	defer y.Release()
	_, err = d.Run(ctx, []backend.Dispatch{{Label: "axpy", Pipeline: p, Bindings: []backend.Binding{{Slot: 0, Buffer: b}, {Slot: 1, Buffer: y}}, Workgroups: [3]uint32{1, 1, 1}}})
	require.NoError(t, err)
	require.NoError(t, d.Read(ctx, b, 0, make([]byte, 64), nil))
}

// TestMapStatusLoss checks the typed path: a map that reports a lost
// device marks the device lost, and later calls fail with ErrDeviceLost.
func TestMapStatusLoss(t *testing.T) {
	require.NoError(t, mapStatusError(webgpu.BufferMapAsyncStatus_Success))
	err := mapStatusError(webgpu.BufferMapAsyncStatus_DeviceLost)
	require.ErrorIs(t, err, backend.ErrDeviceLost)
	for _, s := range []webgpu.BufferMapAsyncStatus{webgpu.BufferMapAsyncStatus_ValidationError, webgpu.BufferMapAsyncStatus_DestroyedBeforeCallback} {
		require.Error(t, mapStatusError(s))
		assert.False(t, errors.Is(mapStatusError(s), backend.ErrDeviceLost), "%s", s)
	}

	d := openTest(t)
	d.markLost(mapStatusError(webgpu.BufferMapAsyncStatus_DeviceLost).Error())
	_, err = d.NewBuffer("after loss", 16, backend.Storage, nil)
	require.ErrorIs(t, err, backend.ErrDeviceLost)
	require.ErrorIs(t, d.Err(), backend.ErrDeviceLost)
}
