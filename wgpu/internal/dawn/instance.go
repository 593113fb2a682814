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
	"sync"
	"time"
	"unsafe"
)

// InstanceOptions configures an Instance.
type InstanceOptions struct {
	// AllowUnsafeAPIs sets Dawn's allow_unsafe_apis toggle, which
	// experimental features such as subgroup matrices need.
	AllowUnsafeAPIs bool
	// Toggles are further instance toggles to enable.
	Toggles []string
}

// Instance is a Dawn instance: the root of adapters and devices, and the
// place where asynchronous work is waited for.
type Instance struct {
	lib *Library
	c   C.WGPUInstance

	mu       sync.Mutex // serialises waits and event processing
	timed    bool       // WaitAny accepts a timeout (instance feature TimedWaitAny)
	released bool
}

// waitSlice bounds one blocking WaitAny, so a cancelled context is noticed
// within about this long.
const waitSlice = 2 * time.Millisecond

// cstrings copies Go strings to C; free releases them.
func cstrings(ss []string) (arr **C.char, n C.size_t, free func()) {
	if len(ss) == 0 {
		return nil, 0, func() {}
	}
	p := C.malloc(C.size_t(len(ss)) * C.size_t(unsafe.Sizeof(uintptr(0))))
	a := unsafe.Slice((**C.char)(p), len(ss))
	for i, s := range ss {
		a[i] = C.CString(s)
	}
	return (**C.char)(p), C.size_t(len(ss)), func() {
		for _, c := range a {
			C.free(unsafe.Pointer(c))
		}
		C.free(p)
	}
}

// NewInstance creates an instance. It asks for timed waits and falls back
// to polling with ProcessEvents where the library refuses them.
func (l *Library) NewInstance(opts InstanceOptions) (*Instance, error) {
	toggles := append([]string(nil), opts.Toggles...)
	if opts.AllowUnsafeAPIs {
		toggles = append(toggles, "allow_unsafe_apis")
	}
	arr, n, free := cstrings(toggles)
	defer free()
	in := &Instance{lib: l, timed: true}
	in.c = C.ca_create_instance(l.procs, arr, n, 1)
	if in.c == nil {
		in.timed = false
		in.c = C.ca_create_instance(l.procs, arr, n, 0)
	}
	if in.c == nil {
		return nil, fmt.Errorf("%w: %s: wgpuCreateInstance failed", ErrUnsupportedLibrary, l.path)
	}
	return in, nil
}

// Library is the library the instance came from.
func (in *Instance) Library() *Library { return in.lib }

// Release releases the instance. Adapters and devices created from it stay
// usable until released themselves. Safe to call more than once.
func (in *Instance) Release() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.released {
		return
	}
	in.released = true
	C.ca_release_instance(in.lib.procs, in.c)
}

// processEvents delivers callbacks that are ready (device loss among them).
func (in *Instance) processEvents() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.released {
		C.ca_process_events(in.lib.procs, in.c)
	}
}

// wait blocks until the callback of future f has filled r, or ctx ends.
// On ctx's end r is left to the callback, which frees it when it comes.
func (in *Instance) wait(ctx context.Context, f C.WGPUFuture, r *C.ca_result) error {
	backoff := 10 * time.Microsecond
	for C.ca_result_done(r) == 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		in.mu.Lock()
		if in.released {
			in.mu.Unlock()
			return fmt.Errorf("dawn: wait: instance: %w", ErrReleased)
		}
		timed := in.timed
		if timed {
			if C.ca_wait_any(in.lib.procs, in.c, f, C.uint64_t(waitSlice.Nanoseconds())) == C.WGPUWaitStatus_Error {
				in.timed = false // this build cannot wait on this kind of future
			}
		} else {
			C.ca_process_events(in.lib.procs, in.c)
		}
		in.mu.Unlock()
		if !timed && C.ca_result_done(r) == 0 {
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Millisecond)
		}
	}
	return nil
}

// result is Go's view of a ca_result after its callback ran.
type result struct {
	status uint32
	typ    uint32
	handle unsafe.Pointer
	msg    string
	msgs   []CompileMessage
}

// await waits for r and copies it out, then drops Go's reference.
func (in *Instance) await(ctx context.Context, f C.WGPUFuture, r *C.ca_result) (result, error) {
	if err := in.wait(ctx, f, r); err != nil {
		C.ca_result_release(r)
		return result{}, err
	}
	out := result{status: uint32(r.status), typ: uint32(r._type), handle: r.handle}
	if r.msg != nil {
		out.msg = C.GoString(r.msg)
	}
	if r.nmsgs > 0 {
		ms := unsafe.Slice(r.msgs, int(r.nmsgs))
		out.msgs = make([]CompileMessage, len(ms))
		for i, m := range ms {
			sev := "info"
			switch m._type {
			case C.WGPUCompilationMessageType_Error:
				sev = "error"
			case C.WGPUCompilationMessageType_Warning:
				sev = "warning"
			}
			out.msgs[i] = CompileMessage{Severity: sev, Line: uint64(m.line), Column: uint64(m.col)}
			if m.text != nil {
				out.msgs[i].Text = C.GoString(m.text)
			}
		}
	}
	C.ca_result_release(r)
	return out, nil
}

// newResult allocates a callback record.
func newResult() (*C.ca_result, error) {
	r := C.ca_result_new()
	if r == nil {
		return nil, fmt.Errorf("dawn: callback record: %w", ErrOutOfMemory)
	}
	return r, nil
}
