package wgpu

import (
	"context"
	"fmt"
	"time"

	webgpu "github.com/rajveermalviya/go-webgpu/wgpu"

	"github.com/coreattn/coreattn/wgpu/internal/backend"
	"github.com/coreattn/coreattn/wgpu/internal/gowebgpu"
)

// Readback reads small results back to the host through a staging buffer
// allocated once, for loops that read a few values every iteration
// (a training step's loss) and must not allocate on the device each time:
// at once with [Read], or without waiting with [Device.SubmitRead] and
// later [Collect]. It is not safe for concurrent use.
type Readback struct {
	dev     *Device
	staging backend.Buffer // nil once released
	size    uint64
	label   string

	// On go-webgpu, the read SubmitRead started maps staging itself: its
	// map's completion word (C memory, which the map's callback may write
	// whenever the device is polled). On Dawn, SubmitRead copies into
	// snap, which Collect reads.
	g       *gowebgpu.Device
	flag    mapFlag
	cerr    cerr
	snap    backend.Buffer
	pending uint64 // bytes of the read SubmitRead started, until Collect
}

// NewReadback allocates a staging buffer for reads of up to size bytes.
func (d *Device) NewReadback(label string, size uint64) (*Readback, error) {
	buf, err := d.impl.NewBuffer(label, padded(size), backend.Staging, nil)
	if err != nil {
		return nil, fmt.Errorf("wgpu: %s: readback %q (%d bytes): %w", d.info.Name, label, size, err)
	}
	r := &Readback{dev: d, staging: buf, size: padded(size), label: label}
	if g, ok := d.impl.(*gowebgpu.Device); ok {
		r.g, r.flag, r.cerr = g, newMapFlag(), newCerr()
		return r, nil
	}
	if r.snap, err = d.impl.NewBuffer(label+" snapshot", padded(size), backend.Storage, nil); err != nil {
		buf.Release()
		return nil, fmt.Errorf("wgpu: %s: readback %q (%d bytes): %w", d.info.Name, label, size, err)
	}
	return r, nil
}

// Release frees the staging buffer. It is idempotent; a read pending is
// dropped.
func (r *Readback) Release() {
	if r == nil || r.staging == nil {
		return
	}
	r.staging.Release()
	r.staging = nil
	if r.snap != nil {
		r.snap.Release()
	}
	if r.g != nil {
		if done, _ := r.flag.done(); done {
			r.flag.free()
		} // else the aborted map may still write it: 4 bytes leak
		r.cerr.free()
	}
}

// Read copies the first len(dst) elements of src into dst, after all work
// submitted before it, like [Download] but through r's staging buffer.
func Read[T Elem](ctx context.Context, r *Readback, src *Buffer, dst []T) error {
	size := uint64(len(dst)) * 4
	switch {
	case src.dev != r.dev:
		return fmt.Errorf("wgpu: read %q through %q: another device", src.label, r.label)
	case size > src.size || padded(size) > r.size:
		return fmt.Errorf("wgpu: read %d bytes of %q through %q: %q holds %d, the staging buffer %d", size, src.label, r.label, src.label, src.size, r.size)
	case size == 0:
		return nil
	case r.staging == nil || r.pending > 0:
		return fmt.Errorf("wgpu: read through %q: released, or a read submitted with SubmitRead is pending", r.label)
	}
	if err := src.usable("read"); err != nil {
		return err
	}
	if err := r.dev.impl.Read(ctx, src.impl, 0, bytesOf(dst), r.staging); err != nil {
		return fmt.Errorf("wgpu: read %q: %w", src.label, err)
	}
	return nil
}

