package pool

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/disagg/server"
)

// ServerError is the failure of one server's call in a pool call: it names
// the server. Err wraps the cause (server.ErrUnusable, ErrServerPanic,
// ErrServerTimeout, the caller's context error, or the server's own error
// about the request).
type ServerError struct {
	Server int    // index in the pool
	Name   string // server.Info.Name
	Err    error
}

func (e *ServerError) Error() string { return e.Name + ": " + e.Err.Error() }
func (e *ServerError) Unwrap() error { return e.Err }

// callServer runs fn, one call of a server, under the per-call deadline d
// within ctx. It recovers a panic of fn as ErrServerPanic. When the deadline
// passes first it returns ErrServerTimeout at once, and when ctx ends first
// it returns ctx's error at once: either way fn is abandoned on its
// goroutine, so a server that ignores its context never blocks the caller.
// A context error that fn returns while ctx is still live is the server's
// own failure to finish in time, and is reported as ErrServerTimeout too.
func callServer[T any](ctx context.Context, d time.Duration, fn func(context.Context) (T, error)) (T, error) {
	cctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1) // buffered: an abandoned call still exits
	go func() {
		var r result
		defer func() {
			if p := recover(); p != nil {
				r = result{err: fmt.Errorf("%w: %v", ErrServerPanic, p)}
			}
			ch <- r
		}()
		r.v, r.err = fn(cctx)
	}()
	var zero T
	select {
	case r := <-ch:
		if r.err != nil && ctx.Err() == nil && isContextErr(r.err) {
			return zero, fmt.Errorf("%w (deadline %v): %w", ErrServerTimeout, d, r.err)
		}
		return r.v, r.err
	case <-cctx.Done():
		if err := ctx.Err(); err != nil {
			return zero, err
		}
		return zero, fmt.Errorf("%w: no reply within %v; the call was abandoned", ErrServerTimeout, d)
	}
}

func isContextErr(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// exclusions returns, for the live servers, why each cannot take any task
// of call a (nil where it can): a throughput prior that is not a positive
// finite number, a tensor limit below one row of Q or K, or below the key
// rows of the call's longest segment with queries (a task's key prefix goes
// to one server call whole).
func (p *Pool) exclusions(live []int, a *attention.Args) []error {
	needK := 0
	for b := range a.Batch() {
		if q, k := a.Segment(b); q > 0 {
			needK = max(needK, k)
		}
	}
	out := make([]error, len(live))
	for r, i := range live {
		if err := p.unfit[i]; err != nil {
			out[r] = err
			continue
		}
		maxBytes := p.infos[i].MaxTensorBytes
		if maxBytes == 0 {
			continue
		}
		lim := batchLimits(a, maxBytes, 0)
		switch {
		case lim.maxQ < 1 || lim.maxK < 1:
			out[r] = fmt.Errorf("its tensor limit of %d bytes is below one row of Q or K (%d or %d bytes)",
				maxBytes, 4*a.NumHeadsQ*a.HeadDim, 4*a.NumHeadsKV*a.HeadDim)
		case lim.maxK < needK:
			out[r] = fmt.Errorf("its tensor limit of %d bytes holds %d key rows, and a segment of the call has %d",
				maxBytes, lim.maxK, needK)
		}
	}
	return out
}

// revive probes, all at once, the servers that are down and due for a
// probe, and returns the names of those that came back. It waits at most
// the probe timeout (or until ctx ends).
func (p *Pool) revive(ctx context.Context) []string {
	backoff, ok := p.opts.probeBackoff()
	if !ok {
		return nil
	}
	now := time.Now()
	p.mu.Lock()
	var due []int
	for i, h := range p.health {
		if !h.Healthy && !h.NextProbe.IsZero() && !now.Before(h.NextProbe) {
			due = append(due, i)
		}
	}
	p.mu.Unlock()
	if len(due) == 0 {
		return nil
	}
	errs := make([]error, len(due))
	var wg sync.WaitGroup
	for k, i := range due {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[k] = p.probe(ctx, i)
		}()
	}
	wg.Wait()
	var back []string
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, i := range due {
		h := &p.health[i]
		if h.Healthy {
			continue
		}
		if errs[k] == nil {
			*h = ServerHealth{Name: p.infos[i].Name, Healthy: true}
			back = append(back, h.Name)
			continue
		}
		if ctx.Err() != nil {
			continue // the caller gave up; no verdict on the server
		}
		h.Probes++
		wait := backoff
		for n := 0; n < h.Probes && wait < MaxProbeBackoff; n++ {
			wait *= 2
		}
		h.NextProbe = time.Now().Add(max(backoff, min(wait, MaxProbeBackoff)))
	}
	return back
}

// probeArgs is the one-row forward call that probes a server without Ping.
var probeArgs = attention.Args{
	CuSeqlensQ: []int32{0, 1}, CuSeqlensK: []int32{0, 1},
	NumHeadsQ: 1, NumHeadsKV: 1, HeadDim: attention.MinHeadDim,
}

// probe checks that server i works again: its Ping, or else a one-row
// forward call whose output must equal its one value row.
func (p *Pool) probe(ctx context.Context, i int) error {
	s, d := p.servers[i], p.opts.probeTimeout()
	if pinger, ok := s.(server.Pinger); ok {
		_, err := callServer(ctx, d, func(ctx context.Context) (struct{}, error) {
			return struct{}{}, pinger.Ping(ctx)
		})
		return err
	}
	a := probeArgs
	q, k, v := []float32{1, 0, 0, 0}, []float32{0, 1, 0, 0}, []float32{0.5, -1, 2, 0.25}
	rep, err := callServer(ctx, d, func(ctx context.Context) (*server.ForwardReply, error) {
		return s.Forward(ctx, &server.ForwardRequest{Args: &a, Q: q, K: k, V: v})
	})
	if err != nil {
		return err
	}
	if rep == nil || len(rep.O) != len(v) || len(rep.LSE) != 1 {
		return fmt.Errorf("%w: malformed probe reply", server.ErrUnusable)
	}
	for j, x := range rep.O {
		if math.Abs(float64(x-v[j])) > 1e-3 {
			return fmt.Errorf("%w: probe output %v, want %v", server.ErrUnusable, rep.O, v)
		}
	}
	return nil
}
