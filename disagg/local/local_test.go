package local

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/attention/gpu"
	"github.com/coreattn/coreattn/disagg/pool"
	"github.com/coreattn/coreattn/disagg/server"
	"github.com/coreattn/coreattn/wgpu"
)

// docs is a causal packed batch of five documents, GQA 2:1.
func docs() *attention.Args {
	return &attention.Args{
		CuSeqlensQ: []int32{0, 200, 237, 327, 328, 478},
		CuSeqlensK: []int32{0, 200, 237, 327, 328, 478},
		NumHeadsQ:  4, NumHeadsKV: 2, HeadDim: 32, Causal: true,
	}
}

func randn(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

func f64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

func inputs(a *attention.Args, seed uint64) (q, k, v, do []float32) {
	rng := rand.New(rand.NewPCG(seed, 7))
	nq, nk := a.TotalQ()*a.NumHeadsQ*a.HeadDim, a.TotalK()*a.NumHeadsKV*a.HeadDim
	return randn(rng, nq), randn(rng, nk), randn(rng, nk), randn(rng, nq)
}

// TestPoolMatchesOneDevice runs a batch through a pool of three logical
// servers on the best adapter (lavapipe in CI), with CAD and with packing,
// and compares with the operator on the same adapter in one call.
func TestPoolMatchesOneDevice(t *testing.T) {
	ctx := context.Background()
	servers, err := OpenServers(ctx, 3, Placement{Adapters: []int{0}})
	require.NoError(t, err)
	op := servers[0].(*Server).Op()
	a := docs()
	q, k, v, do := inputs(a, 1)
	wantO, wantLSE, err := op.Forward(ctx, a, q, k, v)
	require.NoError(t, err)
	wantDQ, wantDK, wantDV, err := op.Backward(ctx, a, q, k, v, wantO, wantLSE, do)
	require.NoError(t, err)
	for _, opts := range []pool.Options{{BlockSize: 16}, {BlockSize: 16, Packing: true}} {
		p, err := pool.New(servers, opts)
		require.NoError(t, err)
		o, lse, rep, err := p.ForwardReport(ctx, a, q, k, v)
		require.NoError(t, err)
		assert.LessOrEqual(t, attention.RelError(o, f64(wantO)), 1e-5, "O, packing %v", opts.Packing)
		assert.LessOrEqual(t, attention.RelError(lse, f64(wantLSE)), 1e-5, "LSE")
		busy := 0
		for _, s := range rep.Servers {
			if s.QRows > 0 {
				busy++
				assert.Positive(t, s.Stats.Total, "%s reports its time", s.Name)
			}
		}
		assert.GreaterOrEqual(t, busy, 2, "the work is spread")
		dq, dk, dv, _, err := p.BackwardReport(ctx, a, q, k, v, wantO, wantLSE, do)
		require.NoError(t, err)
		assert.LessOrEqual(t, attention.RelError(dq, f64(wantDQ)), 1e-5, "dQ")
		assert.LessOrEqual(t, attention.RelError(dk, f64(wantDK)), 1e-5, "dK")
		assert.LessOrEqual(t, attention.RelError(dv, f64(wantDV)), 1e-5, "dV")
	}
	for _, s := range servers {
		require.NoError(t, s.Close())
	}
}

// TestClosedDeviceIsUnusable: a server whose device was closed under it (by
// another owner, or by Close during a call) reports server.ErrUnusable, so a
// pool re-plans its tasks instead of failing the call.
func TestClosedDeviceIsUnusable(t *testing.T) {
	ctx := context.Background()
	healthy, err := OpenServer("healthy", 0, wgpu.Options{})
	require.NoError(t, err)
	dying, err := OpenServer("dying", 0, wgpu.Options{})
	require.NoError(t, err)
	a := docs()
	q, k, v, _ := inputs(a, 2)

	require.NoError(t, dying.Op().Device().Close())
	_, err = dying.Forward(ctx, &server.ForwardRequest{Args: a, Q: q, K: k, V: v})
	require.ErrorIs(t, err, server.ErrUnusable)
	require.ErrorIs(t, err, wgpu.ErrClosed)

	p, err := pool.New([]server.Server{healthy, dying}, pool.Options{BlockSize: 16})
	require.NoError(t, err)
	defer p.Close()
	o, _, rep, err := p.ForwardReport(ctx, a, q, k, v)
	require.NoError(t, err, "the pool re-plans around the closed device")
	want, _, err := attention.Reference{}.Forward(ctx, a, q, k, v)
	require.NoError(t, err)
	assert.LessOrEqual(t, attention.RelError(o, f64(want)), 1e-5)
	if assert.Len(t, rep.Failures, 1) {
		assert.Equal(t, "dying", rep.Failures[0].Name)
		assert.ErrorIs(t, rep.Failures[0].Err, server.ErrUnusable)
	}
}

// TestCloseDuringCall closes a server while its call runs: the call either
// finishes or fails as unusable, never with an error a pool would take for
// the request's fault.
func TestCloseDuringCall(t *testing.T) {
	ctx := context.Background()
	a := docs()
	q, k, v, _ := inputs(a, 3)
	for range 3 {
		s, err := OpenServer("s", 0, wgpu.Options{})
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() {
			_, err := s.Forward(ctx, &server.ForwardRequest{Args: a, Q: q, K: k, V: v})
			done <- err
		}()
		require.NoError(t, s.Close())
		if err := <-done; err != nil {
			assert.ErrorIs(t, err, server.ErrUnusable)
		}
	}
}

// TestNewServerLeavesDeviceOpen: a server made over the caller's operator
// runs it, and closing the server leaves the caller's device usable.
func TestNewServerLeavesDeviceOpen(t *testing.T) {
	ctx := context.Background()
	dev, err := wgpu.Open(0, wgpu.Options{})
	require.NoError(t, err)
	defer dev.Close()
	op := gpu.New(dev)
	a := docs()
	q, k, v, _ := inputs(a, 4)
	want, _, err := attention.Reference{}.Forward(ctx, a, q, k, v)
	require.NoError(t, err)

	s := NewServer("borrowed", op)
	rep, err := s.Forward(ctx, &server.ForwardRequest{Args: a, Q: q, K: k, V: v})
	require.NoError(t, err)
	assert.LessOrEqual(t, attention.RelError(rep.O, f64(want)), 1e-5)
	require.NoError(t, s.Close())

	_, err = s.Forward(ctx, &server.ForwardRequest{Args: a, Q: q, K: k, V: v})
	assert.ErrorIs(t, err, server.ErrUnusable, "the closed server refuses work")
	o, _, err := op.Forward(ctx, a, q, k, v)
	require.NoError(t, err, "the device outlives the server")
	assert.LessOrEqual(t, attention.RelError(o, f64(want)), 1e-5)
}
