package pool

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/disagg/server"
)

// fakeServer is a reference server whose calls first run hook (with the
// call's number, from 1), which may fail, panic, sleep or block; its Info
// can be overridden.
type fakeServer struct {
	refServer
	info  *server.Info
	hook  func(ctx context.Context, call int32) error
	calls atomic.Int32
}

func (f *fakeServer) Info() server.Info {
	if f.info != nil {
		return *f.info
	}
	return f.refServer.Info()
}

func (f *fakeServer) before(ctx context.Context) error {
	n := f.calls.Add(1)
	if f.hook == nil {
		return nil
	}
	return f.hook(ctx, n)
}

func (f *fakeServer) Forward(ctx context.Context, req *server.ForwardRequest) (*server.ForwardReply, error) {
	if err := f.before(ctx); err != nil {
		return nil, err
	}
	return f.refServer.Forward(ctx, req)
}

func (f *fakeServer) Backward(ctx context.Context, req *server.BackwardRequest) (*server.BackwardReply, error) {
	if err := f.before(ctx); err != nil {
		return nil, err
	}
	return f.refServer.Backward(ctx, req)
}

// pingServer is a fakeServer with a Ping method (server.Pinger).
type pingServer struct {
	*fakeServer
	ping  func(call int32) error
	pings atomic.Int32
}

func (p *pingServer) Ping(ctx context.Context) error { return p.ping(p.pings.Add(1)) }

// robustCase is the batch the robustness tests run, with its reference
// outputs.
type robustCase struct {
	a          *attention.Args
	in         *poolInputs
	wantO, lse []float32
}

func newRobustCase(t *testing.T) *robustCase {
	t.Helper()
	a := poolCase{qLens: []int{90, 37, 64, 1}, hq: 2, hkv: 1, d: 16, causal: true}.args()
	in := newPoolInputs(a, 5)
	o, lse, err := attention.Reference{}.Forward(context.Background(), a, in.q, in.k, in.v)
	require.NoError(t, err)
	return &robustCase{a: a, in: in, wantO: o, lse: lse}
}

// forward runs the case on p and checks the result is exact.
func (c *robustCase) forward(t *testing.T, ctx context.Context, p *Pool) *Report {
	t.Helper()
	o, lse, rep, err := p.ForwardReport(ctx, c.a, c.in.q, c.in.k, c.in.v)
	require.NoError(t, err)
	assert.LessOrEqual(t, attention.RelError(o, f64(c.wantO)), poolTol, "O")
	assert.LessOrEqual(t, attention.RelError(lse, f64(c.lse)), poolTol, "LSE")
	return rep
}

// fakePool returns a pool of three fake servers; server 1 gets hook and
// info.
func fakePool(t *testing.T, opts Options, hook func(context.Context, int32) error, info *server.Info) (*Pool, []*fakeServer) {
	t.Helper()
	fs := make([]*fakeServer, 3)
	ss := make([]server.Server, 3)
	for i := range fs {
		fs[i] = &fakeServer{refServer: refServer{name: fmt.Sprintf("server %d", i)}}
		ss[i] = fs[i]
	}
	fs[1].hook, fs[1].info = hook, info
	p, err := New(ss, opts)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return p, fs
}

// TestRobustServerFailsOver: a server that panics, hangs ignoring its
// context, overruns its deadline, or times out on its own is marked down and
// named, and its tasks run elsewhere; the caller gets the exact result
// without waiting for the hung call.
func TestRobustServerFailsOver(t *testing.T) {
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	tests := []struct {
		name string
		hook func(ctx context.Context, call int32) error
		want error
	}{
		{"panics", func(context.Context, int32) error { panic("injected server bug") }, ErrServerPanic},
		{"hangs ignoring its context", func(context.Context, int32) error { <-block; return nil }, ErrServerTimeout},
		{"slow past its deadline", func(ctx context.Context, _ int32) error {
			<-ctx.Done()
			return ctx.Err()
		}, ErrServerTimeout},
		{"times out on its own", func(context.Context, int32) error {
			return fmt.Errorf("remote: %w", context.DeadlineExceeded)
		}, ErrServerTimeout},
		{"unusable", func(context.Context, int32) error {
			return fmt.Errorf("device lost: %w", server.ErrUnusable)
		}, server.ErrUnusable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newRobustCase(t)
			opts := Options{BlockSize: 16, CallTimeoutFloor: 200 * time.Millisecond, CallTimeoutFactor: 1e-9, ProbeBackoff: -1}
			p, fs := fakePool(t, opts, tt.hook, nil)
			start := time.Now()
			rep := c.forward(t, context.Background(), p)
			assert.Less(t, time.Since(start), 10*time.Second, "the hung call was not waited for")
			require.Len(t, rep.Failures, 1)
			f := rep.Failures[0]
			assert.Equal(t, "server 1", f.Name)
			assert.ErrorIs(t, f.Err, tt.want)
			var se *ServerError
			require.ErrorAs(t, f.Err, &se)
			assert.Equal(t, 1, se.Server)
			assert.Contains(t, f.Err.Error(), "server 1", "the error names the server")
			assert.Positive(t, f.Replanned)
			h := p.Health()
			assert.False(t, h[1].Healthy)
			assert.ErrorIs(t, h[1].Err, tt.want)
			assert.True(t, h[0].Healthy && h[2].Healthy)

			// The next call plans around it.
			calls := fs[1].calls.Load()
			rep = c.forward(t, context.Background(), p)
			assert.Equal(t, []int{0, 2}, rep.Ranks)
			assert.Equal(t, calls, fs[1].calls.Load())
		})
	}
}

