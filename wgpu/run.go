package wgpu

import (
	"context"
	"fmt"
	"time"

	webgpu "github.com/rajveermalviya/go-webgpu/wgpu"
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
	// driver; where it was not, Passes assume 1 ns per tick (see
	// AdapterInfo.TimestampPeriod).
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

// Submit encodes the dispatches, each in its own compute pass, into one
// command buffer and submits it without waiting.
func (d *Device) Submit(ds ...Dispatch) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.usable(); err != nil {
		return err
	}
	cmd, err := d.encode(ds, nil, nil)
	if err != nil {
		return err
	}
	defer cmd.Release()
	d.submit(cmd)
	return nil
}

// Run submits the dispatches like Submit, waits for them, and reports their
// timing (per-dispatch GPU times where the adapter has timestamp queries).
func (d *Device) Run(ctx context.Context, ds ...Dispatch) (Timing, error) {
	d.mu.Lock()
	if err := d.usable(); err != nil {
		d.mu.Unlock()
		return Timing{}, err
	}
	var rel releaser
	var ts *timestamps
	if d.info.Timestamps && len(ds) > 0 {
		var err error
		if ts, err = d.newTimestamps(len(ds)); err != nil {
			d.mu.Unlock()
			return Timing{}, err
		}
		rel.add(ts.release)
	}
	cmd, err := d.encode(ds, ts, nil)
	if err != nil {
		rel.run()
		d.mu.Unlock()
		return Timing{}, err
	}
	rel.add(cmd.Release)
	start := time.Now()
	d.submit(cmd)
	unlocked, err := d.wait(ctx, rel.run)
	if unlocked {
		return Timing{}, err
	}
	defer func() {
		rel.run()
		d.mu.Unlock()
	}()
	t := Timing{Wall: since(start)}
	if err != nil {
		return t, err
	}
	if ts != nil {
		if err := d.mapRead(ts.readback, ts.readback.GetSize()); err != nil {
			return t, fmt.Errorf("wgpu: %s: read timestamps: %w", d.info.Name, err)
		}
		t.Passes = ts.durations(d.info.TimestampPeriod)
		t.PeriodKnown = d.info.TimestampPeriod != 0
	}
	return t, nil
}

// encode records the dispatches into a command buffer, then tail's
// commands (if tail is not nil). Callers hold d.mu.
func (d *Device) encode(ds []Dispatch, ts *timestamps, tail func(*webgpu.CommandEncoder) error) (*webgpu.CommandBuffer, error) {
	enc, err := d.dev.CreateCommandEncoder(nil)
	if err != nil {
		return nil, fmt.Errorf("wgpu: %s: command encoder: %w", d.info.Name, err)
	}
	defer enc.Release()
	max := d.info.Limits.MaxWorkgroupsPerDimension
	for i, disp := range ds {
		if disp.Pipeline == nil {
			return nil, fmt.Errorf("wgpu: dispatch %d (%s): no pipeline", i, disp.Label)
		}
		for j, n := range disp.Workgroups {
			if n > max {
				return nil, fmt.Errorf("wgpu: dispatch %d (%s): %d workgroups in dimension %d exceed the adapter's limit of %d", i, disp.Label, n, j, max)
			}
		}
		if disp.Bindings != nil && len(disp.Bindings) != len(disp.Buffers) {
			return nil, fmt.Errorf("wgpu: dispatch %d (%s): %d binding numbers for %d buffers", i, disp.Label, len(disp.Bindings), len(disp.Buffers))
		}
		entries := make([]webgpu.BindGroupEntry, len(disp.Buffers))
		for j, b := range disp.Buffers {
			if b == nil || b.buf == nil {
				return nil, fmt.Errorf("wgpu: dispatch %d (%s): binding %d is nil or released", i, disp.Label, j)
			}
			if b.dev != d {
				return nil, fmt.Errorf("wgpu: dispatch %d (%s): binding %d (%q) belongs to another device", i, disp.Label, j, b.label)
			}
			slot := uint32(j)
			if disp.Bindings != nil {
				slot = disp.Bindings[j]
			}
			entries[j] = webgpu.BindGroupEntry{Binding: slot, Buffer: b.buf, Size: webgpu.WholeSize}
		}
		group, err := d.dev.CreateBindGroup(&webgpu.BindGroupDescriptor{Label: disp.Label, Layout: disp.Pipeline.layout, Entries: entries})
		if err != nil {
			return nil, fmt.Errorf("wgpu: %s: dispatch %d (%s): bind group: %w", d.info.Name, i, disp.Label, err)
		}
		defer group.Release()
		if ts != nil {
			if err := enc.WriteTimestamp(ts.set, uint32(2*i)); err != nil {
				return nil, fmt.Errorf("wgpu: %s: timestamp: %w", d.info.Name, err)
			}
		}
		pass := enc.BeginComputePass(&webgpu.ComputePassDescriptor{Label: disp.Label})
		pass.SetPipeline(disp.Pipeline.pipeline)
		pass.SetBindGroup(0, group, nil)
		pass.DispatchWorkgroups(disp.Workgroups[0], disp.Workgroups[1], disp.Workgroups[2])
		err = pass.End()
		pass.Release()
		if err != nil {
			return nil, fmt.Errorf("wgpu: %s: dispatch %d (%s): %w", d.info.Name, i, disp.Label, err)
		}
		if ts != nil {
			if err := enc.WriteTimestamp(ts.set, uint32(2*i+1)); err != nil {
				return nil, fmt.Errorf("wgpu: %s: timestamp: %w", d.info.Name, err)
			}
		}
	}
	if ts != nil {
		if err := ts.encodeResolve(enc); err != nil {
			return nil, fmt.Errorf("wgpu: %s: resolve timestamps: %w", d.info.Name, err)
		}
	}
	if tail != nil {
		if err := tail(enc); err != nil {
			return nil, fmt.Errorf("wgpu: %s: %w", d.info.Name, err)
		}
	}
	cmd, err := enc.Finish(nil)
	if err != nil {
		return nil, fmt.Errorf("wgpu: %s: finish commands: %w", d.info.Name, err)
	}
	return cmd, nil
}