// SubmitRead is [Device.Submit] followed by a copy of the first size
// bytes of src into r (in the same command buffer on go-webgpu): it
// submits and returns at once. [Collect] waits for it and reads the
// values, so the host can prepare more work meanwhile. r must have no
// read pending.
func (d *Device) SubmitRead(r *Readback, src *Buffer, size uint64, ds ...Dispatch) error {
	switch {
	case r.dev != d || src.dev != d:
		return fmt.Errorf("wgpu: read %q through %q: %w", src.label, r.label, ErrWrongDevice)
	case size == 0 || size > src.size || padded(size) > r.size:
		return fmt.Errorf("wgpu: read %d bytes of %q through %q (%d and %d bytes): %w", size, src.label, r.label, src.size, r.size, ErrOutOfRange)
	case r.staging == nil:
		return fmt.Errorf("wgpu: read through %q: %w", r.label, ErrReleased)
	case src.released.Load():
		return fmt.Errorf("wgpu: read %q: %w", src.label, ErrReleased)
	case r.pending > 0:
		return fmt.Errorf("wgpu: read through %q: a read is pending (Collect it first)", r.label)
	}
	if err := d.impl.Err(); err != nil {
		return err
	}
	bs, err := d.dispatches(ds)
	if err != nil {
		return err
	}
	n := padded(size)
	if r.g == nil {
		if err := d.impl.SubmitCopy(bs, src.impl, r.snap, n); err != nil {
			return fmt.Errorf("wgpu: %s: read %q: %w", d.info.Name, src.label, err)
		}
		r.pending = size
		return nil
	}
	if err := d.impl.SubmitCopy(bs, src.impl, r.staging, n); err != nil {
		return err
	}
	g := r.g
	g.Lock()
	err = g.Usable()
	if err == nil {
		rw := raw{device: deviceRef(g.WGPU()), queue: queueRef(g.Queue())}
		err = rw.mapRead(gowebgpu.Handle(r.staging), n, r.flag, r.cerr)
	}
	g.Unlock()
	if err != nil {
		return fmt.Errorf("wgpu: %s: read %q: %w", d.info.Name, src.label, err)
	}
	r.pending = size
	return nil
}

// Collect waits for the read that [Device.SubmitRead] started through r
// and copies its first len(dst) elements into dst. If ctx ends first, the
// read stays pending and Collect may be called again.
func Collect[T Elem](ctx context.Context, r *Readback, dst []T) error {
	d := r.dev
	size := uint64(len(dst)) * 4
	if r.pending == 0 {
		return fmt.Errorf("wgpu: collect from %q: no read pending", r.label)
	}
	if size > r.pending {
		return fmt.Errorf("wgpu: collect %d bytes from %q, whose read holds %d: %w", size, r.label, r.pending, ErrOutOfRange)
	}
	if r.g == nil {
		if err := d.impl.Read(ctx, r.snap, 0, bytesOf(dst), nil); err != nil {
			if ctx.Err() != nil {
				return err // still pending
			}
			r.pending = 0
			return fmt.Errorf("wgpu: %s: collect %q: %w", d.info.Name, r.label, err)
		}
		r.pending = 0
		return nil
	}
	// Polls at most a millisecond apart, as Device.Run's: a collecting
	// loop has usually submitted more work, which keeps the GPU busy
	// meanwhile, and tight polls would take CPU from the host's own work.
	status, err := waitFlag(ctx, r.g, r.flag, time.Millisecond)
	if err != nil {
		return fmt.Errorf("wgpu: %s: collect %q: %w", d.info.Name, r.label, err)
	}
	g := r.g
	g.Lock()
	defer g.Unlock()
	r.pending = 0
	if err := gowebgpu.MapStatusError(status); err != nil {
		if status == webgpu.BufferMapAsyncStatus_DeviceLost {
			g.MarkLost(err.Error())
		}
		return fmt.Errorf("wgpu: %s: collect %q: %w", d.info.Name, r.label, err)
	}
	if err := g.Usable(); err != nil {
		return err
	}
	h := gowebgpu.Handle(r.staging)
	n := padded(size)
	copy(bytesOf(dst), hostBytes(mapped(h, n), n)[:size])
	rw := raw{device: deviceRef(g.WGPU()), queue: queueRef(g.Queue())}
	if err := rw.unmap(h, r.cerr); err != nil {
		return fmt.Errorf("wgpu: %s: collect %q: %w", d.info.Name, r.label, err)
	}
	return nil
}
