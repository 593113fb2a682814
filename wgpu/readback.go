package wgpu

import (
	"context"
	"fmt"
	"time"

	webgpu "github.com/rajveermalviya/go-webgpu/wgpu"
)

// Readback reads small results back to the host through a staging buffer
// allocated once, for loops that read a few values every iteration
// (a training step's loss) and must not allocate on the device each time:
// at once with [Read], or without waiting with [Device.SubmitRead] and
// later [Collect]. It is not safe for concurrent use.
type Readback struct {
	dev     *Device
	staging *webgpu.Buffer
	size    uint64
	label   string

	// The read SubmitRead started: its map's completion word (C memory,
	// which the map's callback may write whenever the device is polled)
	// and its size; pending until Collect.
	flag    mapFlag
	cerr    cerr
	pending uint64
}

// NewReadback allocates a staging buffer for reads of up to size bytes.
func (d *Device) NewReadback(label string, size uint64) (*Readback, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.usable(); err != nil {
		return nil, err
	}
	buf, err := d.createBuffer(&webgpu.BufferDescriptor{
		Label: label,
		Size:  padded(size),
		Usage: webgpu.BufferUsage_MapRead | webgpu.BufferUsage_CopyDst,
	})
	if err != nil {
		return nil, fmt.Errorf("wgpu: %s: readback %q (%d bytes): %w", d.info.Name, label, size, err)
	}
	return &Readback{dev: d, staging: buf, size: padded(size), label: label, flag: newMapFlag(), cerr: newCerr()}, nil
}

// Release frees the staging buffer. It is idempotent.
func (r *Readback) Release() {
	if r == nil || r.staging == nil {
		return
	}
	r.dev.mu.Lock()
	defer r.dev.mu.Unlock()
	if !r.dev.closed {
		r.staging.Release()
	}
	r.staging = nil
	if done, _ := r.flag.done(); done {
		r.flag.free()
	} // else the aborted map may still write it: 4 bytes leak
	r.cerr.free()
}

// Read copies the first len(dst) elements of src into dst, after all work
// submitted before it, like [Download] but through r's staging buffer.
func Read[T Elem](ctx context.Context, r *Readback, src *Buffer, dst []T) error {
	d := r.dev
	size := uint64(len(dst)) * 4
	switch {
	case src.dev != d:
		return fmt.Errorf("wgpu: read %q through %q: another device", src.label, r.label)
	case size > src.size || padded(size) > r.size:
		return fmt.Errorf("wgpu: read %d bytes of %q through %q: %q holds %d, the staging buffer %d", size, src.label, r.label, src.label, src.size, r.size)
	case size == 0:
		return nil
	}
	d.mu.Lock()
	if err := d.usable(); err != nil {
		d.mu.Unlock()
		return err
	}
	if r.staging == nil || r.pending > 0 {
		d.mu.Unlock()
		return fmt.Errorf("wgpu: read through %q: released, or a read submitted with SubmitRead is pending", r.label)
	}
	var rel releaser
	fail := func(err error) error {
		rel.run()
		d.mu.Unlock()
		return fmt.Errorf("wgpu: %s: read %q: %w", d.info.Name, src.label, err)
	}
	enc, err := d.dev.CreateCommandEncoder(nil)
	if err != nil {
		return fail(err)
	}
	rel.add(enc.Release)
	if err := enc.CopyBufferToBuffer(src.buf, 0, r.staging, 0, padded(size)); err != nil {
		return fail(err)
	}
	cmd, err := enc.Finish(nil)
	if err != nil {
		return fail(err)
	}
	rel.add(cmd.Release)
	d.submit(cmd)
	unlocked, err := d.wait(ctx, rel.run)
	if unlocked {
		return err
	}
	defer func() {
		rel.run()
		d.mu.Unlock()
	}()
	if err != nil {
		return err
	}
	if err := d.mapRead(r.staging, padded(size)); err != nil {
		return fmt.Errorf("wgpu: %s: read %q: %w", d.info.Name, src.label, err)
	}
	copy(bytesOf(dst), r.staging.GetMappedRange(0, uint(padded(size)))[:size])
	r.staging.Unmap()
	return nil
}

// SubmitRead is [Device.Submit] followed, in the same command buffer, by a
// copy of the first size bytes of src into r: it submits and returns at
// once, with the map of r's staging buffer requested. [Collect] waits for
// it and reads the values, so the host can prepare more work meanwhile.
// r must have no read pending.
func (d *Device) SubmitRead(r *Readback, src *Buffer, size uint64, ds ...Dispatch) error {
	switch {
	case r.dev != d || src.dev != d:
		return fmt.Errorf("wgpu: read %q through %q: %w", src.label, r.label, ErrWrongDevice)
	case size == 0 || size > src.size || padded(size) > r.size:
		return fmt.Errorf("wgpu: read %d bytes of %q through %q (%d and %d bytes): %w", size, src.label, r.label, src.size, r.size, ErrOutOfRange)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.usable(); err != nil {
		return err
	}
	switch {
	case r.staging == nil:
		return fmt.Errorf("wgpu: read through %q: %w", r.label, ErrReleased)
	case src.buf == nil:
		return fmt.Errorf("wgpu: read %q: %w", src.label, ErrReleased)
	case r.pending > 0:
		return fmt.Errorf("wgpu: read through %q: a read is pending (Collect it first)", r.label)
	}
	n := padded(size)
	cmd, err := d.encode(ds, nil, func(enc *webgpu.CommandEncoder) error {
		return enc.CopyBufferToBuffer(src.buf, 0, r.staging, 0, n)
	})
	if err != nil {
		return err
	}
	defer cmd.Release()
	d.submit(cmd)
	rw := raw{device: deviceRef(d.dev), queue: queueRef(d.queue)}
	if err := rw.mapRead(r.staging, n, r.flag, r.cerr); err != nil {
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
	// Polls at most a millisecond apart, as Device.Run's: a collecting
	// loop has usually submitted more work, which keeps the GPU busy
	// meanwhile, and tight polls would take CPU from the host's own work.
	status, err := d.waitFlag(ctx, r.flag, time.Millisecond)
	if err != nil {
		return fmt.Errorf("wgpu: %s: collect %q: %w", d.info.Name, r.label, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	r.pending = 0
	if err := mapStatusError(status); err != nil {
		if status == webgpu.BufferMapAsyncStatus_DeviceLost {
			d.markLost(err.Error())
		}
		return fmt.Errorf("wgpu: %s: collect %q: %w", d.info.Name, r.label, err)
	}
	if err := d.usable(); err != nil {
		return err
	}
	n := padded(size)
	copy(bytesOf(dst), hostBytes(mapped(r.staging, n), n)[:size])
	rw := raw{device: deviceRef(d.dev), queue: queueRef(d.queue)}
	if err := rw.unmap(r.staging, r.cerr); err != nil {
		return fmt.Errorf("wgpu: %s: collect %q: %w", d.info.Name, r.label, err)
	}
	return nil
}
