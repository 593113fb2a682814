package train

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/coreattn/coreattn/disagg"
	"github.com/coreattn/coreattn/model"
	"github.com/coreattn/coreattn/wgpu"
)

// ClusterResult is what a cluster step reads back and measured.
type ClusterResult struct {
	Loss     float64 // mean next-byte cross-entropy over the global batch (nats)
	GradNorm float64 // global gradient norm before clipping
	Clip     float64 // the factor the gradients were scaled by
	Stats    StepStats

	lossSum float64
}

// StepStats describe a cluster step: its plan and, for timed steps,
// where each rank's time went.
type StepStats struct {
	// Ranks is each rank's time: the dispatches' GPU time by timestamp
	// queries (host clocks without them).
	Ranks []RankTime
	// Timestamps says the times come from timestamp queries.
	Timestamps bool
	// WaitProjected says Wait is projected: the ranks share adapters, so
	// their work ran one after another, and Wait is what each would wait
	// at the attention phases had they run in parallel (the slowest rank's
	// time between two phases, less its own). Otherwise Wait is measured:
	// host time blocked on rows from other adapters.
	WaitProjected bool
	// PlanLoad is each rank's predicted attention time per layer (forward
	// and backward, seconds of the cost model), PredictedImbalance its
	// max/mean; MeasuredImbalance is max/mean of the ranks' attention time.
	PlanLoad                              []float64
	PredictedImbalance, MeasuredImbalance float64
	// BytesMoved are the rows the step moved between ranks (all layers,
	// both passes); BytesHost the part that crossed adapters through the
	// host.
	BytesMoved, BytesHost int64
	// Reduce is the gradient sum and the optimizer, on the slowest device.
	Reduce time.Duration
	// Intervals is, for each stretch of the step between two attention
	// phases, each rank's busy time in it.
	Intervals [][]time.Duration
	// LinkBytes is, per stretch and rank, the bytes that rank's exchange
	// moves (in and out), for projections.
	LinkBytes [][]int64
	// Replans counts the re-plans after a lost server in this step; Lost
	// lists the ranks whose servers are out of the plan.
	Replans int
	Lost    []int
	// Plan is the step's attention plan.
	Plan *disagg.Plan
}

// RankTime is one rank's share of a step.
type RankTime struct {
	Linear, Attention, Transfer, Wait time.Duration
}

// Projected is the step time the measured figures give for ranks running
// in parallel, one per adapter, meeting at every attention phase: per
// stretch between two phases, the slowest rank's busy time plus the time
// its exchange's bytes take at linkBytesPerSecond (0: none), then the
// gradient sum and optimizer. It is a projection, not a measurement.
func (s StepStats) Projected(linkBytesPerSecond float64) time.Duration {
	var total time.Duration
	for i, iv := range s.Intervals {
		var worst time.Duration
		for r, d := range iv {
			if linkBytesPerSecond > 0 && i < len(s.LinkBytes) {
				d += time.Duration(float64(s.LinkBytes[i][r]) / linkBytesPerSecond * float64(time.Second))
			}
			worst = max(worst, d)
		}
		total += worst
	}
	return total + s.Reduce
}

// Step trains on b (exactly N·T tokens) at learning rate lr.
func (cl *Cluster) Step(ctx context.Context, b model.Batch, lr float64) (ClusterResult, error) {
	if len(b.Tokens) != cl.Tokens() {
		return ClusterResult{}, fmt.Errorf("%w: a training batch of %d tokens for a cluster of %d per step (%d ranks × %d)", model.ErrBatch, len(b.Tokens), cl.Tokens(), cl.o.Ranks, cl.o.TokensPerRank)
	}
	res, err := cl.run(ctx, b, modeStep, lr)
	if err == nil {
		cl.steps++
	}
	return res, err
}

// Gradients computes the loss and the summed gradients of b (exactly N·T
// tokens) without changing the weights: for checks and measurements.
func (cl *Cluster) Gradients(ctx context.Context, b model.Batch) (ClusterResult, error) {
	if len(b.Tokens) != cl.Tokens() {
		return ClusterResult{}, fmt.Errorf("%w: a batch of %d tokens for a cluster of %d per step", model.ErrBatch, len(b.Tokens), cl.Tokens())
	}
	return cl.run(ctx, b, modeGrad, 0)
}

// Evaluate returns the summed loss of b's targets (at most N·T tokens)
// and their number, without changing the weights.
func (cl *Cluster) Evaluate(ctx context.Context, b model.Batch) (lossSum float64, targets int, err error) {
	if len(b.Tokens) > cl.Tokens() {
		return 0, 0, fmt.Errorf("%w: %d tokens for a cluster of %d per step", model.ErrBatch, len(b.Tokens), cl.Tokens())
	}
	if err := b.Validate(); err != nil {
		return 0, 0, err
	}
	res, err := cl.run(ctx, pad(b, cl.Tokens()), modeEval, 0)
	if err != nil {
		return 0, 0, err
	}
	return res.lossSum, b.NumTargets(), nil
}

