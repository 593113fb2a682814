package wgpu

import (
	"context"
	"sync"
	"time"

	"github.com/coreattn/coreattn/wgpu/internal/backend"
)

// ErrDeviceLost is wrapped by every error returned after the device was lost
// (driver reset, GPU removed, out of memory). The device must be closed and a
// new one opened.
var ErrDeviceLost = backend.ErrDeviceLost

// ErrClosed is wrapped by every error returned for work on a device after
// Close.
var ErrClosed = backend.ErrClosed

// Device is an open logical device on one adapter, over one runtime, with
// its queue and a cache of compiled pipelines. It is safe for concurrent
// use.
type Device struct {
	info AdapterInfo
	impl backend.Device

	mu        sync.Mutex // guards the pipeline caches and closed
	pipelines map[pipelineKey]*Pipeline
	keyed     map[any]*Pipeline // the same pipelines by their callers' keys (PipelineFor)
	closed    bool

	transfers transferSet // transfer engines (transfer.go), closed before the device
}

func newDevice(impl backend.Device, info AdapterInfo) *Device {
	return &Device{info: info, impl: impl, pipelines: make(map[pipelineKey]*Pipeline), keyed: make(map[any]*Pipeline)}
}

// Info describes the device's adapter, with the limits the device enforces
// and the features its runtime offers.
func (d *Device) Info() AdapterInfo { return d.info }

// Runtime is the WebGPU implementation the device runs over.
func (d *Device) Runtime() Runtime { return d.info.Runtime }

// Limits are the limits the device was opened with.
func (d *Device) Limits() Limits { return d.info.Limits }

// Close releases the device and everything cached on it. Buffers created on
// the device must not be used afterwards (their Release stays safe). Close
// is idempotent.
func (d *Device) Close() error {
	d.transfers.close()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	for _, p := range d.pipelines {
		p.impl.Release()
	}
	d.pipelines, d.keyed = nil, nil
	d.impl.Close()
	return nil
}

// Err reports why the device cannot take work (an error wrapping ErrClosed
// or ErrDeviceLost), or nil.
func (d *Device) Err() error { return d.impl.Err() }

// WaitTime is the total time callers have spent waiting for the device:
// polling until its work finished, mapping buffers, and submitting (a
// driver may hold a submission until the previous one has run: lavapipe
// does). A loop's wall time less its WaitTime is what the host spent on
// its own, the time a GPU idles unless the host works ahead of it.
func (d *Device) WaitTime() time.Duration { return d.impl.WaitTime() }

// BuffersCreated is the number of device buffers created so far, of every
// kind the runtime makes (storage, uniform, staging, timestamp), for
// checking that a warm loop allocates nothing on the device.
func (d *Device) BuffersCreated() int64 { return d.impl.BuffersCreated() }

// Wait blocks until all submitted work has finished.
func (d *Device) Wait(ctx context.Context) error { return d.impl.Wait(ctx) }
