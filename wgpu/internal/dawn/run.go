//go:build linux && cgo

package dawn

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"
	"unsafe"
)

// Pass is one compute pass: one dispatch of Pipeline over Workgroups with
// BindGroup at @group(0) (nil for a kernel without bindings).
type Pass struct {
	Pipeline   *ComputePipeline
	BindGroup  *BindGroup
	Workgroups [3]uint32
}

// submitLocked encodes the passes into one command buffer and submits it,
// with timestamps into ts if non-nil. Callers hold d.mu.
func (d *Device) submitLocked(ctx context.Context, passes []Pass, ts *timestamps) error {
	n := len(passes)
	if n == 0 {
		return nil
	}
	pipes := make([]C.WGPUComputePipeline, n)
	groups := make([]C.WGPUBindGroup, n)
	grid := make([]C.uint32_t, 3*n)
	for i, p := range passes {
		if p.Pipeline == nil || p.Pipeline.released || (p.BindGroup != nil && p.BindGroup.released) {
			return fmt.Errorf("dawn: pass %d: pipeline missing, or pipeline or bind group released: %w", i, ErrBadArgument)
		}
		pipes[i] = p.Pipeline.c
		if p.BindGroup != nil {
			groups[i] = p.BindGroup.c
		}
		for k := range 3 {
			grid[3*i+k] = C.uint32_t(p.Workgroups[k])
		}
	}
	var qs C.WGPUQuerySet
	var resolve, readback C.WGPUBuffer
	if ts != nil {
		qs, resolve, readback = ts.set, ts.resolve.c, ts.readback.c
	}
	err := d.scoped(ctx, fmt.Sprintf("submit %d passes (first: %s)", n, passes[0].Pipeline.label), func() {
		C.ca_submit_passes(d.in.lib.procs, d.c, d.queue, C.size_t(n), &pipes[0], &groups[0], &grid[0], qs, resolve, readback)
	})
	if err != nil {
		return fmt.Errorf("dawn: %s: %w", d.info.Name, err)
	}
	return nil
}

// Submit encodes each pass into its own compute pass of one command buffer
// and submits it without waiting.
func (d *Device) Submit(ctx context.Context, passes ...Pass) error {
	if err := d.lockUsable(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	return d.submitLocked(ctx, passes, nil)
}

// Wait blocks until all submitted work is done, or ctx ends.
func (d *Device) Wait(ctx context.Context) error {
	if err := d.lockUsable(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	return d.waitLocked(ctx)
}

func (d *Device) waitLocked(ctx context.Context) error {
	r, err := newResult()
	if err != nil {
		return err
	}
	f := C.ca_queue_done(d.in.lib.procs, d.queue, r)
	res, err := d.in.await(ctx, f, r)
	if err != nil {
		return err
	}
	d.in.processEvents()
	if lost := d.lostLocked(); lost != nil {
		return lost
	}
	if res.status != C.WGPUQueueWorkDoneStatus_Success {
		return fmt.Errorf("dawn: %s: queue: %w", d.info.Name, &APIError{Op: "wait", Kind: ErrInternal, Message: res.msg})
	}
	if err := d.takeUncaptured("queue"); err != nil {
		return fmt.Errorf("dawn: %s: %w", d.info.Name, err)
	}
	return nil
}

// Run submits the passes, waits for them, and with timed (on a device with
// timestamp queries) returns each pass's GPU time. Dawn resolves timestamps
// to nanoseconds itself (webgpu.h exposes no timestamp period); the device
// is created with timestamp quantisation off.
func (d *Device) Run(ctx context.Context, timed bool, passes ...Pass) ([]time.Duration, error) {
	if err := d.lockUsable(); err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	var ts *timestamps
	if timed && d.features.Timestamps && len(passes) > 0 {
		var err error
		if ts, err = d.newTimestamps(ctx, len(passes)); err != nil {
			return nil, err
		}
		defer ts.release()
	}
	if err := d.submitLocked(ctx, passes, ts); err != nil {
		return nil, err
	}
	if err := d.waitLocked(ctx); err != nil {
		return nil, err
	}
	if ts == nil {
		return nil, nil
	}
	return ts.read(ctx)
}

// timestamps holds one Run's query set and its buffers.
type timestamps struct {
	d                 *Device
	n                 int
	set               C.WGPUQuerySet
	resolve, readback *Buffer
}

func (d *Device) newTimestamps(ctx context.Context, n int) (*timestamps, error) {
	ts := &timestamps{d: d, n: n}
	err := d.scoped(ctx, "timestamps", func() { ts.set = C.ca_create_timestamps(d.in.lib.procs, d.c, C.uint32_t(2*n)) })
	if err != nil {
		if ts.set != nil {
			C.ca_release_query_set(d.in.lib.procs, ts.set)
		}
		return nil, fmt.Errorf("dawn: %s: %w", d.info.Name, err)
	}
	size := uint64(16 * n)
	if ts.resolve, err = d.newBufferLocked(ctx, "timestamps", size, UsageQueryResolve|UsageCopySrc); err == nil {
		ts.readback, err = d.newBufferLocked(ctx, "timestamps readback", size, UsageMapRead|UsageCopyDst)
	}
	if err != nil {
		ts.release()
		return nil, err
	}
	return ts, nil
}

// read maps the readback buffer and returns end-begin of each pass.
func (ts *timestamps) read(ctx context.Context) ([]time.Duration, error) {
	d := ts.d
	raw := make([]byte, 16*ts.n)
	r, err := newResult()
	if err != nil {
		return nil, err
	}
	f := C.ca_map_read(d.in.lib.procs, ts.readback.c, 0, C.size_t(len(raw)), r)
	res, err := d.in.await(ctx, f, r)
	if err != nil {
		return nil, err
	}
	if res.status != C.WGPUMapAsyncStatus_Success {
		return nil, fmt.Errorf("dawn: %s: timestamps: %w", d.info.Name, &APIError{Op: "map", Kind: ErrInternal, Message: res.msg})
	}
	if C.ca_read_mapped(d.in.lib.procs, ts.readback.c, 0, C.size_t(len(raw)), unsafe.Pointer(&raw[0])) != 0 {
		return nil, fmt.Errorf("dawn: %s: timestamps: no mapped range: %w", d.info.Name, ErrInternal)
	}
	out := make([]time.Duration, ts.n)
	for i := range out {
		begin := binary.LittleEndian.Uint64(raw[16*i:])
		end := binary.LittleEndian.Uint64(raw[16*i+8:])
		if end > begin {
			out[i] = time.Duration(end - begin)
		}
	}
	return out, nil
}

func (ts *timestamps) release() {
	if ts.resolve != nil {
		ts.resolve.releaseLocked()
	}
	if ts.readback != nil {
		ts.readback.releaseLocked()
	}
	if ts.set != nil {
		C.ca_release_query_set(ts.d.in.lib.procs, ts.set)
	}
}
