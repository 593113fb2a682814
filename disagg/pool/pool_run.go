package pool

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/disagg"
	"github.com/coreattn/coreattn/disagg/server"
	"golang.org/x/sync/errgroup"
)

// call is one pool call in flight: its inputs, the outputs being filled in,
// and (backward) the float64 accumulators of dK and dV, which CA-tasks
// sharing key rows add into.
type call struct {
	pool *Pool
	pass disagg.Pass
	t    *tensors

	o, lse, dq []float32 // rows are written by exactly one task each

	mu         sync.Mutex // guards dk64 and dv64
	dk64, dv64 []float64
}

// rankResult is what one server did in one round.
type rankResult struct {
	tasks        []disagg.Task // completed
	batches      int
	qRows, kRows int
	stats        attention.Stats
	err          error // the call that failed, if any
}

// run plans the call, runs it round by round until every task is done, and
// re-plans after each round in which servers failed.
func (c *call) run(ctx context.Context) (rep *Report, err error) {
	start := time.Now()
	p := c.pool
	rep = &Report{Pass: c.pass, Servers: make([]ServerRun, len(p.servers))}
	defer func() { rep.Wall = time.Since(start) }()
	for i := range rep.Servers {
		rep.Servers[i].Name = p.infos[i].Name
	}
	rep.Revived = p.revive(ctx)
	var live []int
	all := p.live()
	for r, why := range p.exclusions(all, c.t.a) {
		if why == nil {
			live = append(live, all[r])
			continue
		}
		rep.Excluded = append(rep.Excluded, Exclusion{Server: all[r], Name: p.infos[all[r]].Name, Reason: why})
	}
	if len(live) == 0 {
		if len(all) == 0 {
			return rep, fmt.Errorf("disagg: pool %s: %w: all %d servers failed earlier (see Pool.Health)", c.pass, ErrNoHealthyServer, len(p.servers))
		}
		if c.t.a.TotalQ() > 0 {
			var why []string
			for _, e := range rep.Excluded {
				why = append(why, e.Name+": "+e.Reason.Error())
			}
			return rep, fmt.Errorf("disagg: pool %s: %w: no server can take this call (%s)", c.pass, ErrNoHealthyServer, strings.Join(why, "; "))
		}
		live = all // nothing to compute
	}
	costs, err := p.costs(live, callArch(c.t.a))
	if err != nil {
		return rep, err
	}
	cp, err := newCallPlan(c.t.a, c.pass, live, costs, &p.opts)
	if err != nil {
		return rep, fmt.Errorf("disagg: pool %s: plan: %w", c.pass, err)
	}
	rep.Ranks, rep.Segments, rep.Plan, rep.Final = live, cp.seg, cp.plan, cp.plan
	if cp.plan == nil {
		return rep, nil // no segment has queries
	}
	done := make(map[disagg.Task]bool)
	plan := cp.plan
	var down []int // plan ranks that failed
	for {
		todo := make([][]disagg.Task, len(live))
		left := 0
		for r, ts := range plan.Tasks {
			for _, t := range ts {
				if !done[t] {
					todo[r] = append(todo[r], t)
					left++
				}
			}
		}
		if left == 0 {
			break
		}
		results, err := c.round(ctx, cp, todo)
		if err != nil {
			return rep, fmt.Errorf("disagg: pool %s: %w", c.pass, err)
		}
		var failed []Failure
		for r, res := range results {
			i := live[r]
			sr := &rep.Servers[i]
			sr.Tasks = append(sr.Tasks, res.tasks...)
			sr.Batches += res.batches
			sr.QRows += res.qRows
			sr.KRows += res.kRows
			sr.Stats.Add(res.stats)
			for _, t := range res.tasks {
				done[t] = true
			}
			if res.err != nil {
				failed = append(failed, Failure{Server: i, Name: p.infos[i].Name, Err: res.err, Replanned: len(todo[r]) - len(res.tasks)})
				p.markDown(i, res.err)
				down = append(down, r)
			}
		}
		rep.Failures = append(rep.Failures, failed...)
		if len(failed) == 0 {
			break
		}
		if len(down) == len(live) {
			last := failed[len(failed)-1]
			return rep, fmt.Errorf("disagg: pool %s: %w: all %d servers of the call failed (last: %w)", c.pass, ErrNoHealthyServer, len(live), last.Err)
		}
		if plan, err = plan.Without(down, costs); err != nil {
			return rep, fmt.Errorf("disagg: pool %s: re-plan: %w", c.pass, err)
		}
		rep.Final = plan
	}
	for r, load := range rep.Final.Load {
		rep.Servers[live[r]].Predicted = load
	}
	return rep, nil
}

