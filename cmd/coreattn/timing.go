package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/coreattn/coreattn/wgpu"
)

// runTime is the measured time of one run of a list of dispatches.
type runTime struct {
	d      time.Duration   // median over rounds of the wall time per back-to-back run
	gpu    time.Duration   // timestamp-query GPU time of one lone run; 0 without timestamps
	passes []time.Duration // the lone run's time per dispatch; nil without timestamps
	rounds int
	reps   int // runs per round
}

// String says how the time was measured, for humans.
func (t runTime) String() string {
	if t.reps == 1 {
		return fmt.Sprintf("median of %d runs", t.rounds)
	}
	return fmt.Sprintf("median of %d rounds of %d back-to-back runs", t.rounds, t.reps)
}

// timeRuns times ds the way every coreattn measurement does: one run
// (which also leaves the results in place), back-to-back runs for about
// budget untimed, one lone run with timestamp queries, then rounds of reps
// back-to-back submissions (reps 0: enough for about budget/rounds each),
// and returns the median wall time per run.
//
// Back-to-back submissions keep the GPU busy. A GPU that has idled (while
// the host built pipelines, or waited) runs slowly until its clocks come
// back: on the H200 a lone run after such a pause reads 3-5 times its
// back-to-back time, and before the untimed runs whole cells (every round)
// sometimes read 2-3 times theirs, most often the first cell after new
// pipelines. The untimed runs give the clocks that time. The lone run's GPU
// time is reported beside the median, never used for it.
func timeRuns(ctx context.Context, dev *wgpu.Device, ds []wgpu.Dispatch, rounds, reps int, budget time.Duration) (runTime, error) {
	first, err := dev.Run(ctx, ds...)
	if err != nil {
		return runTime{}, err
	}
	if err := sustain(ctx, dev, ds, budget, first.Wall); err != nil {
		return runTime{}, err
	}
	lone, err := dev.Run(ctx, ds...)
	if err != nil {
		return runTime{}, err
	}
	if reps <= 0 {
		per := budget / time.Duration(max(rounds, 1))
		reps = max(1, min(50, int(per/max(lone.Wall, time.Microsecond))))
	}
	times := make([]time.Duration, max(rounds, 1))
	for r := range times {
		start := time.Now()
		if err := backToBack(ctx, dev, ds, reps); err != nil {
			return runTime{}, err
		}
		times[r] = time.Since(start) / time.Duration(reps)
	}
	slices.Sort(times)
	t := runTime{d: times[len(times)/2], rounds: len(times), reps: reps}
	if lone.Passes != nil {
		t.gpu, t.passes = lone.GPU(), lone.Passes
	}
	return t, nil
}

// sustain runs ds back to back, in batches of about a tenth of d (runs of
// about wall each), until d has passed: at least one batch.
func sustain(ctx context.Context, dev *wgpu.Device, ds []wgpu.Dispatch, d, wall time.Duration) error {
	batch := max(1, min(50, int(d/10/max(wall, time.Microsecond))))
	for start := time.Now(); ; {
		if err := backToBack(ctx, dev, ds, batch); err != nil {
			return err
		}
		if time.Since(start) >= d {
			return nil
		}
	}
}

// backToBack submits n runs of ds without waiting between them, then waits
// for all of them.
func backToBack(ctx context.Context, dev *wgpu.Device, ds []wgpu.Dispatch, n int) error {
	for range n {
		if err := dev.Submit(ds...); err != nil {
			return err
		}
	}
	return dev.Wait(ctx)
}
