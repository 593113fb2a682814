package wgpu_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/wgpu"
)

// TestTooLarge: a buffer beyond the device's limit for one buffer is
// wgpu.ErrTooLarge (a caller may split its work), named, and refused
// before anything is allocated; other failures are not.
func TestTooLarge(t *testing.T) {
	d := openTest(t)
	for _, size := range []uint64{d.MaxBufferBytes() + 1, d.MaxBufferBytes() + 16, 1 << 62} {
		_, err := d.NewBuffer("huge", size)
		require.ErrorIs(t, err, wgpu.ErrTooLarge, "%d bytes", size)
		assert.ErrorContains(t, err, "huge")
	}
	b, err := d.NewBuffer("fits", 64)
	require.NoError(t, err)
	b.Release()
	_, err = wgpu.UploadUniform(d, "odd", []float32{1, 2, 3})
	require.Error(t, err)
	assert.False(t, errors.Is(err, wgpu.ErrTooLarge), "a malformed uniform is not a size limit: %v", err)
	require.NoError(t, d.Close())
	_, err = d.NewBuffer("after close", 16)
	assert.False(t, errors.Is(err, wgpu.ErrTooLarge), "a closed device is not a size limit: %v", err)
}
