package wgpu

import (
	"context"
	"errors"
	"fmt"
	"unsafe"

	webgpu "github.com/rajveermalviya/go-webgpu/wgpu"
)

// Elem is an element type a buffer can hold.
type Elem interface{ ~float32 | ~int32 | ~uint32 }

// Buffer is a storage buffer on a device. Its size is rounded up to 16 bytes
// internally (and is never zero, which WebGPU bindings forbid); Size reports
// the size asked for.
type Buffer struct {
	dev   *Device
	buf   *webgpu.Buffer
	size  uint64
	label string
}

// Size is the buffer's logical size in bytes.
func (b *Buffer) Size() uint64 { return b.size }

// Label is the name given at creation, used in errors.
func (b *Buffer) Label() string { return b.label }

// Device is the device the buffer lives on.
func (b *Buffer) Device() *Device { return b.dev }

// Release frees the buffer's memory. It is idempotent and safe to call
// from several goroutines at once: the handle is checked and cleared under
// the device's lock, which every other use of it holds too, so exactly one
// call frees it (go-webgpu crashes on a second free).
func (b *Buffer) Release() {
	if b == nil || b.dev == nil {
		return
	}
	b.dev.mu.Lock()
	defer b.dev.mu.Unlock()
	if b.buf == nil {
		return
	}
	if !b.dev.closed {
		b.buf.Destroy()
		b.buf.Release()
	}
	b.buf = nil
}

func padded(size uint64) uint64 {
	if size < 16 {
		return 16
	}
	return (size + 15) &^ 15
}

// MaxBufferBytes is the largest storage buffer the device can create and
// bind: the smaller of the adapter's buffer-size and storage-binding limits.
func (d *Device) MaxBufferBytes() uint64 {
	return min(d.info.Limits.MaxBufferSize, d.info.Limits.MaxStorageBufferBindingSize)
}

// ErrTooLarge is returned (wrapped) when a buffer would exceed the
// device's limit for one buffer (MaxBufferBytes): a smaller call may fit
// where this one does not. Packages that check their own scratch buffers
// against the limit wrap it too.
var ErrTooLarge = errors.New("wgpu: buffer too large for the adapter")

// checkSize rejects a storage buffer that the device cannot bind.
func (d *Device) checkSize(label string, size uint64) error {
	if max := d.MaxBufferBytes(); padded(size) > max {
		return fmt.Errorf("%w: %s: buffer %q of %d bytes exceeds the limit of %d bytes for one buffer", ErrTooLarge, d.info.Name, label, size, max)
	}
	return nil
}

// NewBuffer creates a zero-filled storage buffer of size bytes.
func (d *Device) NewBuffer(label string, size uint64) (*Buffer, error) {
	if err := d.checkSize(label, size); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.usable(); err != nil {
		return nil, err
	}
	buf, err := d.createBuffer(&webgpu.BufferDescriptor{
		Label: label,
		Size:  padded(size),
		Usage: webgpu.BufferUsage_Storage | webgpu.BufferUsage_CopySrc | webgpu.BufferUsage_CopyDst,
	})
	if err != nil {
		return nil, fmt.Errorf("wgpu: %s: create buffer %q (%d bytes): %w", d.info.Name, label, size, err)
	}
	return &Buffer{dev: d, buf: buf, size: size, label: label}, nil
}

// bytesOf views a slice of elements as bytes without copying.
func bytesOf[T Elem](data []T) []byte {
	if len(data) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&data[0])), len(data)*4)
}

// Upload creates a storage buffer holding data. Large data goes through
// the device's [Device.Transfer].
func Upload[T Elem](d *Device, label string, data []T) (*Buffer, error) {
	size := uint64(len(data)) * 4
	if size >= stagedMinBytes {
		b, err := d.NewBuffer(label, size)
		if err != nil {
			return nil, err
		}
		if err := d.Transfer().Upload(context.Background(), b, 0, bytesOf(data)); err != nil {
			b.Release()
			return nil, err
		}
		return b, nil
	}
	if err := d.checkSize(label, size); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.usable(); err != nil {
		return nil, err
	}
	buf, err := d.createBuffer(&webgpu.BufferDescriptor{
		Label:            label,
		Size:             padded(size),
		Usage:            webgpu.BufferUsage_Storage | webgpu.BufferUsage_CopySrc | webgpu.BufferUsage_CopyDst,
		MappedAtCreation: true,
	})
	if err != nil {
		return nil, fmt.Errorf("wgpu: %s: upload %q (%d bytes): %w", d.info.Name, label, size, err)
	}
	copy(buf.GetMappedRange(0, uint(padded(size))), bytesOf(data))
	if err := buf.Unmap(); err != nil {
		buf.Release()
		return nil, fmt.Errorf("wgpu: %s: upload %q: %w", d.info.Name, label, err)
	}
	return &Buffer{dev: d, buf: buf, size: size, label: label}, nil
}

// stagedMinBytes is the size from which Upload and Write go through the
// staging ring: below it, wgpu's own write path, which submits nothing
// until the next submission, is as fast (docs/transfer.md).
const stagedMinBytes = 1 << 20

// Write copies data into b at element offset off: large data through the
// device's [Device.Transfer], small data through the queue. Work submitted
// afterwards sees it.
func Write[T Elem](b *Buffer, off int, data []T) error {
	d := b.dev
	end := uint64(off+len(data)) * 4
	if off < 0 || end > b.size {
		return fmt.Errorf("wgpu: write %d elements at %d into %q (%d bytes): %w", len(data), off, b.label, b.size, ErrOutOfRange)
	}
	if len(data) == 0 {
		return nil
	}
	if uint64(len(data))*4 >= stagedMinBytes {
		return d.Transfer().Upload(context.Background(), b, uint64(off)*4, bytesOf(data))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.usable(); err != nil {
		return err
	}
	if err := d.queue.WriteBuffer(b.buf, uint64(off)*4, bytesOf(data)); err != nil {
		return fmt.Errorf("wgpu: %s: write %q: %w", d.info.Name, b.label, err)
	}
	return nil
}

// Download copies the first len(dst) elements of b into dst, waiting for all
// work submitted before it, through the device's [Device.Transfer].
func Download[T Elem](ctx context.Context, b *Buffer, dst []T) error {
	size := uint64(len(dst)) * 4
	if size > b.size {
		return fmt.Errorf("wgpu: download %d bytes from %q, which holds %d: %w", size, b.label, b.size, ErrOutOfRange)
	}
	if size == 0 {
		return nil
	}
	return b.dev.Transfer().Download(ctx, bytesOf(dst), b, 0)
}

// UploadUniform creates a uniform buffer holding data, for small kernel
// parameters. Its size must be a multiple of 16 bytes.
func UploadUniform[T Elem](d *Device, label string, data []T) (*Buffer, error) {
	size := uint64(len(data)) * 4
	if size == 0 || size%16 != 0 {
		return nil, fmt.Errorf("wgpu: uniform %q: %d bytes, want a positive multiple of 16", label, size)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.usable(); err != nil {
		return nil, err
	}
	buf, err := d.dev.CreateBufferInit(&webgpu.BufferInitDescriptor{
		Label:    label,
		Contents: bytesOf(data),
		Usage:    webgpu.BufferUsage_Uniform | webgpu.BufferUsage_CopyDst,
	})
	if err != nil {
		return nil, fmt.Errorf("wgpu: %s: uniform %q: %w", d.info.Name, label, err)
	}
	d.created.Add(1)
	return &Buffer{dev: d, buf: buf, size: size, label: label}, nil
}
