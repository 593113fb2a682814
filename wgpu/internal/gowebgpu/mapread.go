package gowebgpu

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"

	webgpu "github.com/rajveermalviya/go-webgpu/wgpu"

	"github.com/coreattn/coreattn/wgpu/internal/backend"
)

// mapRead maps buf for reading. Callers hold d.mu and have already waited
// for the work that writes buf, so the map completes in the next poll.
//
// go-webgpu v0.17.1 gives wgpu-native, as the map callback's user data, a
// pointer to a Go variable that nothing in Go keeps alive. A garbage
// collection between MapAsync and the callback can free it, and the
// callback then panics ("misuse of an invalid Handle"; seen in the pool
// tests, where other goroutines allocate while one waits). So the map is
// requested only when the GPU is done with buf, and the collector is held
// off for the microseconds between the request and the callback.
//
// holdGC stops only automatic collections: one forced with runtime.GC in
// that window still frees the variable, and go-webgpu's callback panics
// before it reaches ours. pollMap recovers from that panic; the map has
// completed by then (wgpu runs map callbacks on completion), so it is
// taken as done.
func (d *Device) mapRead(buf *webgpu.Buffer, size uint64) error {
	resume := holdGC()
	var status webgpu.BufferMapAsyncStatus
	mapped := false
	err := buf.MapAsync(webgpu.MapMode_Read, 0, size, func(s webgpu.BufferMapAsyncStatus) { status, mapped = s, true })
	if err == nil && d.pollMap() {
		d.drain() // finish the poll that the panic cut short
		status, mapped = webgpu.BufferMapAsyncStatus_Success, true
	}
	resume()
	switch {
	case err != nil:
		return err
	case !mapped:
		return fmt.Errorf("map of %d bytes did not complete", size)
	}
	err = mapStatusError(status)
	if errors.Is(err, backend.ErrDeviceLost) {
		d.markLost(err.Error())
	}
	return err
}

// mapStatusError is the error of a buffer map that ended with status: nil
// for success, ErrDeviceLost where the device is lost (wgpu-native reports
// any device error of the map so), else the status.
func mapStatusError(status webgpu.BufferMapAsyncStatus) error {
	switch status {
	case webgpu.BufferMapAsyncStatus_Success:
		return nil
	case webgpu.BufferMapAsyncStatus_DeviceLost:
		return fmt.Errorf("%w: buffer map failed: %s", backend.ErrDeviceLost, status)
	}
	return fmt.Errorf("map failed: %s", status)
}

// pollMap drains the device (the work is done: it returns at once, with
// the map callback run) and reports whether go-webgpu lost the callback's
// handle (see mapRead), recovering from the panic that follows. Any other
// panic goes on.
func (d *Device) pollMap() (lost bool) {
	defer func() {
		if r := recover(); r != nil {
			if s, ok := r.(string); ok && strings.Contains(s, "invalid Handle") {
				lost = true
				return
			}
			panic(r)
		}
	}()
	d.drain()
	return false
}

// gcHold counts the goroutines inside holdGC windows, process-wide because
// the garbage collector is.
var gcHold struct {
	sync.Mutex
	n   int
	old int // the GC percentage to restore
}

// holdGC turns the garbage collector off (waiting for a cycle in progress
// to finish) until the returned func is called; windows may overlap.
func holdGC() (resume func()) {
	gcHold.Lock()
	if gcHold.n == 0 {
		gcHold.old = debug.SetGCPercent(-1)
	}
	gcHold.n++
	gcHold.Unlock()
	return func() {
		gcHold.Lock()
		gcHold.n--
		if gcHold.n == 0 {
			debug.SetGCPercent(gcHold.old)
		}
		gcHold.Unlock()
	}
}
