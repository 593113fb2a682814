package wgpu_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/wgpu"
)

// TestCopyAcrossDevices copies between two devices (two logical devices of
// one adapter here, each with its own staging rings) and within one, at
// sizes below, at and beyond the engines' chunk, into poisoned buffers: the
// range holds the source's bytes, the rest its old ones.
func TestCopyAcrossDevices(t *testing.T) {
	a, b := openTest(t), openTest(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(21, 22))
	chunk := int(a.Transfer().Options().ChunkBytes)
	for _, c := range []struct {
		name            string
		n, srcOff, dOff int
		same            bool
	}{
		{"small", 4000, 8, 12, false},
		{"one chunk", chunk, 0, 0, false},
		{"chunks and a tail", 2*chunk + 36, 4, 64, false},
		{"same device", chunk + 8, 4, 16, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dd := b
			if c.same {
				dd = a
			}
			src, srcBytes := poisoned(t, a, a.Transfer(), rng, c.srcOff+c.n+8)
			dst, want := poisoned(t, dd, dd.Transfer(), rng, c.dOff+c.n+20)
			require.NoError(t, wgpu.Copy(ctx, dst, uint64(c.dOff), src, uint64(c.srcOff), uint64(c.n)))
			copy(want[c.dOff:], srcBytes[c.srcOff:c.srcOff+c.n])
			got := make([]byte, len(want))
			require.NoError(t, dd.Transfer().Download(ctx, got, dst, 0))
			require.True(t, string(want) == string(got), "bytes differ")
		})
	}
}

// TestCopyErrors checks Copy's typed errors, and a copy cut short by its
// context, after which both devices still work.
func TestCopyErrors(t *testing.T) {
	a, b := openTest(t), openTest(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(23, 24))
	src, _ := poisoned(t, a, a.Transfer(), rng, 1024)
	dst, _ := poisoned(t, b, b.Transfer(), rng, 1024)
	for _, c := range []struct {
		err error
		is  error
	}{
		{wgpu.Copy(ctx, dst, 2, src, 0, 8), wgpu.ErrMisaligned},
		{wgpu.Copy(ctx, dst, 0, src, 0, 6), wgpu.ErrMisaligned},
		{wgpu.Copy(ctx, dst, 0, src, 1020, 8), wgpu.ErrOutOfRange},
		{wgpu.Copy(ctx, dst, 1020, src, 0, 8), wgpu.ErrOutOfRange},
		{wgpu.Copy(ctx, nil, 0, src, 0, 8), wgpu.ErrReleased},
	} {
		require.ErrorIs(t, c.err, c.is)
	}
	require.NoError(t, wgpu.Copy(ctx, dst, 0, src, 0, 0))
	// Within one buffer is a validation error of the device.
	require.Error(t, wgpu.Copy(ctx, src, 0, src, 512, 256))

	big, bigBytes := poisoned(t, a, a.Transfer(), rng, 40<<20)
	far, err := b.NewBuffer("far", 40<<20)
	require.NoError(t, err)
	defer far.Release()
	for _, after := range []int{1, 2, 4} {
		err := wgpu.Copy(newCountdown(after), far, 0, big, 0, 40<<20)
		require.ErrorIs(t, err, context.Canceled, fmt.Sprint(after))
	}
	require.NoError(t, wgpu.Copy(ctx, far, 0, big, 0, 40<<20))
	got := make([]byte, 40<<20)
	require.NoError(t, b.Transfer().Download(ctx, got, far, 0))
	require.True(t, string(bigBytes) == string(got))

	require.NoError(t, b.Close())
	require.ErrorIs(t, wgpu.Copy(ctx, dst, 0, src, 0, 8), wgpu.ErrClosed)
}
