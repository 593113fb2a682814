package gowebgpu

import (
	"context"
	"fmt"
	"time"

	webgpu "github.com/rajveermalviya/go-webgpu/wgpu"

	"github.com/coreattn/coreattn/wgpu/internal/backend"
)

// Submit encodes the dispatches, each in its own compute pass, into one
// command buffer and submits it without waiting.
func (d *Device) Submit(ds []backend.Dispatch) error {
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
func (d *Device) Run(ctx context.Context, ds []backend.Dispatch) (backend.Timing, error) {
	d.mu.Lock()
	if err := d.usable(); err != nil {
		d.mu.Unlock()
		return backend.Timing{}, err
	}
	var rel releaser
	var ts *timestamps
	if d.info.Timestamps && len(ds) > 0 {
		var err error
		if ts, err = d.newTimestamps(len(ds)); err != nil {
			d.mu.Unlock()
			return backend.Timing{}, err
		}
		rel.add(ts.release)
	}
	cmd, err := d.encode(ds, ts, nil)
	if err != nil {
		rel.run()
		d.mu.Unlock()
		return backend.Timing{}, err
	}
	rel.add(cmd.Release)
	start := time.Now()
	d.submit(cmd)
	unlocked, err := d.wait(ctx, rel.run)
	if unlocked {
		return backend.Timing{}, err
	}
	defer func() {
		rel.run()
		d.mu.Unlock()
	}()
	t := backend.Timing{Wall: time.Since(start)}
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

// SubmitCopy submits the dispatches, then a copy of the first n bytes of
// src into dst, in one command buffer, without waiting.
func (d *Device) SubmitCopy(ds []backend.Dispatch, src, dst backend.Buffer, n uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.usable(); err != nil {
		return err
	}
	s, err := d.handle(src, "copy source")
	if err != nil {
		return err
	}
	t, err := d.handle(dst, "copy target")
	if err != nil {
		return err
	}
	cmd, err := d.encode(ds, nil, func(enc *webgpu.CommandEncoder) error {
		return enc.CopyBufferToBuffer(s.buf, 0, t.buf, 0, n)
	})
	if err != nil {
		return err
	}
	defer cmd.Release()
	d.submit(cmd)
	return nil
}

// encode records the dispatches into a command buffer, then tail's
// commands (if tail is not nil). Callers hold d.mu.
func (d *Device) encode(ds []backend.Dispatch, ts *timestamps, tail func(*webgpu.CommandEncoder) error) (*webgpu.CommandBuffer, error) {
	enc, err := d.dev.CreateCommandEncoder(nil)
	if err != nil {
		return nil, fmt.Errorf("wgpu: %s: command encoder: %w", d.info.Name, err)
	}
	defer enc.Release()
	for i, disp := range ds {
		p, ok := disp.Pipeline.(*pipeline)
		if !ok || p == nil || p.d != d || p.pipeline == nil {
			return nil, fmt.Errorf("wgpu: dispatch %d (%s): no pipeline of this device, or a released one", i, disp.Label)
		}
		entries := make([]webgpu.BindGroupEntry, len(disp.Bindings))
		for j, bd := range disp.Bindings {
			b, err := d.handle(bd.Buffer, fmt.Sprintf("binding %d", j))
			if err != nil {
				return nil, fmt.Errorf("wgpu: dispatch %d (%s): %w", i, disp.Label, err)
			}
			entries[j] = webgpu.BindGroupEntry{Binding: bd.Slot, Buffer: b.buf, Size: webgpu.WholeSize}
		}
		group, err := d.dev.CreateBindGroup(&webgpu.BindGroupDescriptor{Label: disp.Label, Layout: p.layout, Entries: entries})
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
		pass.SetPipeline(p.pipeline)
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
