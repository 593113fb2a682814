package pool

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/disagg"
	"github.com/coreattn/coreattn/disagg/server"
)

// ErrNoHealthyServer is returned, wrapped, by a Pool call that cannot finish
// because every server of the pool has failed.
var ErrNoHealthyServer = errors.New("pool: no healthy attention server left")

// ErrServerPanic is wrapped by the error of a server call that panicked.
// The pool recovers the panic, marks the server down and runs its tasks
// elsewhere.
var ErrServerPanic = errors.New("attention server panicked")

// ErrServerTimeout is wrapped by the error of a server call that overran its
// per-call deadline (see Options.CallTimeoutFloor) or returned a context
// error of its own while the caller's context was still live. The pool
// stops waiting for it (a call that ignores its context is abandoned on its
// goroutine), marks the server down and runs its tasks elsewhere.
var ErrServerTimeout = errors.New("attention server overran its deadline")

// isBadServer reports whether err says that the server, not the request,
// failed: the errors a pool retries on another server.
func isBadServer(err error) bool {
	return errors.Is(err, server.ErrUnusable) || errors.Is(err, ErrServerPanic) || errors.Is(err, ErrServerTimeout)
}

// Defaults of the Options that bound and revive servers.
const (
	// DefaultCallTimeoutFloor is the least time a server call is given.
	DefaultCallTimeoutFloor = 30 * time.Second
	// DefaultCallTimeoutFactor multiplies a call's predicted time.
	DefaultCallTimeoutFactor = 20
	// DefaultProbeBackoff is the wait before a failed server is first
	// probed; it doubles after each failed probe, up to MaxProbeBackoff.
	DefaultProbeBackoff = time.Second
	// MaxProbeBackoff caps the wait between probes of a failed server.
	MaxProbeBackoff = 5 * time.Minute
	// DefaultProbeTimeout bounds one probe.
	DefaultProbeTimeout = 5 * time.Second
)

// Options configure a Pool. The zero value disaggregates with the
// tightest balance the block size allows and the FLOP cost model.
type Options struct {
	// Packing turns disaggregation off: the batch's segments are packed onto
	// the servers in order, equal token counts each, and every server
	// computes the queries it holds (the baseline CAD is measured against).
	Packing bool
	// Epsilon is the scheduler's tolerance (see disagg.Options.Epsilon).
	Epsilon float64
	// BlockSize is the CA-task shard granularity in tokens; 0 means
	// DefaultBlockSize.
	BlockSize int
	// Profiles are measured cost profiles: one shared by every server, or one per
	// server (a nil entry, or no profile at all, selects the FLOP model with
	// the server's server.Info.FLOPS).
	Profiles []*disagg.Profile
	// MaxBatchRows caps the query rows of one server call; a server with more
	// work runs several fused batches, gathering the next while the current
	// one runs. 0 means that only the server's tensor-size limit cuts batches.
	MaxBatchRows int
	// Sequential runs the servers one after another instead of at the same
	// time, so that each one's time is measured alone (a benchmark of logical
	// servers sharing one adapter wants this).
	Sequential bool

	// A server call (one fused batch) runs under a deadline of
	// max(CallTimeoutFloor, CallTimeoutFactor × its predicted time under
	// the cost model), within the caller's context. A call that overruns
	// it fails with ErrServerTimeout: the pool stops waiting at once, even
	// for a server that ignores its context, marks the server down and
	// re-plans its tasks. 0 selects DefaultCallTimeoutFloor and
	// DefaultCallTimeoutFactor; the prior of an unprofiled server can be
	// far off, hence the generous defaults.
	CallTimeoutFloor  time.Duration
	CallTimeoutFactor float64

	// A server marked down is probed (server.Pinger's Ping, or else a
	// one-row forward call, under ProbeTimeout) at the start of the first
	// pool call ProbeBackoff after its failure; a probe that succeeds
	// brings it back, one that fails doubles the wait, up to
	// MaxProbeBackoff. 0 selects DefaultProbeBackoff and
	// DefaultProbeTimeout; a negative ProbeBackoff never probes.
	ProbeBackoff time.Duration
	ProbeTimeout time.Duration
}

