//go:build linux && cgo

package dawn

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"unsafe"
)

// DeviceOptions configures a device.
type DeviceOptions struct {
	Label string
	// DisableRobustness turns off Dawn's bounds checks on buffer accesses
	// and the zeroing of workgroup memory (toggles disable_robustness and
	// disable_workgroup_init): faster kernels, and out-of-bounds accesses
	// become undefined. For measured, trusted kernels only.
	DisableRobustness bool
	// EnableToggles and DisableToggles are further device toggles.
	EnableToggles, DisableToggles []string
}

// Device is an open logical device with its queue. It is safe for
// concurrent use: calls on one device are serialised by its mutex.
type Device struct {
	in       *Instance
	info     AdapterInfo
	features Features // enabled on this device
	c        C.WGPUDevice
	queue    C.WGPUQueue
	sink     *C.ca_sink

	mu       sync.Mutex // guards every call on c and queue, released, staging
	released bool
	staging  *Buffer // map-read buffer reused by Read
}

// NewDevice opens a device on the adapter with all of the adapter's limits
// and every feature coreattn uses that the adapter has (f16, subgroups,
// subgroup matrices, timestamp queries). Timestamps are not quantised.
func (a *Adapter) NewDevice(ctx context.Context, opts DeviceOptions) (*Device, error) {
	var feats []C.uint32_t
	for _, f := range []Feature{FeatureShaderF16, FeatureSubgroups, FeatureSubgroupMatrix, FeatureTimestampQuery, FeatureImplicitSync} {
		for _, have := range a.info.Features.All {
			if have == f {
				feats = append(feats, C.uint32_t(f))
			}
		}
	}
	enable := append([]string(nil), opts.EnableToggles...)
	if opts.DisableRobustness {
		enable = append(enable, "disable_robustness", "disable_workgroup_init")
	}
	disable := append([]string{"timestamp_quantization"}, opts.DisableToggles...)
	en, nen, freeEn := cstrings(enable)
	defer freeEn()
	dis, ndis, freeDis := cstrings(disable)
	defer freeDis()
	label := C.CString(opts.Label)
	defer C.free(unsafe.Pointer(label))

	sink := C.ca_sink_new()
	r, err := newResult()
	if sink == nil || err != nil {
		return nil, fmt.Errorf("dawn: device: %w", ErrOutOfMemory)
	}
	var fp *C.uint32_t
	if len(feats) > 0 {
		fp = &feats[0]
	}
	f := C.ca_request_device(a.in.lib.procs, a.c, label, fp, C.size_t(len(feats)), en, nen, dis, ndis, sink, r)
	res, err := a.in.await(ctx, f, r)
	if err != nil {
		return nil, err // the sink is left to the device-lost callback
	}
	if res.status != C.WGPURequestDeviceStatus_Success || res.handle == nil {
		a.in.processEvents() // deliver the lost callback (FailedCreation)
		C.ca_sink_release(sink)
		return nil, fmt.Errorf("dawn: %s: request device: %w", a.info.Name, &APIError{Op: "request device", Kind: ErrValidation, Message: res.msg})
	}
	d := &Device{in: a.in, info: a.info, c: C.WGPUDevice(res.handle), sink: sink}
	d.queue = C.ca_device_queue(a.in.lib.procs, d.c)
	var on []Feature
	for _, f := range a.info.Features.All {
		if C.ca_device_has(a.in.lib.procs, d.c, C.uint32_t(f)) != 0 {
			on = append(on, f)
		}
	}
	d.features = featuresOf(on)
	return d, nil
}

// Info describes the device's adapter.
func (d *Device) Info() AdapterInfo { return d.info }

// Features are the features enabled on the device.
func (d *Device) Features() Features { return d.features }

// Release destroys the device and releases it; buffers and pipelines
// created from it become unusable. Safe to call more than once, from any
// goroutine.
func (d *Device) Release() {
	d.mu.Lock()
	if d.released {
		d.mu.Unlock()
		return
	}
	d.released = true
	if d.staging != nil {
		d.staging.releaseLocked()
	}
	C.ca_release_device(d.in.lib.procs, d.c, d.queue)
	d.mu.Unlock()
	d.in.processEvents() // the lost callback (Destroyed) drops its reference
	C.ca_sink_release(d.sink)
}

// Err returns a *DeviceLostError if the device was lost, else nil.
func (d *Device) Err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lostLocked()
}

// usableLocked returns why the device cannot be used, if it cannot.
func (d *Device) usableLocked() error {
	if d.released {
		return fmt.Errorf("dawn: %s: %w", d.info.Name, ErrReleased)
	}
	return d.lostLocked()
}

func (d *Device) lostLocked() error {
	var reason C.uint32_t
	var msg *C.char
	if C.ca_sink_lost(d.sink, &reason, &msg) == 0 {
		return nil
	}
	e := &DeviceLostError{Reason: LostReason(reason)}
	if msg != nil {
		e.Message = C.GoString(msg)
		C.free(unsafe.Pointer(msg))
	}
	return e
}

// takeUncaptured returns the first error Dawn reported outside any scope
// since the last call, as an *APIError, or nil.
func (d *Device) takeUncaptured(op string) error {
	var msg *C.char
	var dropped C.uint32_t
	t := C.ca_sink_take_error(d.sink, &msg, &dropped)
	if t == 0 {
		return nil
	}
	e := &APIError{Op: op, Kind: errorKind(uint32(t))}
	if msg != nil {
		e.Message = C.GoString(msg)
		C.free(unsafe.Pointer(msg))
	}
	if dropped > 0 {
		e.Message += fmt.Sprintf(" (and %d more)", uint32(dropped))
	}
	return e
}

func errorKind(t uint32) error {
	switch t {
	case C.WGPUErrorType_Validation:
		return ErrValidation
	case C.WGPUErrorType_OutOfMemory:
		return ErrOutOfMemory
	}
	return ErrInternal
}

// scoped runs fn (which calls Dawn) inside validation, out-of-memory and
// internal error scopes, and returns the first error any scope caught, an
// uncaptured error, or the device's loss. Callers hold d.mu.
func (d *Device) scoped(ctx context.Context, op string, fn func()) error {
	filters := []C.WGPUErrorFilter{C.WGPUErrorFilter_Validation, C.WGPUErrorFilter_OutOfMemory, C.WGPUErrorFilter_Internal}
	for _, f := range filters {
		C.ca_push_scope(d.in.lib.procs, d.c, f)
	}
	fn()
	// Pops resolve without GPU work; they run to the end even if ctx ends,
	// so no scope stays pushed.
	ctx = context.WithoutCancel(ctx)
	var first error
	for range filters {
		r, err := newResult()
		if err != nil {
			return err
		}
		f := C.ca_pop_scope(d.in.lib.procs, d.c, r)
		res, err := d.in.await(ctx, f, r)
		if err != nil {
			return err
		}
		if first == nil && res.status == C.WGPUPopErrorScopeStatus_Success && res.typ != C.WGPUErrorType_NoError {
			first = &APIError{Op: op, Kind: errorKind(res.typ), Message: res.msg}
		}
	}
	if first == nil {
		first = d.takeUncaptured(op)
	}
	if lost := d.lostLocked(); lost != nil {
		if first == nil {
			return lost
		}
		return errors.Join(first, lost)
	}
	return first
}

// lockUsable locks d.mu and checks the device; on error d.mu is unlocked.
func (d *Device) lockUsable() error {
	d.mu.Lock()
	if err := d.usableLocked(); err != nil {
		d.mu.Unlock()
		return err
	}
	return nil
}