// round runs every server's tasks todo[r], all servers at once (or one
// after another with Options.Sequential). A server that fails with a bad
// server error has it in its result; any other error ends the round and is
// returned.
func (c *call) round(ctx context.Context, cp *callPlan, todo [][]disagg.Task) ([]rankResult, error) {
	results := make([]rankResult, len(todo))
	one := func(ctx context.Context, r int) error {
		results[r] = c.serve(ctx, cp, r, todo[r])
		if err := results[r].err; err != nil && !isBadServer(err) {
			return err
		}
		return nil
	}
	if c.pool.opts.Sequential {
		for r := range todo {
			if err := one(ctx, r); err != nil {
				return nil, err
			}
		}
		return results, nil
	}
	g, gctx := errgroup.WithContext(ctx)
	for r := range todo {
		if len(todo[r]) > 0 {
			g.Go(func() error { return one(gctx, r) })
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return results, nil
}

// prepared is a batch with its request gathered.
type prepared struct {
	b   *batch
	fwd *server.ForwardRequest
	bwd *server.BackwardRequest
}

// serve runs the tasks ts on plan rank r's server. Batches are gathered one
// ahead on another goroutine, so the host copies of the next batch overlap
// the server's work on the current one.
func (c *call) serve(ctx context.Context, cp *callPlan, r int, ts []disagg.Task) (res rankResult) {
	if len(ts) == 0 {
		return res
	}
	i := cp.live[r]
	srv, info := c.pool.servers[i], c.pool.infos[i]
	ws := cp.works(ts)
	// Tasks with no query row (the key-only prefix of a causal segment) are
	// done without running.
	covered := make(map[disagg.Task]bool)
	for _, w := range ws {
		for _, t := range w.tasks {
			covered[t] = true
		}
	}
	for _, t := range ts {
		if !covered[t] {
			res.tasks = append(res.tasks, t)
		}
	}
	fail := func(err error) rankResult {
		res.err = &ServerError{Server: i, Name: info.Name, Err: err}
		return res
	}
	bs, err := batches(c.t.a, ws, batchLimits(c.t.a, info.MaxTensorBytes, c.pool.opts.MaxBatchRows), info.Name)
	if err != nil {
		return fail(err)
	}
	ch := make(chan prepared, 1)
	stop := make(chan struct{})
	defer func() {
		// Let the gatherer finish before returning: it reads the caller's
		// tensors, which are the caller's again once the call returns.
		close(stop)
		for range ch {
		}
	}()
	go func() {
		defer close(ch)
		for k := range bs {
			select {
			case ch <- c.prepare(&bs[k]):
			case <-stop:
				return
			}
		}
	}()
	pending := make(map[int][]kvPart) // backward: parts of unfinished work items
	for pr := range ch {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		d := c.pool.opts.callTimeout(c.predict(cp.costs[r], pr.b))
		stats, err := c.exec(ctx, srv, d, pr, pending)
		if err != nil {
			return fail(err)
		}
		res.batches++
		res.qRows += pr.b.rowsQ
		res.kRows += pr.b.rowsK
		res.stats.Add(stats)
		for _, p := range pr.b.pieces {
			if p.last {
				res.tasks = append(res.tasks, ws[p.work].tasks...)
			}
		}
	}
	return res
}

// prepare gathers a batch's request from the caller's tensors.
func (c *call) prepare(b *batch) prepared {
	t := c.t
	pr := prepared{b: b}
	if c.pass == disagg.PassForward {
		pr.fwd = &server.ForwardRequest{Args: &b.args, Q: t.gatherRows(b, t.q, false), K: t.gatherRows(b, t.k, true), V: t.gatherRows(b, t.v, true)}
		return pr
	}
	pr.bwd = &server.BackwardRequest{
		Args: &b.args,
		Q:    t.gatherRows(b, t.q, false), K: t.gatherRows(b, t.k, true), V: t.gatherRows(b, t.v, true),
		O: t.gatherRows(b, t.o, false), LSE: t.gatherLSE(b), DO: t.gatherRows(b, t.do, false),
	}
	return pr
}

// predict returns the predicted seconds of batch b under cost model cm,
// for its per-call deadline. The model's tasks are bottom-right causal; a
// non-causal piece with more queries than keys is scaled up by rows.
func (c *call) predict(cm disagg.CostModel, b *batch) float64 {
	var s float64
	for _, p := range b.pieces {
		q, k := p.q1-p.q0, p.k1
		if q <= 0 || k <= 0 {
			continue
		}
		t := cm.TaskTime(min(q, k), k, c.pass)
		if q > k {
			t *= float64(q) / float64(k)
		}
		s += t
	}
	return s
}

// exec runs one prepared batch on srv, under the per-call deadline d (see
// callServer), and scatters its outputs. In the backward, dK and dV are
// added into the call's sums only once every piece of a work item is back,
// so a server failing half way through an item adds nothing for it.
func (c *call) exec(ctx context.Context, srv server.Server, d time.Duration, pr prepared, pending map[int][]kvPart) (attention.Stats, error) {
	t, b := c.t, pr.b
	nq, nk := b.rowsQ*t.rowQ(), b.rowsK*t.rowK()
	if c.pass == disagg.PassForward {
		rep, err := callServer(ctx, d, func(ctx context.Context) (*server.ForwardReply, error) { return srv.Forward(ctx, pr.fwd) })
		if err != nil {
			return attention.Stats{}, err
		}
		if rep == nil || len(rep.O) != nq || len(rep.LSE) != b.rowsQ*t.a.NumHeadsQ {
			return attention.Stats{}, fmt.Errorf("%w: malformed forward reply", server.ErrUnusable)
		}
		t.scatterRows(b, rep.O, c.o)
		t.scatterLSE(b, rep.LSE, c.lse)
		return rep.Stats, nil
	}
	rep, err := callServer(ctx, d, func(ctx context.Context) (*server.BackwardReply, error) { return srv.Backward(ctx, pr.bwd) })
	if err != nil {
		return attention.Stats{}, err
	}
	if rep == nil || len(rep.DQ) != nq || len(rep.DK) != nk || len(rep.DV) != nk {
		return attention.Stats{}, fmt.Errorf("%w: malformed backward reply", server.ErrUnusable)
	}
	t.scatterRows(b, rep.DQ, c.dq)
	parts := t.kvParts(b, rep.DK, rep.DV)
	for k, p := range b.pieces {
		pending[p.work] = append(pending[p.work], parts[k])
		if !p.last {
			continue
		}
		c.mu.Lock()
		for _, part := range pending[p.work] {
			t.addKV(part, c.dk64, c.dv64)
		}
		c.mu.Unlock()
		delete(pending, p.work)
	}
	return rep.Stats, nil
}