// run runs a step up to m, re-planning without a server the fault hook
// takes out, until it completes.
func (cl *Cluster) run(ctx context.Context, b model.Batch, m mode, lr float64) (ClusterResult, error) {
	if err := b.Validate(); err != nil {
		return ClusterResult{}, err
	}
	replans := 0
	for {
		res, err := cl.try(ctx, b, m, lr)
		var lost *lostError
		if errors.As(err, &lost) && errors.Is(err, ErrServerLost) {
			cl.down[lost.fault.Rank] = true
			if len(cl.Lost()) == cl.o.Ranks {
				return ClusterResult{}, fmt.Errorf("train: every attention server is lost: %w", err)
			}
			replans++
			continue
		}
		res.Stats.Replans = replans
		return res, err
	}
}

// plan lays b out on the slots and plans its attention.
func (cl *Cluster) plan(b model.Batch) (*disagg.Plan, error) {
	S := cl.o.Ranks * cl.nano
	l, err := disagg.Place(docLens(b), S, cl.rows)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	opt := disagg.Options{Arch: cl.arch, Epsilon: cl.o.Epsilon, BlockSize: cl.o.BlockSize}
	var p *disagg.Plan
	if cl.o.Packing {
		p, err = disagg.Pack(l, cl.costs, opt)
	} else {
		p, err = disagg.Schedule(l, cl.costs, opt)
	}
	if err != nil {
		return nil, fmt.Errorf("train: plan: %w", err)
	}
	var down []int
	for j := range S {
		if cl.down[j%cl.o.Ranks] {
			down = append(down, j)
		}
	}
	if len(down) > 0 {
		if p, err = p.Without(down, cl.costs); err != nil {
			return nil, fmt.Errorf("train: re-plan: %w", err)
		}
	}
	return p, nil
}

// try runs one attempt of a step.
func (cl *Cluster) try(ctx context.Context, b model.Batch, m mode, lr float64) (ClusterResult, error) {
	plan, err := cl.plan(b)
	if err != nil {
		return ClusterResult{}, err
	}
	a, err := arrange(b, plan, cl.cfg)
	if err != nil {
		return ClusterResult{}, err
	}
	for s := range a.slots {
		if sv := a.servers[s]; sv.staged != nil {
			if _, err := cl.ensureStage(s, len(sv.q), len(sv.k)); err != nil {
				return ClusterResult{}, err
			}
		}
	}
	if err := cl.writeBatch(a, m, lr); err != nil {
		return ClusterResult{}, err
	}
	pb := newProgBuilder(cl, a, cl.steps+1)
	pb.record(m)
	pb.interval++ // the reduction's own
	if m >= modeGrad {
		cl.recordReduce(pb, m)
	}
	if err := pb.finish(); err != nil {
		pb.p.release()
		return ClusterResult{}, err
	}
	defer func() {
		// Wait for what was submitted before freeing what it uses.
		for _, d := range cl.devs {
			d.dev.Wait(context.WithoutCancel(ctx))
		}
		pb.p.release()
	}()
	tm, err := cl.execute(ctx, pb.p)
	if err != nil {
		return ClusterResult{}, err
	}
	var reduce time.Duration
	if m >= modeGrad && len(cl.devs) > 1 {
		if reduce, err = cl.allReduce(ctx, m); err != nil {
			return ClusterResult{}, err
		}
	}
	res, err := cl.readResults(ctx, a, m)
	if err != nil {
		return ClusterResult{}, err
	}
	res.Stats = cl.stats(a, pb, tm, reduce)
	return res, nil
}

// writeBatch uploads each slot's rows and each device's step values.
func (cl *Cluster) writeBatch(a *arrangement, m mode, lr float64) error {
	for j, s := range cl.slots {
		p := &a.parts[j]
		R := cl.rows
		ints := make([]int32, 3*R)
		copy(ints, p.tokens)
		copy(ints[R:], p.targets)
		copy(ints[2*R:], p.positions)
		if err := wgpu.Write(s.r.batch, 0, ints); err != nil {
			return fmt.Errorf("train: %w", err)
		}
		if m >= modeGrad {
			if err := wgpu.Write(s.r.index, 0, embedIndex(p.tokens)); err != nil {
				return fmt.Errorf("train: %w", err)
			}
		}
	}
	for _, d := range cl.devs {
		if err := wgpu.Write(d.step, 0, stepValues(a.nTargets, lr, cl.opt, cl.steps+1, cl.scale)); err != nil {
			return fmt.Errorf("train: %w", err)
		}
	}
	return nil
}

