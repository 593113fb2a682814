package gowebgpu

import (
	"context"
	"fmt"

	webgpu "github.com/rajveermalviya/go-webgpu/wgpu"

	"github.com/coreattn/coreattn/wgpu/internal/backend"
)

// buffer is a go-webgpu buffer. Its handle is read and cleared under the
// device's lock, which every use of it holds too, so exactly one Release
// frees it (go-webgpu crashes on a second free).
type buffer struct {
	d     *Device
	buf   *webgpu.Buffer // nil once released
	size  uint64
	label string
	kind  backend.Kind
}

// Release frees the buffer's memory. It is idempotent, safe from several
// goroutines at once and after the device was closed.
func (b *buffer) Release() {
	if b == nil {
		return
	}
	b.d.mu.Lock()
	defer b.d.mu.Unlock()
	if b.buf == nil {
		return
	}
	if !b.d.closed {
		if b.kind != backend.Staging {
			b.buf.Destroy()
		}
		b.buf.Release()
	}
	b.buf = nil
}

// handle returns b's live handle, or an error naming what. Callers hold
// d.mu.
func (d *Device) handle(b backend.Buffer, what string) (*buffer, error) {
	x, ok := b.(*buffer)
	switch {
	case !ok || x == nil:
		return nil, fmt.Errorf("wgpu: %s is nil or not a go-webgpu buffer", what)
	case x.d != d:
		return nil, fmt.Errorf("wgpu: %s (%q) belongs to another device", what, x.label)
	case x.buf == nil:
		return nil, fmt.Errorf("wgpu: %s (%q): %w: released", what, x.label, backend.ErrReleased)
	}
	return x, nil
}

// NewBuffer creates a buffer of size bytes holding init, or zeros.
func (d *Device) NewBuffer(label string, size uint64, kind backend.Kind, init []byte) (backend.Buffer, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.usable(); err != nil {
		return nil, err
	}
	var buf *webgpu.Buffer
	var err error
	switch kind {
	case backend.Storage:
		buf, err = d.CreateBuffer(&webgpu.BufferDescriptor{
			Label:            label,
			Size:             size,
			Usage:            webgpu.BufferUsage_Storage | webgpu.BufferUsage_CopySrc | webgpu.BufferUsage_CopyDst,
			MappedAtCreation: init != nil,
		})
		if err == nil && init != nil {
			copy(buf.GetMappedRange(0, uint(size)), init)
			if err = buf.Unmap(); err != nil {
				buf.Release()
			}
		}
	case backend.Uniform:
		contents := make([]byte, size)
		copy(contents, init)
		buf, err = d.dev.CreateBufferInit(&webgpu.BufferInitDescriptor{
			Label:    label,
			Contents: contents,
			Usage:    webgpu.BufferUsage_Uniform | webgpu.BufferUsage_CopyDst,
		})
	case backend.Staging:
		buf, err = d.CreateBuffer(&webgpu.BufferDescriptor{
			Label: label,
			Size:  size,
			Usage: webgpu.BufferUsage_MapRead | webgpu.BufferUsage_CopyDst,
		})
	default:
		return nil, fmt.Errorf("wgpu: buffer %q: kind %d does not exist", label, kind)
	}
	if err != nil {
		return nil, fmt.Errorf("wgpu: %s: create buffer %q (%d bytes): %w", d.info.Name, label, size, err)
	}
	if kind == backend.Uniform {
		d.created.Add(1) // CreateBufferInit, which CreateBuffer does not count
	}
	return &buffer{d: d, buf: buf, size: size, label: label, kind: kind}, nil
}

// Write copies data into b at byte offset off through the queue.
func (d *Device) Write(b backend.Buffer, off uint64, data []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.usable(); err != nil {
		return err
	}
	x, err := d.handle(b, "write target")
	if err != nil {
		return err
	}
	if err := d.queue.WriteBuffer(x.buf, off, data); err != nil {
		return fmt.Errorf("wgpu: %s: write %q: %w", d.info.Name, x.label, err)
	}
	return nil
}

// Read copies len(dst) bytes of src at byte offset off into dst after all
// work submitted before it, through staging or a buffer of its own.
func (d *Device) Read(ctx context.Context, src backend.Buffer, off uint64, dst []byte, staging backend.Buffer) error {
	size := uint64(len(dst))
	padded := (size + 15) &^ 15
	d.mu.Lock()
	if err := d.usable(); err != nil {
		d.mu.Unlock()
		return err
	}
	var rel releaser
	fail := func(err error) error {
		rel.run()
		d.mu.Unlock()
		return err
	}
	s, err := d.handle(src, "read source")
	if err != nil {
		return fail(err)
	}
	wrap := func(err error) error { return fmt.Errorf("wgpu: %s: read %q: %w", d.info.Name, s.label, err) }
	var st *webgpu.Buffer
	if staging != nil {
		x, err := d.handle(staging, "staging buffer")
		if err != nil {
			return fail(err)
		}
		st = x.buf
	} else {
		if st, err = d.CreateBuffer(&webgpu.BufferDescriptor{
			Label: s.label + " readback",
			Size:  padded,
			Usage: webgpu.BufferUsage_MapRead | webgpu.BufferUsage_CopyDst,
		}); err != nil {
			return fail(wrap(err))
		}
		rel.add(st.Release)
	}
	enc, err := d.dev.CreateCommandEncoder(nil)
	if err != nil {
		return fail(wrap(err))
	}
	rel.add(enc.Release)
	n := padded // the whole 16-byte words, within src's padded size
	if off > 0 {
		n = (size + 3) &^ 3
	}
	if err := enc.CopyBufferToBuffer(s.buf, off, st, 0, n); err != nil {
		return fail(wrap(err))
	}
	cmd, err := enc.Finish(nil)
	if err != nil {
		return fail(wrap(err))
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
	if err := d.mapRead(st, padded); err != nil {
		return wrap(err)
	}
	copy(dst, st.GetMappedRange(0, uint(padded))[:size])
	st.Unmap()
	return nil
}

// Copy copies n bytes of src at srcOff into dst at dstOff on the queue.
func (d *Device) Copy(dst backend.Buffer, dstOff uint64, src backend.Buffer, srcOff, n uint64) error {
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
	enc, err := d.dev.CreateCommandEncoder(nil)
	if err != nil {
		return fmt.Errorf("wgpu: %s: copy: %w", d.info.Name, err)
	}
	defer enc.Release()
	if err := enc.CopyBufferToBuffer(s.buf, srcOff, t.buf, dstOff, n); err != nil {
		return fmt.Errorf("wgpu: %s: copy %q to %q: %w", d.info.Name, s.label, t.label, err)
	}
	cmd, err := enc.Finish(nil)
	if err != nil {
		return fmt.Errorf("wgpu: %s: copy: %w", d.info.Name, err)
	}
	defer cmd.Release()
	d.submit(cmd)
	return nil
}