// callTimeout is the deadline of a server call predicted to take pred
// seconds.
func (o *Options) callTimeout(pred float64) time.Duration {
	floor, factor := o.CallTimeoutFloor, o.CallTimeoutFactor
	if floor == 0 {
		floor = DefaultCallTimeoutFloor
	}
	if factor == 0 {
		factor = DefaultCallTimeoutFactor
	}
	d := factor * pred
	if !(d > floor.Seconds()) { // also a NaN prediction
		return floor
	}
	if d > (24 * time.Hour).Seconds() {
		return 24 * time.Hour
	}
	return time.Duration(d * float64(time.Second))
}

// probeBackoff is the first wait before probing a failed server; ok is
// false when probing is off.
func (o *Options) probeBackoff() (d time.Duration, ok bool) {
	switch {
	case o.ProbeBackoff < 0:
		return 0, false
	case o.ProbeBackoff == 0:
		return DefaultProbeBackoff, true
	}
	return o.ProbeBackoff, true
}

func (o *Options) probeTimeout() time.Duration {
	if o.ProbeTimeout <= 0 {
		return DefaultProbeTimeout
	}
	return o.ProbeTimeout
}

func (o *Options) check(n int) error {
	if !(o.Epsilon >= 0) {
		return fmt.Errorf("disagg: pool: epsilon %g must be a non-negative number", o.Epsilon)
	}
	if o.BlockSize < 0 {
		return fmt.Errorf("disagg: pool: block size %d must not be negative", o.BlockSize)
	}
	if o.MaxBatchRows < 0 {
		return fmt.Errorf("disagg: pool: max batch rows %d must not be negative", o.MaxBatchRows)
	}
	if o.CallTimeoutFloor < 0 {
		return fmt.Errorf("disagg: pool: call timeout floor %v must not be negative", o.CallTimeoutFloor)
	}
	if !(o.CallTimeoutFactor >= 0) || math.IsInf(o.CallTimeoutFactor, 0) {
		return fmt.Errorf("disagg: pool: call timeout factor %g must be a non-negative number", o.CallTimeoutFactor)
	}
	if o.ProbeTimeout < 0 {
		return fmt.Errorf("disagg: pool: probe timeout %v must not be negative", o.ProbeTimeout)
	}
	if len(o.Profiles) > 1 && len(o.Profiles) != n {
		return fmt.Errorf("disagg: pool: %d profiles for %d servers (want 0, 1 or %d)", len(o.Profiles), n, n)
	}
	for i, p := range o.Profiles {
		if p == nil {
			continue
		}
		if err := p.Validate(); err != nil {
			return fmt.Errorf("disagg: pool: profile %d: %w", i, err)
		}
	}
	return nil
}

// Pool runs core attention of whole global batches on a set of attention
// servers: it cuts the batch into CA-tasks, balances them over the servers
// with the scheduler, runs every server's share as fused varlen batches, all
// servers at once, and returns the outputs in the caller's layout.
//
// When a server fails (it reports server.ErrUnusable, panics, or overruns
// its per-call deadline) it is marked down, its tasks are re-planned onto
// the others and the call still returns the exact result; the server is
// probed later and may come back, as database/sql reopens connections. A
// server that cannot take any task of a call (its tensor limit is below
// one row, or below the call's longest key prefix, or its throughput prior
// is not a positive finite number) is left out of that call's plan, with
// the reason in the Report.
//
// A Pool is safe for concurrent use.
type Pool struct {
	servers []server.Server
	infos   []server.Info
	opts    Options
	// unfit holds, per server, why it can take no call at all (nil: it can).
	unfit []error

	mu     sync.Mutex
	health []ServerHealth
}

// ServerHealth is the state of one server of a pool.
type ServerHealth struct {
	Name    string
	Healthy bool
	// Err is the failure that took the server out of the pool, and Since
	// when it happened; both are zero while the server is healthy.
	Err   error
	Since time.Time
	// NextProbe is when the server is next probed (zero while healthy or
	// when probing is off); Probes counts the failed probes since Since.
	NextProbe time.Time
	Probes    int
}

