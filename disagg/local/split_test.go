package local

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/attention"
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
