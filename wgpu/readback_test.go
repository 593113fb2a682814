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
