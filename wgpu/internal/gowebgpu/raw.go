package gowebgpu

import (
	webgpu "github.com/rajveermalviya/go-webgpu/wgpu"

	"github.com/coreattn/coreattn/wgpu/internal/backend"
)

// Raw access for package wgpu's transfer engine, which drives staging
// buffers through wgpu-native's C API directly (its staging_cgo.go). Every
// use of a handle below holds the device's lock (Lock, Unlock), as every
// call of this package does.

// Lock takes the device's lock.
func (d *Device) Lock() { d.mu.Lock() }

// Unlock releases the device's lock.
func (d *Device) Unlock() { d.mu.Unlock() }

// Usable reports why the device cannot take work, or nil. Callers hold
// the lock.
func (d *Device) Usable() error { return d.usable() }

// Closed reports whether the device was closed (its handles are then
// freed). Callers hold the lock.
func (d *Device) Closed() bool { return d.closed }

// WGPU is the go-webgpu device.
func (d *Device) WGPU() *webgpu.Device { return d.dev }

// Queue is the device's queue.
func (d *Device) Queue() *webgpu.Queue { return d.queue }

// MarkLost marks the device lost (see markLost).
func (d *Device) MarkLost(reason string) { d.markLost(reason) }

// Handle is b's go-webgpu buffer, or nil where b was released or is not
// this runtime's. Callers hold the lock of b's device.
func Handle(b backend.Buffer) *webgpu.Buffer {
	x, ok := b.(*buffer)
	if !ok || x == nil {
		return nil
	}
	return x.buf
}

// MapStatusError is the error of a buffer map that ended with status (see
// mapStatusError).
func MapStatusError(status webgpu.BufferMapAsyncStatus) error { return mapStatusError(status) }
