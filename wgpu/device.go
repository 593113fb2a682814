package wgpu

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	webgpu "github.com/rajveermalviya/go-webgpu/wgpu"
)

// ErrDeviceLost is wrapped by every error returned after the device was lost
// (driver reset, GPU removed, out of memory). The device must be closed and a
// new one opened.
var ErrDeviceLost = errors.New("wgpu: device lost")

// ErrClosed is wrapped by every error returned for work on a device after
// Close.
var ErrClosed = errors.New("wgpu: device closed")

// Device is an open logical device on one adapter, with its queue and a cache
// of compiled pipelines. It is safe for concurrent use.
type Device struct {
	info    AdapterInfo
	inst    *webgpu.Instance
	adapter *webgpu.Adapter
	dev     *webgpu.Device
	queue   *webgpu.Queue

	mu        sync.Mutex // guards the queue, the pipeline caches and closed
	pipelines map[pipelineKey]*Pipeline
	keyed     map[any]*Pipeline // the same pipelines by their callers' keys (PipelineFor)
	closed    bool
	lost      atomic.Pointer[string] // reason, once the device is lost
	waited    atomic.Int64           // nanoseconds spent polling for the GPU (WaitTime)
	created   atomic.Int64           // buffers created (BuffersCreated)

	transfers transferSet // staging rings (transfer.go), closed before the device
}

// Open opens adapter index (as numbered by [Adapters]) with the adapter's own
// limits, so that large storage bindings and the full workgroup memory are
// available, and with timestamp queries enabled where supported.
func Open(index int, opts Options) (*Device, error) {
	inst := instance(opts)
	list := enumerate(inst, opts)
	if len(list) == 0 {
		inst.Release()
		return nil, ErrNoAdapter
	}
	if index < 0 || index >= len(list) {
		for _, a := range list {
			a.Release()
		}
		inst.Release()
		return nil, fmt.Errorf("wgpu: adapter %d does not exist (have %d: 0..%d; see `coreattn devices`)", index, len(list), len(list)-1)
	}
	for i, a := range list {
		if i != index {
			a.Release()
		}
	}
	adapter := list[index]
	var vk []vkDevice
	if adapter.HasFeature(webgpu.FeatureName_TimestampQuery) {
		vk = vulkanDevices()
	}
	d := &Device{
		info:      describe(index, adapter, vk),
		inst:      inst,
		adapter:   adapter,
		pipelines: make(map[pipelineKey]*Pipeline),
		keyed:     make(map[any]*Pipeline),
	}
	var features []webgpu.FeatureName
	if d.info.Timestamps {
		features = append(features, webgpu.FeatureName_TimestampQuery)
	}
	limits := adapter.GetLimits().Limits
	if limits.MaxBufferSize == webgpu.LimitU64Undefined {
		// An adapter without a buffer-size limit reports the value that a
		// request reads as "undefined", and wgpu would then grant its
		// default of 256 MiB: ask for the largest defined value instead.
		limits.MaxBufferSize = webgpu.LimitU64Undefined - 1
	}
	dev, err := adapter.RequestDevice(&webgpu.DeviceDescriptor{
		Label:            "coreattn",
		RequiredFeatures: features,
		RequiredLimits:   &webgpu.RequiredLimits{Limits: limits},
		// No DeviceLostCallback: go-webgpu v0.17.1 passes it to C in a way
		// that trips cgo's pointer checks (see markLost).
	})
	if err != nil {
		adapter.Release()
		inst.Release()
		return nil, fmt.Errorf("wgpu: open %s: %w", d.info, err)
	}
	d.dev = dev
	d.queue = dev.GetQueue()
	// The device may grant less than the adapter advertises (wgpu caps the
	// buffer size, for one): report what the device enforces.
	d.info.Limits = limitsOf(dev.GetLimits().Limits)
	return d, nil
}

// OpenBest opens the first adapter [Adapters] lists: a discrete GPU if there
// is one, then an integrated GPU, then a software adapter.
func OpenBest(opts Options) (*Device, error) { return Open(0, opts) }

// Info describes the device's adapter.
func (d *Device) Info() AdapterInfo { return d.info }

// Limits are the limits the device was opened with.
func (d *Device) Limits() Limits { return d.info.Limits }

// Close releases the device and everything cached on it. Buffers created on
// the device must not be used afterwards. Close is idempotent.
func (d *Device) Close() error {
	d.transfers.close()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	for _, p := range d.pipelines {
		p.release()
	}
	d.pipelines, d.keyed = nil, nil
	d.queue.Release()
	d.dev.Release()
	d.adapter.Release()
	d.inst.Release()
	return nil
}

// usable reports why the device cannot take work, or nil. Callers hold d.mu.
func (d *Device) usable() error {
	if d.closed {
		return fmt.Errorf("%w: %s", ErrClosed, d.info.Name)
	}
	if reason := d.lost.Load(); reason != nil {
		return fmt.Errorf("%w: %s: %s", ErrDeviceLost, d.info.Name, *reason)
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
	pause := 20 * time.Microsecond
	for !d.dev.Poll(false, nil) {
		pollSleep(pause) // not time.Sleep, which rounds sub-millisecond pauses up to about 1 ms
		pause = min(2*pause, time.Millisecond)
	}
}

// WaitTime is the total time callers have spent waiting for the device:
// polling until its work finished, mapping buffers, and submitting (a
// driver may hold a submission until the previous one has run: lavapipe
// does). A loop's wall time less its WaitTime is what the host spent on
// its own, the time a GPU idles unless the host works ahead of it.
func (d *Device) WaitTime() time.Duration { return time.Duration(d.waited.Load()) }

// BuffersCreated is the number of device buffers created so far, of every
// kind (storage, uniform, staging, timestamp), for checking that a warm
// loop allocates nothing on the device.
func (d *Device) BuffersCreated() int64 { return d.created.Load() }

// createBuffer creates a buffer and counts it. Callers hold d.mu.
func (d *Device) createBuffer(desc *webgpu.BufferDescriptor) (*webgpu.Buffer, error) {
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

// since reports the wall time from start, for timing helpers.
func since(start time.Time) time.Duration { return time.Since(start) }
