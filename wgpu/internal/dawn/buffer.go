//go:build linux && cgo

package dawn

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"fmt"
	"unsafe"
)

// Buffer is a GPU buffer.
type Buffer struct {
	d     *Device
	c     C.WGPUBuffer
	label string
	size  uint64
	usage BufferUsage

	released bool // guarded by d.mu
}

// Size is the buffer's size in bytes.
func (b *Buffer) Size() uint64 { return b.size }

// Label is the name given at creation.
func (b *Buffer) Label() string { return b.label }

// Usage is the buffer's usage set.
func (b *Buffer) Usage() BufferUsage { return b.usage }

// Release destroys the buffer. Safe to call more than once, from any
// goroutine, and after the device was released.
func (b *Buffer) Release() {
	b.d.mu.Lock()
	defer b.d.mu.Unlock()
	b.releaseLocked()
}

func (b *Buffer) releaseLocked() {
	if b.released {
		return
	}
	b.released = true
	C.ca_release_buffer(b.d.in.lib.procs, b.c)
}

// NewBuffer creates a buffer of size bytes (a positive multiple of 4, at
// most the adapter's MaxBufferSize).
func (d *Device) NewBuffer(ctx context.Context, label string, size uint64, usage BufferUsage) (*Buffer, error) {
	if size == 0 || size%4 != 0 {
		return nil, fmt.Errorf("dawn: buffer %s: size %d is not a positive multiple of 4: %w", label, size, ErrBadArgument)
	}
	if lim := d.info.Limits.MaxBufferSize; lim > 0 && size > lim {
		return nil, fmt.Errorf("dawn: buffer %s: size %d exceeds the adapter's maximum %d: %w", label, size, lim, ErrBadArgument)
	}
	if err := d.lockUsable(); err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	return d.newBufferLocked(ctx, label, size, usage)
}

func (d *Device) newBufferLocked(ctx context.Context, label string, size uint64, usage BufferUsage) (*Buffer, error) {
	cl := C.CString(label)
	defer C.free(unsafe.Pointer(cl))
	b := &Buffer{d: d, label: label, size: size, usage: usage}
	err := d.scoped(ctx, "create buffer "+label, func() {
		b.c = C.ca_create_buffer(d.in.lib.procs, d.c, cl, C.uint64_t(size), C.uint64_t(usage))
	})
	if err != nil {
		if b.c != nil {
			b.releaseLocked()
		}
		return nil, fmt.Errorf("dawn: %s: %w", d.info.Name, err)
	}
	return b, nil
}

// checkRange validates a byte range of b for a copy.
func (b *Buffer) checkRange(op string, off uint64, n int) error {
	if off%4 != 0 || n%4 != 0 {
		return fmt.Errorf("dawn: %s %s: offset %d and length %d must be multiples of 4: %w", op, b.label, off, n, ErrBadArgument)
	}
	if off > b.size || uint64(n) > b.size-off {
		return fmt.Errorf("dawn: %s %s: range [%d, %d) exceeds its %d bytes: %w", op, b.label, off, off+uint64(n), b.size, ErrBadArgument)
	}
	return nil
}

// Write copies data into b at offset off (both multiples of 4) through the
// queue; the copy is ordered before work submitted afterwards.
func (d *Device) Write(b *Buffer, off uint64, data []byte) error {
	if err := b.checkRange("write", off, len(data)); err != nil {
		return err
	}
	if len(data) == 0 {
		return nil
	}
	if err := d.lockUsable(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	if b.released {
		return fmt.Errorf("dawn: write %s: %w", b.label, ErrReleased)
	}
	// Dawn copies data before returning, so passing Go memory is safe.
	C.ca_write_buffer(d.in.lib.procs, d.queue, b.c, C.uint64_t(off), unsafe.Pointer(&data[0]), C.size_t(len(data)))
	if err := d.takeUncaptured("write " + b.label); err != nil {
		return fmt.Errorf("dawn: %s: %w", d.info.Name, err)
	}
	return nil
}

// Read copies len(dst) bytes of b from offset off (both multiples of 4)
// into dst, after all work submitted before it. b needs UsageCopySrc.
func (d *Device) Read(ctx context.Context, b *Buffer, off uint64, dst []byte) error {
	if err := b.checkRange("read", off, len(dst)); err != nil {
		return err
	}
	if b.usage&UsageCopySrc == 0 {
		return fmt.Errorf("dawn: read %s: the buffer lacks UsageCopySrc: %w", b.label, ErrBadArgument)
	}
	if len(dst) == 0 {
		return nil
	}
	if err := d.lockUsable(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	if b.released {
		return fmt.Errorf("dawn: read %s: %w", b.label, ErrReleased)
	}
	n := uint64(len(dst))
	if d.staging == nil || d.staging.size < n {
		if d.staging != nil {
			d.staging.releaseLocked()
			d.staging = nil
		}
		st, err := d.newBufferLocked(ctx, "staging", max(n, 1<<20), UsageMapRead|UsageCopyDst)
		if err != nil {
			return err
		}
		d.staging = st
	}
	st := d.staging
	err := d.scoped(ctx, "read "+b.label, func() {
		C.ca_copy_buffer(d.in.lib.procs, d.c, d.queue, b.c, C.uint64_t(off), st.c, 0, C.uint64_t(n))
	})
	if err != nil {
		return fmt.Errorf("dawn: %s: %w", d.info.Name, err)
	}
	r, err := newResult()
	if err != nil {
		return err
	}
	f := C.ca_map_read(d.in.lib.procs, st.c, 0, C.size_t(n), r)
	res, err := d.in.await(ctx, f, r)
	if err != nil {
		// The map stays pending; drop the staging buffer so the next Read
		// does not find it mapped.
		st.releaseLocked()
		d.staging = nil
		return err
	}
	if res.status != C.WGPUMapAsyncStatus_Success {
		if lost := d.lostLocked(); lost != nil {
			return fmt.Errorf("dawn: read %s: %w", b.label, lost)
		}
		return fmt.Errorf("dawn: %s: read %s: %w", d.info.Name, b.label, &APIError{Op: "map", Kind: ErrValidation, Message: res.msg})
	}
	if C.ca_read_mapped(d.in.lib.procs, st.c, 0, C.size_t(n), unsafe.Pointer(&dst[0])) != 0 {
		return fmt.Errorf("dawn: %s: read %s: no mapped range: %w", d.info.Name, b.label, ErrInternal)
	}
	return nil
}

// Copy copies n bytes of src at srcOff into dst at dstOff (all multiples
// of 4) on the queue, after work submitted before it; dst and src must
// differ, src needs UsageCopySrc and dst UsageCopyDst.
func (d *Device) Copy(ctx context.Context, dst *Buffer, dstOff uint64, src *Buffer, srcOff, n uint64) error {
	if err := src.checkRange("copy from", srcOff, int(n)); err != nil {
		return err
	}
	if err := dst.checkRange("copy to", dstOff, int(n)); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	if err := d.lockUsable(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	if src.released || dst.released {
		return fmt.Errorf("dawn: copy %s to %s: %w", src.label, dst.label, ErrReleased)
	}
	err := d.scoped(ctx, "copy "+src.label+" to "+dst.label, func() {
		C.ca_copy_buffer(d.in.lib.procs, d.c, d.queue, src.c, C.uint64_t(srcOff), dst.c, C.uint64_t(dstOff), C.uint64_t(n))
	})
	if err != nil {
		return fmt.Errorf("dawn: %s: %w", d.info.Name, err)
	}
	return nil
}
