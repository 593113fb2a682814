package wgpu_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/wgpu"
)

func TestReadbackReuse(t *testing.T) {
	d := openTest(t)
	ctx := context.Background()
	src, err := wgpu.Upload(d, "src", []float32{1, 2, 3, 4, 5})
	require.NoError(t, err)
	defer src.Release()
	r, err := d.NewReadback("scalars", 12)
	require.NoError(t, err)
	defer r.Release()
	for round, want := range [][]float32{{1, 2, 3}, {7, 8, 9}, {-1, 0, 1}} {
		if round > 0 {
			require.NoError(t, wgpu.Write(src, 0, want))
		}
		got := make([]float32, 3)
		require.NoError(t, wgpu.Read(ctx, r, src, got))
		assert.Equal(t, want, got, "round %d", round)
	}
	// Reads larger than the staging buffer or the source fail.
	assert.Error(t, wgpu.Read(ctx, r, src, make([]float32, 5)))
	small, err := d.NewReadback("big", 64)
	require.NoError(t, err)
	defer small.Release()
	assert.Error(t, wgpu.Read(ctx, small, src, make([]float32, 6)))
	r.Release()
	assert.Error(t, wgpu.Read(ctx, r, src, make([]float32, 1)))
}

// TestSubmitReadCollect submits axpy (y = 2x + y) twice, each with a read
// of y in its command buffer, before collecting either: each read holds
// its own submission's y, and a WaitTime and buffer count that a warm
// round leaves alone.
func TestSubmitReadCollect(t *testing.T) {
	d := openTest(t)
	ctx := context.Background()
	x, err := wgpu.Upload(d, "x", []float32{1, 2, 3, 4})
	require.NoError(t, err)
	defer x.Release()
	y, err := wgpu.Upload(d, "y", []float32{10, 20, 30, 40})
	require.NoError(t, err)
	defer y.Release()
	p, err := d.Pipeline("axpy", axpy, "main")
	require.NoError(t, err)
	axpyOnce := wgpu.Dispatch{Label: "axpy", Pipeline: p, Buffers: []*wgpu.Buffer{x, y}, Workgroups: [3]uint32{1, 1, 1}}
	var rs [2]*wgpu.Readback
	for i := range rs {
		rs[i], err = d.NewReadback("y", 16)
		require.NoError(t, err)
		defer rs[i].Release()
	}
	created := d.BuffersCreated()
	for round := range 3 {
		base := float32(2 * round)
		for _, r := range rs {
			require.NoError(t, d.SubmitRead(r, y, 16, axpyOnce))
		}
		for i, r := range rs {
			got := make([]float32, 4)
			require.NoError(t, wgpu.Collect(ctx, r, got))
			k := base + float32(i+1) // axpy runs so far
			assert.Equal(t, []float32{10 + 2*k, 20 + 4*k, 30 + 6*k, 40 + 8*k}, got, "round %d, read %d", round, i)
		}
	}
	assert.Equal(t, created, d.BuffersCreated(), "buffers created by warm reads")

	// A pending read blocks another and Read; Collect needs one pending.
	r := rs[0]
	require.NoError(t, d.SubmitRead(r, y, 8))
	assert.Error(t, d.SubmitRead(r, y, 8))
	assert.Error(t, wgpu.Read(ctx, r, y, make([]float32, 1)))
	assert.ErrorIs(t, wgpu.Collect(ctx, r, make([]float32, 3)), wgpu.ErrOutOfRange)
	got := make([]float32, 2)
	require.NoError(t, wgpu.Collect(ctx, r, got))
	assert.Equal(t, []float32{10 + 2*6, 20 + 4*6}, got)
	assert.Error(t, wgpu.Collect(ctx, r, got))
	assert.ErrorIs(t, d.SubmitRead(r, y, 32), wgpu.ErrOutOfRange)
	// A read pending at Release is dropped.
	require.NoError(t, d.SubmitRead(r, y, 8))
	r.Release()
	assert.ErrorIs(t, d.SubmitRead(r, y, 8), wgpu.ErrReleased)
}