// TestRobustSlowServerKept: a server slower than the others but within its
// deadline is not taken down.
func TestRobustSlowServerKept(t *testing.T) {
	c := newRobustCase(t)
	p, fs := fakePool(t, Options{BlockSize: 16, CallTimeoutFloor: 5 * time.Second}, func(ctx context.Context, _ int32) error {
		select {
		case <-time.After(30 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, nil)
	rep := c.forward(t, context.Background(), p)
	assert.Empty(t, rep.Failures)
	assert.Positive(t, fs[1].calls.Load())
	assert.True(t, p.Health()[1].Healthy)
}

// TestRobustCallerDeadline: a server that hangs past the caller's deadline
// does not hold the caller (even when it ignores its context); the error
// names the server and wraps the caller's context error, and the server is
// not blamed for the caller's deadline.
func TestRobustCallerDeadline(t *testing.T) {
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	c := newRobustCase(t)
	p, _ := fakePool(t, Options{BlockSize: 16, CallTimeoutFloor: time.Hour}, func(context.Context, int32) error {
		<-block
		return nil
	}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := p.Forward(ctx, c.a, c.in.q, c.in.k, c.in.v)
	assert.Less(t, time.Since(start), 5*time.Second, "returned at the caller's deadline")
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	var se *ServerError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "server 1", se.Name)
	assert.Contains(t, err.Error(), "server 1")
	assert.True(t, p.Health()[1].Healthy, "the caller's deadline is not the server's fault")
}

// TestRobustUnfitServerExcluded: a server that cannot take any task is left
// out of the plan with a reason, never called, and the call succeeds on the
// others.
func TestRobustUnfitServerExcluded(t *testing.T) {
	tests := []struct {
		name string
		info server.Info
	}{
		{"tensor limit below one row", server.Info{Name: "tiny", MaxTensorBytes: 64}},
		{"tensor limit below the longest segment", server.Info{Name: "short", MaxTensorBytes: 4 * 16 * 50}},
		{"infinite FLOPS prior", server.Info{Name: "inf", FLOPS: math.Inf(1)}},
		{"NaN FLOPS prior", server.Info{Name: "nan", FLOPS: math.NaN()}},
		{"negative FLOPS prior", server.Info{Name: "neg", FLOPS: -1e12}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newRobustCase(t)
			info := tt.info
			p, fs := fakePool(t, Options{BlockSize: 16}, nil, &info)
			rep := c.forward(t, context.Background(), p)
			require.Len(t, rep.Excluded, 1)
			assert.Equal(t, tt.info.Name, rep.Excluded[0].Name)
			assert.Equal(t, 1, rep.Excluded[0].Server)
			assert.Error(t, rep.Excluded[0].Reason)
			assert.Equal(t, []int{0, 2}, rep.Ranks)
			assert.Zero(t, fs[1].calls.Load(), "never called")
			assert.Empty(t, rep.Failures)
			assert.True(t, p.Health()[1].Healthy, "excluded, not failed")
		})
	}

	t.Run("every server unfit", func(t *testing.T) {
		c := newRobustCase(t)
		tiny := server.Info{MaxTensorBytes: 16}
		ss := []server.Server{&fakeServer{refServer: refServer{name: "a"}, info: &tiny}}
		p, err := New(ss, Options{})
		require.NoError(t, err)
		_, _, err = p.Forward(context.Background(), c.a, c.in.q, c.in.k, c.in.v)
		assert.ErrorIs(t, err, ErrNoHealthyServer)
	})
}

// TestRobustServerComesBack: a failed server is probed after its back-off
// and, once a probe succeeds, takes work again; a failed probe doubles the
// wait.
func TestRobustServerComesBack(t *testing.T) {
	t.Run("probe by a tiny call", func(t *testing.T) {
		c := newRobustCase(t)
		var broken atomic.Bool
		broken.Store(true)
		p, fs := fakePool(t, Options{BlockSize: 16, ProbeBackoff: 20 * time.Millisecond}, func(context.Context, int32) error {
			if broken.Load() {
				return fmt.Errorf("injected: %w", server.ErrUnusable)
			}
			return nil
		}, nil)
		rep := c.forward(t, context.Background(), p)
		require.Len(t, rep.Failures, 1)
		h := p.Health()[1]
		require.False(t, h.Healthy)
		assert.False(t, h.NextProbe.IsZero())

		// Still broken at the probe: it stays down, with a longer wait.
		time.Sleep(30 * time.Millisecond)
		rep = c.forward(t, context.Background(), p)
		assert.Empty(t, rep.Revived)
		h2 := p.Health()[1]
		assert.False(t, h2.Healthy)
		assert.Equal(t, 1, h2.Probes)
		assert.GreaterOrEqual(t, h2.NextProbe.Sub(h.NextProbe), 30*time.Millisecond, "back-off doubled")

		broken.Store(false)
		time.Sleep(60 * time.Millisecond)
		before := fs[1].calls.Load()
		rep = c.forward(t, context.Background(), p)
		assert.Equal(t, []string{"server 1"}, rep.Revived)
		assert.True(t, p.Health()[1].Healthy)
		assert.Equal(t, []int{0, 1, 2}, rep.Ranks)
		assert.Greater(t, fs[1].calls.Load(), before+1, "probed, then given work")
		assert.NotEmpty(t, rep.Servers[1].Tasks)
	})

	t.Run("probe by Ping", func(t *testing.T) {
		c := newRobustCase(t)
		fs := make([]*fakeServer, 2)
		ss := make([]server.Server, 2)
		for i := range fs {
			fs[i] = &fakeServer{refServer: refServer{name: fmt.Sprintf("server %d", i)}}
			ss[i] = fs[i]
		}
		fs[1].hook = func(_ context.Context, n int32) error {
			if n == 1 {
				return fmt.Errorf("injected: %w", server.ErrUnusable)
			}
			return nil
		}
		ps := &pingServer{fakeServer: fs[1], ping: func(int32) error { return nil }}
		ss[1] = ps
		p, err := New(ss, Options{BlockSize: 16, ProbeBackoff: time.Millisecond})
		require.NoError(t, err)
		defer p.Close()
		rep := c.forward(t, context.Background(), p)
		require.Len(t, rep.Failures, 1)
		time.Sleep(5 * time.Millisecond)
		rep = c.forward(t, context.Background(), p)
		assert.Equal(t, []string{"server 1"}, rep.Revived)
		assert.Equal(t, int32(1), ps.pings.Load(), "probed with Ping")
		assert.Empty(t, rep.Failures)
	})

	t.Run("probe off", func(t *testing.T) {
		c := newRobustCase(t)
		p, _ := fakePool(t, Options{BlockSize: 16, ProbeBackoff: -1}, func(_ context.Context, n int32) error {
			if n == 1 {
				return fmt.Errorf("injected: %w", server.ErrUnusable)
			}
			return nil
		}, nil)
		c.forward(t, context.Background(), p)
		time.Sleep(5 * time.Millisecond)
		rep := c.forward(t, context.Background(), p)
		assert.Empty(t, rep.Revived)
		assert.False(t, p.Health()[1].Healthy)
	})
}

// TestRobustOptionsRejected: the new options are checked.
func TestRobustOptionsRejected(t *testing.T) {
	for _, o := range []Options{
		{CallTimeoutFloor: -time.Second},
		{CallTimeoutFactor: -1},
		{CallTimeoutFactor: math.NaN()},
		{CallTimeoutFactor: math.Inf(1)},
		{ProbeTimeout: -time.Second},
	} {
		_, err := New(refServers(2), o)
		assert.Error(t, err, "%+v", o)
	}
}

// TestCallTimeout checks the per-call deadline: the floor, the factor, and
// a bound on absurd predictions.
func TestCallTimeout(t *testing.T) {
	var o Options
	assert.Equal(t, DefaultCallTimeoutFloor, o.callTimeout(0))
	assert.Equal(t, DefaultCallTimeoutFloor, o.callTimeout(math.NaN()))
	assert.Equal(t, time.Duration(DefaultCallTimeoutFactor*100)*time.Second, o.callTimeout(100))
	assert.Equal(t, 24*time.Hour, o.callTimeout(1e300))
	o = Options{CallTimeoutFloor: time.Second, CallTimeoutFactor: 2}
	assert.Equal(t, time.Second, o.callTimeout(0.1))
	assert.Equal(t, 6*time.Second, o.callTimeout(3))
}

// TestServerErrorUnwraps checks ServerError's chain.
func TestServerErrorUnwraps(t *testing.T) {
	err := fmt.Errorf("pool: %w", &ServerError{Server: 2, Name: "gpu 2", Err: ErrServerPanic})
	assert.True(t, errors.Is(err, ErrServerPanic))
	assert.True(t, isBadServer(err))
	assert.False(t, isBadServer(&ServerError{Name: "x", Err: context.Canceled}))
	assert.Equal(t, "pool: gpu 2: "+ErrServerPanic.Error(), err.Error())
}
