package pool

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/disagg/server"
)

// faultServer wraps a server and fails its failOn-th call and every later
// one with err (failOn 0: never).
type faultServer struct {
	server.Server
	failOn int32
	err    error
	calls  atomic.Int32
}

func (f *faultServer) fail() error {
	if n := f.calls.Add(1); f.failOn > 0 && n >= f.failOn {
		return f.err
	}
	return nil
}

func (f *faultServer) Forward(ctx context.Context, req *server.ForwardRequest) (*server.ForwardReply, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Server.Forward(ctx, req)
}

func (f *faultServer) Backward(ctx context.Context, req *server.BackwardRequest) (*server.BackwardReply, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Server.Backward(ctx, req)
}

// faultPool returns a pool of n logical servers, each wrapped in a
// faultServer built by mk.
func faultPool(t *testing.T, n int, opts Options, mk func(i int) (failOn int32, err error)) (*Pool, []*faultServer, attention.Runner) {
	ls := refServers(n)
	fs := make([]*faultServer, n)
	p := newTestPool(t, ls, opts, func(i int, s server.Server) server.Server {
		on, err := mk(i)
		fs[i] = &faultServer{Server: s, failOn: on, err: err}
		return fs[i]
	})
	t.Cleanup(func() { p.Close() })
	return p, fs, attention.Reference{}
}

func TestFaultServerKilledMidBatch(t *testing.T) {
	lost := fmt.Errorf("injected device loss: %w", server.ErrUnusable)
	opts := Options{BlockSize: 16, MaxBatchRows: 32}
	p, fs, ref := faultPool(t, 3, opts, func(i int) (int32, error) {
		if i == 1 {
			return 2, lost // server 1 finishes its first batch, then its device is lost
		}
		return 0, nil
	})
	ctx := context.Background()
	a := poolCase{qLens: []int{200, 37, 90, 1, 150}, hq: 4, hkv: 2, d: 32, causal: true}.args()
	in := newPoolInputs(a, 7)
	wantO, wantLSE, err := ref.Forward(ctx, a, in.q, in.k, in.v)
	require.NoError(t, err)

	o, lse, rep, err := p.ForwardReport(ctx, a, in.q, in.k, in.v)
	require.NoError(t, err)
	assert.LessOrEqual(t, attention.RelError(o, f64(wantO)), poolTol, "O")
	assert.LessOrEqual(t, attention.RelError(lse, f64(wantLSE)), poolTol, "LSE")
	checkAccounted(t, rep)

	require.Len(t, rep.Failures, 1)
	f := rep.Failures[0]
	assert.Equal(t, 1, f.Server)
	assert.ErrorIs(t, f.Err, server.ErrUnusable)
	planned := len(rep.Plan.Tasks[1])
	done := len(rep.Servers[1].Tasks)
	assert.Equal(t, int32(2), fs[1].calls.Load(), "server 1 ran one batch and failed on the second")
	assert.Positive(t, done, "server 1 finished some tasks before it died")
	assert.Less(t, done, planned)
	assert.Equal(t, planned-done, f.Replanned)
	assert.Empty(t, rep.Final.Tasks[1], "nothing left on the dead server")

	h := p.Health()
	assert.True(t, h[0].Healthy)
	assert.False(t, h[1].Healthy)
	assert.ErrorIs(t, h[1].Err, server.ErrUnusable)
	assert.True(t, h[2].Healthy)

	// The next call plans around the dead server from the start.
	o2, _, rep2, err := p.ForwardReport(ctx, a, in.q, in.k, in.v)
	require.NoError(t, err)
	assert.LessOrEqual(t, attention.RelError(o2, f64(wantO)), poolTol)
	assert.Equal(t, []int{0, 2}, rep2.Ranks)
	assert.Empty(t, rep2.Failures)
	assert.Equal(t, int32(2), fs[1].calls.Load(), "the dead server gets no more calls")

	t.Run("backward", func(t *testing.T) {
		wantDQ, wantDK, wantDV, err := ref.Backward(ctx, a, in.q, in.k, in.v, wantO, wantLSE, in.do)
		require.NoError(t, err)
		// Server 0 dies half way through its backward share.
		fs[0].calls.Store(0)
		fs[0].failOn, fs[0].err = 2, fmt.Errorf("injected: %w", server.ErrUnusable)
		dq, dk, dv, rep, err := p.BackwardReport(ctx, a, in.q, in.k, in.v, wantO, wantLSE, in.do)
		require.NoError(t, err)
		require.Len(t, rep.Failures, 1)
		checkAccounted(t, rep)
		assert.LessOrEqual(t, attention.RelError(dq, f64(wantDQ)), poolTol, "dQ")
		assert.LessOrEqual(t, attention.RelError(dk, f64(wantDK)), poolTol, "dK")
		assert.LessOrEqual(t, attention.RelError(dv, f64(wantDV)), poolTol, "dV")
	})
}

