package wgpu

import (
	"context"
	"fmt"

	"github.com/coreattn/coreattn/wgpu/internal/backend"
)

// Readback reads small results back to the host through a staging buffer
// allocated once, for loops that read a few values every iteration
// (a training step's loss) and must not allocate on the device each time.
// It is not safe for concurrent use.
type Readback struct {
	dev     *Device
	staging backend.Buffer // nil once released
	size    uint64
	label   string
}

// NewReadback allocates a staging buffer for reads of up to size bytes.
func (d *Device) NewReadback(label string, size uint64) (*Readback, error) {
	buf, err := d.impl.NewBuffer(label, padded(size), backend.Staging, nil)
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
	r.staging.Release()
	r.staging = nil
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
	case r.staging == nil:
		return fmt.Errorf("wgpu: read through %q: released", r.label)
	}
	if err := src.usable("read"); err != nil {
		return err
	}
	if err := r.dev.impl.Read(ctx, src.impl, 0, bytesOf(dst), r.staging); err != nil {
		return fmt.Errorf("wgpu: read %q: %w", src.label, err)
	}
	return nil
}
