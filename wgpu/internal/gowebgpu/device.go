package gowebgpu

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	webgpu "github.com/rajveermalviya/go-webgpu/wgpu"

	"github.com/coreattn/coreattn/wgpu/internal/backend"
	"github.com/coreattn/coreattn/wgpu/internal/pause"
)

// Device is an open go-webgpu device with its queue. It is safe for
// concurrent use: its mutex serialises access to the queue and guards every
// handle created from it.
type Device struct {
	info    backend.Info
	inst    *webgpu.Instance
	adapter *webgpu.Adapter
	dev     *webgpu.Device
	queue   *webgpu.Queue

	mu      sync.Mutex // guards the queue, every handle's release, and closed
	closed  bool
	lost    atomic.Pointer[string] // reason, once the device is lost
	waited  atomic.Int64           // nanoseconds spent waiting for the device (WaitTime)
	created atomic.Int64           // buffers created (BuffersCreated)
}

var _ backend.Device = (*Device)(nil)

// Info describes the adapter, with the limits the device enforces.
func (d *Device) Info() backend.Info { return d.info }

// Close releases the device. Handles created from it stay safe to
// Release (which then frees nothing). Close is idempotent.
func (d *Device) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.closed = true
	d.queue.Release()
	d.dev.Release()
	d.adapter.Release()
	d.inst.Release()
}

// Err reports why the device cannot take work, or nil.
func (d *Device) Err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.usable()
}

// usable reports why the device cannot take work, or nil. Callers hold d.mu.
func (d *Device) usable() error {
	if d.closed {
		return fmt.Errorf("%w: %s", backend.ErrClosed, d.info.Name)
	}
	if reason := d.lost.Load(); reason != nil {
		return fmt.Errorf("%w: %s: %s", backend.ErrDeviceLost, d.info.Name, *reason)
	}
	return nil
}

// markLost marks the device lost for the reason given: later calls fail
// with ErrDeviceLost. Loss is learnt only from typed information, never from
// error text: wgpu-native 0.17 sends a lost device (wgpu-core's
// DeviceError::Lost) to the device-lost callback, which go-webgpu v0.17.1
// cannot register (its descriptor trips cgo's pointer checks) and whose
// default aborts the process, and never to the error scopes that
// go-webgpu's calls read, so an error those calls return is a validation
// or out-of-memory error; what reaches Go typed is a buffer map's status
// (see mapStatusError).
func (d *Device) markLost(reason string) {
	d.lost.CompareAndSwap(nil, &reason)
}

// wait blocks until the queue is idle or ctx is done. Callers hold d.mu.
// If ctx ends first, wait returns its error with unlocked true and takes
// over the rest in the background: once the GPU work has finished it calls
// release (which frees the objects the work and its pending buffer maps
// use: freeing them while a map is pending and another thread polls crashes
// wgpu-native) and only then unlocks, so later callers never see a
// half-done queue. Otherwise the caller still holds d.mu and calls release
// itself when it is done with the objects.
func (d *Device) wait(ctx context.Context, release func()) (unlocked bool, err error) {
	if ctx.Done() == nil {
		d.drain()
		return false, d.usable()
	}
	done := make(chan struct{})
	go func() {
		d.drain()
		close(done)
	}()
	select {
	case <-done:
		return false, d.usable()
	case <-ctx.Done():
		go func() {
			<-done
			release()
			d.mu.Unlock()
		}()
		return true, fmt.Errorf("wgpu: %s: waiting for the GPU: %w", d.info.Name, ctx.Err())
	}
}

// drain polls the device until its queue is empty. It never asks wgpu to
// block: wgpu-core 0.17's blocking poll gives up after 5 seconds and then
// treats the submission as finished, freeing what it uses while the GPU
// still runs it (lavapipe compiling a large kernel on a busy CPU takes that
// long, and crashed in its queue thread). Callers hold d.mu.
func (d *Device) drain() {
	start := time.Now()
	defer func() { d.waited.Add(int64(time.Since(start))) }()
	wait := 20 * time.Microsecond
	for !d.dev.Poll(false, nil) {
		pause.Poll(wait) // not time.Sleep, which rounds sub-millisecond pauses up to about 1 ms
		wait = min(2*wait, time.Millisecond)
	}
}

// WaitTime is the total time calls have spent waiting for the device:
// polling until its work finished, mapping buffers, and submitting (a
// driver may hold a submission until the previous one has run: lavapipe
// does).
func (d *Device) WaitTime() time.Duration { return time.Duration(d.waited.Load()) }

// AddWait adds d to WaitTime, for the transfer engine's polls.
func (d *Device) AddWait(t time.Duration) { d.waited.Add(int64(t)) }

// BuffersCreated is the number of buffers created so far, of every kind.
func (d *Device) BuffersCreated() int64 { return d.created.Load() }

// CreateBuffer creates a buffer and counts it. Callers hold the lock.
func (d *Device) CreateBuffer(desc *webgpu.BufferDescriptor) (*webgpu.Buffer, error) {
	buf, err := d.dev.CreateBuffer(desc)
	if err == nil {
		d.created.Add(1)
	}
	return buf, err
}

// submit submits cmd, counting the time the driver holds the call in
// WaitTime. Callers hold d.mu.
func (d *Device) submit(cmd *webgpu.CommandBuffer) {
	start := time.Now()
	d.queue.Submit(cmd)
	d.waited.Add(int64(time.Since(start)))
}

// releaser collects the Release calls of objects that submitted work uses,
// to run in reverse order once the work is done (see wait).
type releaser []func()

func (r *releaser) add(f func()) { *r = append(*r, f) }

func (r releaser) run() {
	for i := len(r) - 1; i >= 0; i-- {
		r[i]()
	}
}

// Wait blocks until all submitted work has finished.
func (d *Device) Wait(ctx context.Context) error {
	d.mu.Lock()
	if err := d.usable(); err != nil {
		d.mu.Unlock()
		return err
	}
	unlocked, err := d.wait(ctx, func() {})
	if !unlocked {
		d.mu.Unlock()
	}
	return err
}