func TestFaultAllServersDead(t *testing.T) {
	p, fs, _ := faultPool(t, 3, Options{BlockSize: 16}, func(i int) (int32, error) {
		return 1, fmt.Errorf("injected failure of server %d: %w", i, server.ErrUnusable)
	})
	a := poolCase{qLens: []int{64, 40}, hq: 2, hkv: 1, d: 16, causal: true}.args()
	in := newPoolInputs(a, 1)
	_, _, rep, err := p.ForwardReport(context.Background(), a, in.q, in.k, in.v)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrNoHealthyServer)
	assert.ErrorIs(t, err, server.ErrUnusable, "the last failure is wrapped")
	assert.Contains(t, err.Error(), "no healthy attention server")
	assert.Len(t, rep.Failures, 3)
	for i, h := range p.Health() {
		assert.False(t, h.Healthy, "server %d", i)
	}
	calls := fs[0].calls.Load() + fs[1].calls.Load() + fs[2].calls.Load()

	_, _, err = p.Forward(context.Background(), a, in.q, in.k, in.v)
	assert.ErrorIs(t, err, ErrNoHealthyServer)
	assert.Equal(t, calls, fs[0].calls.Load()+fs[1].calls.Load()+fs[2].calls.Load(), "no server is called once all are down")
}

func TestFaultValidationNotRetried(t *testing.T) {
	ctx := context.Background()
	a := poolCase{qLens: []int{64, 40}, hq: 2, hkv: 1, d: 16, causal: true}.args()
	in := newPoolInputs(a, 1)

	t.Run("bad arguments", func(t *testing.T) {
		p, fs, _ := faultPool(t, 2, Options{}, func(int) (int32, error) { return 0, nil })
		bad := *a
		bad.HeadDim = 5
		_, _, err := p.Forward(ctx, &bad, in.q, in.k, in.v)
		assert.ErrorContains(t, err, "5")
		_, _, err = p.Forward(ctx, a, in.q[1:], in.k, in.v)
		assert.Error(t, err)
		_, _, _, err = p.Backward(ctx, a, in.q, in.k, in.v, in.q, nil, in.do)
		assert.ErrorContains(t, err, "lse")
		for i, f := range fs {
			assert.Zero(t, f.calls.Load(), "server %d called", i)
		}
		for _, h := range p.Health() {
			assert.True(t, h.Healthy)
		}
	})

	t.Run("request rejected by a server", func(t *testing.T) {
		rejected := errors.New("request rejected")
		p, fs, _ := faultPool(t, 3, Options{BlockSize: 16, Sequential: true}, func(i int) (int32, error) {
			if i == 0 {
				return 1, rejected
			}
			return 0, nil
		})
		_, _, rep, err := p.ForwardReport(ctx, a, in.q, in.k, in.v)
		assert.ErrorIs(t, err, rejected)
		assert.NotErrorIs(t, err, ErrNoHealthyServer)
		assert.Empty(t, rep.Failures)
		assert.Equal(t, int32(1), fs[0].calls.Load(), "not retried")
		assert.Zero(t, fs[1].calls.Load()+fs[2].calls.Load(), "the call stopped at the first error (sequential)")
		for _, h := range p.Health() {
			assert.True(t, h.Healthy, "%s", h.Name)
		}
	})
}