// New returns a pool over servers. The pool owns them: Close closes
// them.
func New(servers []server.Server, opts Options) (*Pool, error) {
	if len(servers) == 0 {
		return nil, errors.New("disagg: pool needs at least one server")
	}
	if err := opts.check(len(servers)); err != nil {
		return nil, err
	}
	p := &Pool{servers: servers, opts: opts, infos: make([]server.Info, len(servers)),
		unfit: make([]error, len(servers)), health: make([]ServerHealth, len(servers))}
	for i, s := range servers {
		if s == nil {
			return nil, fmt.Errorf("disagg: pool: server %d is nil", i)
		}
		info, err := safeInfo(s)
		if err != nil {
			return nil, fmt.Errorf("disagg: pool: server %d: %w", i, err)
		}
		if info.Name == "" {
			info.Name = fmt.Sprintf("server %d", i)
		}
		p.infos[i] = info
		p.unfit[i] = unfitPrior(info)
		p.health[i] = ServerHealth{Name: info.Name, Healthy: true}
	}
	return p, nil
}

// safeInfo returns s.Info(), turning a panic into an error.
func safeInfo(s server.Server) (info server.Info, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: Info: %v", ErrServerPanic, r)
		}
	}()
	return s.Info(), nil
}

// unfitPrior says why a server's throughput prior rules it out of every
// plan (NaN, infinite or negative FLOPS), or returns nil; 0 selects
// server.DefaultFLOPS as the contract says.
func unfitPrior(info server.Info) error {
	if f := info.FLOPS; math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return fmt.Errorf("throughput prior %g FLOP/s is not a positive finite number", f)
	}
	return nil
}

// Servers describes the pool's servers, in order.
func (p *Pool) Servers() []server.Info { return append([]server.Info(nil), p.infos...) }

// Health reports the state of every server, in order.
func (p *Pool) Health() []ServerHealth {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ServerHealth(nil), p.health...)
}

