package wgpu

import (
	"context"
	"fmt"
	"time"

	"github.com/coreattn/coreattn/wgpu/internal/backend"
)

// Dispatch is one compute dispatch: a pipeline, the buffers bound at
// @group(0) @binding(0..n-1) in order (or at Bindings), and the workgroup
// grid.
type Dispatch struct {
	Label    string // names the dispatch in errors and timings
	Pipeline *Pipeline
	Buffers  []*Buffer
	// Bindings numbers Buffers' @binding slots where they are not 0, 1, 2,
	// ... in order (a pipeline's bindings are those its entry point uses).
	Bindings   []uint32
	Workgroups [3]uint32
}

// Timing reports how long a Run took.
type Timing struct {
	// Wall is the host's view: from submission to the queue going idle.
	Wall time.Duration
	// Passes holds the GPU time of each dispatch, measured with timestamp
	// queries and converted with the adapter's timestamp period, or is nil
	// where the adapter has none.
	Passes []time.Duration
	// PeriodKnown reports whether the timestamp period was read from the
	// driver (or applied by the runtime, as Dawn does); where it was not,
	// Passes assume 1 ns per tick (see AdapterInfo.TimestampPeriod).
	PeriodKnown bool
}

// GPU is the sum of the per-dispatch GPU times, or Wall without timestamps.
func (t Timing) GPU() time.Duration {
	if t.Passes == nil {
		return t.Wall
	}
	var sum time.Duration
	for _, p := range t.Passes {
		sum += p
	}
	return sum
}

// dispatches checks ds against the device and its limits and converts them
// for the runtime.
func (d *Device) dispatches(ds []Dispatch) ([]backend.Dispatch, error) {
	max := d.info.Limits.MaxWorkgroupsPerDimension
	out := make([]backend.Dispatch, len(ds))
	for i, disp := range ds {
		if disp.Pipeline == nil {
			return nil, fmt.Errorf("wgpu: dispatch %d (%s): no pipeline", i, disp.Label)
		}
		if disp.Pipeline.dev != d {
			return nil, fmt.Errorf("wgpu: dispatch %d (%s): pipeline %s belongs to another device", i, disp.Label, disp.Pipeline.label)
		}
		for j, n := range disp.Workgroups {
			if n > max {
				return nil, fmt.Errorf("wgpu: dispatch %d (%s): %d workgroups in dimension %d exceed the adapter's limit of %d", i, disp.Label, n, j, max)
			}
		}
		if disp.Bindings != nil && len(disp.Bindings) != len(disp.Buffers) {
			return nil, fmt.Errorf("wgpu: dispatch %d (%s): %d binding numbers for %d buffers", i, disp.Label, len(disp.Bindings), len(disp.Buffers))
		}
		bs := make([]backend.Binding, len(disp.Buffers))
		for j, b := range disp.Buffers {
			if b == nil || b.released.Load() {
				return nil, fmt.Errorf("wgpu: dispatch %d (%s): binding %d is nil or released", i, disp.Label, j)
			}
			if b.dev != d {
				return nil, fmt.Errorf("wgpu: dispatch %d (%s): binding %d (%q) belongs to another device", i, disp.Label, j, b.label)
			}
			slot := uint32(j)
			if disp.Bindings != nil {
				slot = disp.Bindings[j]
			}
			bs[j] = backend.Binding{Slot: slot, Buffer: b.impl}
		}
		out[i] = backend.Dispatch{Label: disp.Label, Pipeline: disp.Pipeline.impl, Bindings: bs, Workgroups: disp.Workgroups}
	}
	return out, nil
}

// Submit encodes the dispatches, each in its own compute pass, into one
// command buffer and submits it without waiting.
func (d *Device) Submit(ds ...Dispatch) error {
	if err := d.impl.Err(); err != nil {
		return err
	}
	bs, err := d.dispatches(ds)
	if err != nil {
		return err
	}
	return d.impl.Submit(bs)
}

// Run submits the dispatches like Submit, waits for them, and reports their
// timing (per-dispatch GPU times where the adapter has timestamp queries).
func (d *Device) Run(ctx context.Context, ds ...Dispatch) (Timing, error) {
	if err := d.impl.Err(); err != nil {
		return Timing{}, err
	}
	bs, err := d.dispatches(ds)
	if err != nil {
		return Timing{}, err
	}
	t, err := d.impl.Run(ctx, bs)
	return Timing(t), err
}
