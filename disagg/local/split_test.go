package local

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/attention/gpu"
	"github.com/coreattn/coreattn/disagg/server"
	"github.com/coreattn/coreattn/wgpu"
)

var (
	_ server.Server = (*Server)(nil)
	_ server.Pinger = (*Server)(nil)
)

// TestSplitBelowBufferLimit runs calls whose tensors exceed the server's
// buffer limit: the server splits them (between segments, then between a
// segment's query rows) and returns what one call would, forward and
// backward; a request whose single query row's keys exceed a buffer is
// server.ErrUnusable.
func TestSplitBelowBufferLimit(t *testing.T) {
	ctx := context.Background()
	s, err := OpenServer("small", 0, wgpu.Options{})
	require.NoError(t, err)
	defer s.Close()
	cases := []struct {
		name string
		a    *attention.Args
	}{
		{"causal documents", docs()},
		{"one long causal shard q<k", &attention.Args{CuSeqlensQ: []int32{0, 150}, CuSeqlensK: []int32{0, 230}, NumHeadsQ: 4, NumHeadsKV: 2, HeadDim: 32, Causal: true}},
		{"non-causal", &attention.Args{CuSeqlensQ: []int32{0, 70, 71, 150}, CuSeqlensK: []int32{0, 40, 90, 100}, NumHeadsQ: 4, NumHeadsKV: 2, HeadDim: 32}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.a
			q, k, v, do := inputs(a, uint64(10+i))
			wantO, wantLSE, err := attention.Reference{}.Forward(ctx, a, q, k, v)
			require.NoError(t, err)
			wantDQ, wantDK, wantDV, err := attention.Reference{}.Backward(ctx, a, q, k, v, wantO, wantLSE, do)
			require.NoError(t, err)

			s.limit = 240 * uint64(a.NumHeadsKV*a.HeadDim) * 4 // 240 key rows, 120 query rows per call
			defer func() { s.limit = 0 }()
			require.False(t, s.fits(a), "the case must need a split")
			assert.Equal(t, s.limit, s.Info().MaxTensorBytes)

			fr, err := s.Forward(ctx, &server.ForwardRequest{Args: a, Q: q, K: k, V: v})
			require.NoError(t, err)
			assert.LessOrEqual(t, attention.RelError(fr.O, f64(wantO)), 1e-4, "O")
			assert.LessOrEqual(t, attention.RelError(fr.LSE, f64(wantLSE)), 1e-4, "LSE")
			br, err := s.Backward(ctx, &server.BackwardRequest{Args: a, Q: q, K: k, V: v, O: wantO, LSE: wantLSE, DO: do})
			require.NoError(t, err)
			assert.LessOrEqual(t, attention.RelError(br.DQ, f64(wantDQ)), 1e-4, "dQ")
			assert.LessOrEqual(t, attention.RelError(br.DK, f64(wantDK)), 1e-4, "dK")
			assert.LessOrEqual(t, attention.RelError(br.DV, f64(wantDV)), 1e-4, "dV")
		})
	}

	t.Run("keys of one row above the limit", func(t *testing.T) {
		a := cases[1].a
		q, k, v, _ := inputs(a, 3)
		s.limit = 100 * uint64(a.NumHeadsKV*a.HeadDim) * 4 // fewer than the segment's 230 keys
		defer func() { s.limit = 0 }()
		_, err := s.Forward(ctx, &server.ForwardRequest{Args: a, Q: q, K: k, V: v})
		assert.ErrorIs(t, err, server.ErrUnusable)
		assert.ErrorContains(t, err, "small")
	})
}

// TestPing: a healthy server answers Ping; one whose device was closed is
// server.ErrUnusable.
func TestPing(t *testing.T) {
	ctx := context.Background()
	s, err := OpenServer("p", 0, wgpu.Options{})
	require.NoError(t, err)
	require.NoError(t, s.Ping(ctx))
	require.NoError(t, s.Op().Device().Close())
	assert.ErrorIs(t, s.Ping(ctx), server.ErrUnusable)
	require.NoError(t, s.Close())
	assert.ErrorIs(t, s.Ping(ctx), server.ErrUnusable)
}

// TestSplitOnScratchLimit runs a backward whose tensors fit the buffer
// limit but whose operator's scratch does not (dS stored under a small
// cap: the call fails with wgpu.ErrTooLarge): the server splits it until
// the pieces fit and returns what one call would; where not even one query
// row's scratch fits, the request is server.ErrUnusable, naming the server.
func TestSplitOnScratchLimit(t *testing.T) {
	ctx := context.Background()
	dev, err := wgpu.OpenBest(wgpu.Options{})
	require.NoError(t, err)
	defer dev.Close()
	a := &attention.Args{CuSeqlensQ: []int32{0, 150}, CuSeqlensK: []int32{0, 230}, NumHeadsQ: 4, NumHeadsKV: 2, HeadDim: 32, Causal: true}
	q, k, v, do := inputs(a, 7)
	o, lse, err := attention.Reference{}.Forward(ctx, a, q, k, v)
	require.NoError(t, err)
	wantDQ, wantDK, wantDV, err := attention.Reference{}.Backward(ctx, a, q, k, v, o, lse, do)
	require.NoError(t, err)
	req := &server.BackwardRequest{Args: a, Q: q, K: k, V: v, O: o, LSE: lse, DO: do}

	s := NewServer("capped", gpu.NewWithOptions(dev, gpu.Options{DQ: gpu.DQStored, DSScratch: 128 << 10}))
	require.True(t, s.fits(a), "the tensors must fit")
	_, _, _, err = s.Op().Backward(ctx, a, q, k, v, o, lse, do)
	require.ErrorIs(t, err, wgpu.ErrTooLarge, "the case must need a split")
	br, err := s.Backward(ctx, req)
	require.NoError(t, err)
	assert.LessOrEqual(t, attention.RelError(br.DQ, f64(wantDQ)), 1e-4, "dQ")
	assert.LessOrEqual(t, attention.RelError(br.DK, f64(wantDK)), 1e-4, "dK")
	assert.LessOrEqual(t, attention.RelError(br.DV, f64(wantDV)), 1e-4, "dV")

	tiny := NewServer("tiny", gpu.NewWithOptions(dev, gpu.Options{DQ: gpu.DQStored, DSScratch: 1 << 10}))
	_, err = tiny.Backward(ctx, req)
	assert.ErrorIs(t, err, server.ErrUnusable)
	assert.ErrorIs(t, err, wgpu.ErrTooLarge)
	assert.ErrorContains(t, err, "tiny")
}