// Close closes every server and returns their errors joined.
func (p *Pool) Close() error {
	var errs []error
	for _, s := range p.servers {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// live returns the indices of the healthy servers.
func (p *Pool) live() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int
	for i, h := range p.health {
		if h.Healthy {
			out = append(out, i)
		}
	}
	return out
}

// markDown records server i's failure and when to probe it.
func (p *Pool) markDown(i int, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.health[i].Healthy {
		return
	}
	now := time.Now()
	h := ServerHealth{Name: p.infos[i].Name, Err: err, Since: now}
	if d, ok := p.opts.probeBackoff(); ok {
		h.NextProbe = now.Add(d)
	}
	p.health[i] = h
}

// costs returns the cost models of the servers live for calls of model m.
func (p *Pool) costs(live []int, m disagg.Arch) ([]disagg.CostModel, error) {
	out := make([]disagg.CostModel, len(live))
	for r, i := range live {
		var prof *disagg.Profile
		switch len(p.opts.Profiles) {
		case 0:
		case 1:
			prof = p.opts.Profiles[0]
		default:
			prof = p.opts.Profiles[i]
		}
		var err error
		if prof != nil {
			out[r], err = prof.CostModel(m)
		} else {
			flops := p.infos[i].FLOPS
			if !(flops > 0) {
				flops = server.DefaultFLOPS
			}
			out[r], err = disagg.NewFLOPModel(m, flops)
		}
		if err != nil {
			return nil, fmt.Errorf("disagg: pool: %s: %w", p.infos[i].Name, err)
		}
	}
	return out, nil
}

// Report describes one pool call.
type Report struct {
	// Pass is Forward or Backward.
	Pass disagg.Pass
	// Plan is the plan the call started from, over the servers that were
	// healthy then; Final the one it finished with, after re-planning
	// around failures (Plan when none failed). Both are nil for a batch
	// without queries.
	Plan, Final *disagg.Plan
	// Ranks maps a plan's server index to the pool's server index.
	Ranks []int
	// Segments maps a plan's document index to the caller's segment.
	Segments []int
	// Servers holds what each server of the pool did, in pool order.
	Servers []ServerRun
	// Failures lists the servers that failed during the call, in order.
	Failures []Failure
	// Excluded lists the healthy servers left out of the call's plan
	// because they cannot take any of its tasks, with the reason.
	Excluded []Exclusion
	// Revived lists the servers that came back after a probe at the
	// start of the call.
	Revived []string
	// Wall is the call's wall time.
	Wall time.Duration
}

// ServerRun is what one server did in a pool call.
type ServerRun struct {
	Name string
	// Tasks are the CA-tasks the server completed (documents numbered as in
	// the plan; see Report.Segments).
	Tasks []disagg.Task
	// Batches counts the server's calls (fused batches); QRows and KRows the
	// query and key rows they held.
	Batches      int
	QRows, KRows int
	// Predicted is the server's predicted seconds in the final plan.
	Predicted float64
	// Stats sums the server's call times.
	Stats attention.Stats
}

// Exclusion is a server left out of a call's plan.
type Exclusion struct {
	Server int
	Name   string
	Reason error
}

// Failure is a server that failed during a call.
type Failure struct {
	Server int
	Name   string
	Err    error
	// Replanned counts the tasks the server had not finished, which went
	// to other servers.
	Replanned int
}

// Forward computes O [total_q, Hq, D] and LSE [Hq, total_q] of the varlen
// call a over the pool, exactly as the GPU operator (gpu.Op.Forward) would
// on one device.
func (p *Pool) Forward(ctx context.Context, a *attention.Args, q, k, v []float32) (o, lse []float32, err error) {
	o, lse, _, err = p.ForwardReport(ctx, a, q, k, v)
	return o, lse, err
}

// ForwardReport is Forward that also reports how the call was planned and
// run.
func (p *Pool) ForwardReport(ctx context.Context, a *attention.Args, q, k, v []float32) (o, lse []float32, rep *Report, err error) {
	if err := checkCall(a, q, k, v); err != nil {
		return nil, nil, nil, err
	}
	t := &tensors{a: a, q: q, k: k, v: v}
	c := &call{pool: p, pass: disagg.PassForward, t: t, o: make([]float32, len(q)), lse: make([]float32, a.NumHeadsQ*a.TotalQ())}
	rep, err = c.run(ctx)
	if err != nil {
		return nil, nil, rep, err
	}
	return c.o, c.lse, rep, nil
}

// Backward computes dQ [total_q, Hq, D], dK and dV [total_k, Hkv, D] of the
// varlen call a over the pool from the forward's inputs, its outputs O and
// LSE, and the upstream gradient dO. dK and dV of key rows shared by several
// CA-tasks are the sums of the tasks' contributions.
func (p *Pool) Backward(ctx context.Context, a *attention.Args, q, k, v, o, lse, do []float32) (dq, dk, dv []float32, err error) {
	dq, dk, dv, _, err = p.BackwardReport(ctx, a, q, k, v, o, lse, do)
	return dq, dk, dv, err
}

// BackwardReport is Backward that also reports how the call was planned and
// run.
func (p *Pool) BackwardReport(ctx context.Context, a *attention.Args, q, k, v, o, lse, do []float32) (dq, dk, dv []float32, rep *Report, err error) {
	if err := checkCall(a, q, k, v); err != nil {
		return nil, nil, nil, nil, err
	}
	if len(o) != len(q) || len(do) != len(q) {
		return nil, nil, nil, nil, fmt.Errorf("disagg: pool backward: o and do hold %d and %d elements, want %d like q", len(o), len(do), len(q))
	}
	if n := a.NumHeadsQ * a.TotalQ(); len(lse) != n {
		return nil, nil, nil, nil, fmt.Errorf("disagg: pool backward: lse holds %d elements, want Hq*total_q = %d", len(lse), n)
	}
	t := &tensors{a: a, q: q, k: k, v: v, o: o, lse: lse, do: do}
	c := &call{pool: p, pass: disagg.PassBackward, t: t, dq: make([]float32, len(q)), dk64: make([]float64, len(k)), dv64: make([]float64, len(v))}
	rep, err = c.run(ctx)
	if err != nil {
		return nil, nil, nil, rep, err
	}
	dk, dv = make([]float32, len(k)), make([]float32, len(v))
	for i := range dk {
		dk[i], dv[i] = float32(c.dk64[i]), float32(c.dv64[i])
	}
	return c.dq, dk, dv, rep, nil
}

// checkCall validates a call before any server sees it: a bad argument is
// the caller's, and is never retried.
func checkCall(a *attention.Args, q, k, v []float32) error {
	if a == nil {
		return errors.New("disagg: pool: attention arguments are nil")
	}
	if err := a.Validate(); err != nil {
		return err
	}
	return a.CheckSizes(len(q), len(k), len(v))
}
