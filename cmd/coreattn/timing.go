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

// timeRuns times ds the way every coreattn measurement does: one warm-up run
// (which also leaves the results in place), one lone run with timestamp
// queries, then rounds of reps back-to-back submissions (reps 0: enough for
// about budget/rounds each), and returns the median wall time per run.
//
// Back-to-back submissions keep the GPU busy. A lone run after the host has
// waited can take several times longer on some GPUs (on the H200, 25 ms
// kernels have read 75-87 ms by timestamps), so the lone run's GPU time is
// reported beside the median but never used for it.
func timeRuns(ctx context.Context, dev *wgpu.Device, ds []wgpu.Dispatch, rounds, reps int, budget time.Duration) (runTime, error) {
	if _, err := dev.Run(ctx, ds...); err != nil {
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
		for range reps {
			if err := dev.Submit(ds...); err != nil {
				return runTime{}, err
			}
		}
		if err := dev.Wait(ctx); err != nil {
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
