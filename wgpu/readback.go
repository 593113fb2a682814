package wgpu

import (
	"context"
	"fmt"

	webgpu "github.com/rajveermalviya/go-webgpu/wgpu"
)

// Readback reads small results back to the host through a staging buffer
// allocated once, for loops that read a few values every iteration
// (a training step's loss) and must not allocate on the device each time.
// It is not safe for concurrent use.
type Readback struct {
	dev     *Device
	staging *webgpu.Buffer
	size    uint64
	label   string
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
	return &Readback{dev: d, staging: buf, size: padded(size), label: label}, nil
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
	if r.staging == nil {
		d.mu.Unlock()
		return fmt.Errorf("wgpu: read through %q: released", r.label)
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