// recordReduce appends each device's gradient sum (its slots' gradients
// added in slot order into the first's) and, on one device, the
// optimizer.
func (cl *Cluster) recordReduce(pb *progBuilder, m mode) {
	n := cl.layout.total
	for i, d := range cl.devs {
		t := tag{rank: int32(cl.slots[d.slots[0]].rank), kind: spanReduce, interval: pb.interval}
		for _, j := range d.slots[1:] {
			pb.run(i, t, pb.bs[i].addVec(n, cl.slots[j].grads, d.grads))
		}
		if m >= modeStep && len(cl.devs) == 1 {
			pb.run(i, t, d.optim.ds...)
		}
	}
}

// allReduce sums the devices' gradients on the host, in device order, and
// gives every device the sum (through the transfer path); with modeStep
// every device then takes the optimizer step.
func (cl *Cluster) allReduce(ctx context.Context, m mode) (time.Duration, error) {
	t0 := time.Now()
	n := cl.layout.total
	parts := make([][]float32, len(cl.devs))
	for i, d := range cl.devs {
		parts[i] = make([]float32, n)
		if err := wgpu.ReadAt(ctx, d.grads, 0, parts[i]); err != nil {
			return 0, fmt.Errorf("train: gradient sum: %w", err)
		}
	}
	sum := parts[0]
	var wg sync.WaitGroup
	chunk := ceilDiv(n, runtime.GOMAXPROCS(0))
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Go(func() {
			for _, p := range parts[1:] {
				for i := lo; i < hi; i++ {
					sum[i] += p[i]
				}
			}
		})
	}
	wg.Wait()
	for _, d := range cl.devs {
		if err := wgpu.WriteAt(ctx, d.grads, 0, sum); err != nil {
			return 0, fmt.Errorf("train: gradient sum: %w", err)
		}
		if m >= modeStep {
			if err := d.dev.Submit(d.optim.ds...); err != nil {
				return 0, fmt.Errorf("train: %w", err)
			}
		}
	}
	for _, d := range cl.devs {
		if err := d.dev.Wait(ctx); err != nil {
			return 0, fmt.Errorf("train: %w", err)
		}
	}
	return time.Since(t0), nil
}

// readResults reads the slots' loss sums (added in slot order) and the
// first device's gradient norm and clip factor.
func (cl *Cluster) readResults(ctx context.Context, a *arrangement, m mode) (ClusterResult, error) {
	var res ClusterResult
	if m < modeEval {
		return res, nil
	}
	var sc [scalarSlots]float32
	for _, s := range cl.slots {
		if err := wgpu.Read(ctx, s.readback, s.scalars, sc[:]); err != nil {
			return res, fmt.Errorf("train: %w", err)
		}
		res.lossSum += float64(sc[scalarLossSum])
	}
	if a.nTargets > 0 {
		res.Loss = res.lossSum / float64(a.nTargets)
	}
	if m >= modeStep {
		d := cl.devs[0]
		if err := wgpu.Read(ctx, d.readback, d.scalars, sc[:]); err != nil {
			return res, fmt.Errorf("train: %w", err)
		}
		res.GradNorm, res.Clip = float64(sc[scalarGradNorm]), float64(sc[scalarClip])
	}
	return res, nil
}

// stats assembles a step's StepStats.
func (cl *Cluster) stats(a *arrangement, pb *progBuilder, tm *times, reduce time.Duration) StepStats {
	N := cl.o.Ranks
	st := StepStats{Ranks: make([]RankTime, N), PlanLoad: make([]float64, N), Timestamps: tm.timestamps,
		BytesMoved: pb.p.bytesMoved, BytesHost: pb.p.bytesHost, Lost: cl.Lost(), Plan: a.plan,
		WaitProjected: len(cl.devs) < N}
	for j, load := range a.plan.Load {
		st.PlanLoad[j%N] += load
	}
	st.PredictedImbalance = disagg.MaxOverMean(st.PlanLoad)
	attn := make([]float64, N)
	for r := range N {
		sp := tm.span[r]
		st.Ranks[r] = RankTime{Linear: sp[spanLinear], Attention: sp[spanAttention], Transfer: sp[spanTransfer], Wait: tm.wait[r]}
		attn[r] = sp[spanAttention].Seconds()
		reduce = max(reduce, sp[spanReduce])
	}
	st.Reduce = reduce
	st.MeasuredImbalance = disagg.MaxOverMean(attn)
	keys := make([]int32, 0, len(tm.interval))
	for k := range tm.interval {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		iv := tm.interval[k]
		// The reduction is counted once, in Reduce.
		if k == pb.interval {
			continue
		}
		st.Intervals = append(st.Intervals, iv)
		lb := make([]int64, N)
		for r := range N {
			lb[r] = pb.p.linkBytes[[2]int32{k, int32(r)}]
		}
		st.LinkBytes = append(st.LinkBytes, lb)
		if st.WaitProjected {
			worst := slices.Max(iv)
			for r, d := range iv {
				st.Ranks[r].Wait += worst - d
			}
		}
	}
	return st
}
