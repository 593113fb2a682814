package wgpu

/*
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// The few declarations of wgpu-native 0.17's C API (webgpu.h) that the
// staging ring calls directly. The library itself is linked by go-webgpu;
// these calls go to the same copy. Handles are opaque pointers and enums
// are 32-bit, as in webgpu.h.
typedef void *ca_device;
typedef void *ca_queue;
typedef void *ca_buffer;
typedef void *ca_encoder;
typedef void *ca_commands;
typedef void (*ca_map_cb)(int32_t status, void *userdata);
typedef void (*ca_error_cb)(int32_t type, char const *message, void *userdata);

extern void wgpuDevicePushErrorScope(ca_device device, int32_t filter);
extern void wgpuDevicePopErrorScope(ca_device device, ca_error_cb callback, void *userdata);
extern ca_encoder wgpuDeviceCreateCommandEncoder(ca_device device, void const *descriptor);
extern void wgpuCommandEncoderCopyBufferToBuffer(ca_encoder encoder, ca_buffer source, uint64_t source_offset, ca_buffer destination, uint64_t destination_offset, uint64_t size);
extern ca_commands wgpuCommandEncoderFinish(ca_encoder encoder, void const *descriptor);
extern void wgpuCommandEncoderRelease(ca_encoder encoder);
extern void wgpuCommandBufferRelease(ca_commands commands);
extern void wgpuQueueSubmit(ca_queue queue, size_t count, ca_commands const *commands);
extern void wgpuBufferMapAsync(ca_buffer buffer, uint32_t mode, size_t offset, size_t size, ca_map_cb callback, void *userdata);
extern void *wgpuBufferGetMappedRange(ca_buffer buffer, size_t offset, size_t size);
extern void wgpuBufferUnmap(ca_buffer buffer);
extern uint64_t wgpuBufferGetSize(ca_buffer buffer);

enum {
	CA_FILTER_VALIDATION = 0, // WGPUErrorFilter_Validation
	CA_FILTER_OOM = 1,        // WGPUErrorFilter_OutOfMemory
	CA_MAP_READ = 1,          // WGPUMapMode_Read
	CA_MAP_WRITE = 2,         // WGPUMapMode_Write
};

// ca_error receives the first error of a call's error scopes.
typedef struct {
	int32_t type; // WGPUErrorType; 0 (NoError) while none
	char message[512];
} ca_error;

static void ca_on_error(int32_t type, char const *message, void *userdata) {
	ca_error *e = userdata;
	if (type == 0 || e->type != 0) {
		return;
	}
	e->type = type;
	strncpy(e->message, message ? message : "", sizeof e->message - 1);
	e->message[sizeof e->message - 1] = 0;
}

// ca_on_map records a map's status, plus one, in the slot's flag: 0 means
// pending. It runs inside whichever wgpuDevicePoll completes the map and
// touches only C memory, so Go's collector cannot pull anything from under
// it (go-webgpu's own MapAsync hands C a Go pointer; see mapread.go).
static void ca_on_map(int32_t status, void *userdata) {
	__atomic_store_n((int32_t *)userdata, status + 1, __ATOMIC_RELEASE);
}

static int32_t ca_map_state(int32_t *flag) {
	return __atomic_load_n(flag, __ATOMIC_ACQUIRE);
}

static void ca_push(ca_device device) {
	wgpuDevicePushErrorScope(device, CA_FILTER_OOM);
	wgpuDevicePushErrorScope(device, CA_FILTER_VALIDATION);
}

// ca_pop pops the two scopes ca_push pushed and reports whether either
// held an error.
static int ca_pop(ca_device device, ca_error *err) {
	wgpuDevicePopErrorScope(device, ca_on_error, err);
	wgpuDevicePopErrorScope(device, ca_on_error, err);
	return err->type != 0;
}

// ca_copy encodes and submits one buffer-to-buffer copy. It submits
// nothing when encoding failed (an invalid command buffer must not reach
// the queue).
static int ca_copy(ca_device device, ca_queue queue, ca_buffer src, uint64_t src_off, ca_buffer dst, uint64_t dst_off, uint64_t size, ca_error *err) {
	ca_push(device);
	ca_encoder enc = wgpuDeviceCreateCommandEncoder(device, NULL);
	ca_commands cmd = NULL;
	if (enc != NULL) {
		wgpuCommandEncoderCopyBufferToBuffer(enc, src, src_off, dst, dst_off, size);
		cmd = wgpuCommandEncoderFinish(enc, NULL);
		wgpuCommandEncoderRelease(enc);
	}
	if (ca_pop(device, err) || cmd == NULL) {
		if (cmd != NULL) {
			wgpuCommandBufferRelease(cmd);
		}
		if (err->type == 0) {
			err->type = 4; // WGPUErrorType_Unknown
			strncpy(err->message, "no command buffer", sizeof err->message - 1);
		}
		return 1;
	}
	ca_push(device);
	wgpuQueueSubmit(queue, 1, &cmd);
	wgpuCommandBufferRelease(cmd);
	return ca_pop(device, err);
}

// ca_map requests a map of the first size bytes of buf; the flag turns
// non-zero when it completes.
static int ca_map(ca_device device, ca_buffer buf, uint32_t mode, uint64_t size, int32_t *flag, ca_error *err) {
	__atomic_store_n(flag, 0, __ATOMIC_RELEASE);
	ca_push(device);
	wgpuBufferMapAsync(buf, mode, 0, (size_t)size, ca_on_map, flag);
	return ca_pop(device, err);
}

static int ca_unmap(ca_device device, ca_buffer buf, ca_error *err) {
	ca_push(device);
	wgpuBufferUnmap(buf);
	return ca_pop(device, err);
}

// ca_upload moves a filled, mapped staging buffer's first size bytes to
// dst at dst_off, then asks for the staging buffer to be mapped again; the
// map completes once the copy has run, which is how the ring learns that
// the buffer is free. One cgo call per chunk, no Go allocation. On failure
// the staging buffer is left with no map pending unless its flag is 0.
static int ca_upload(ca_device device, ca_queue queue, ca_buffer staging, uint64_t staging_size, ca_buffer dst, uint64_t dst_off, uint64_t size, int32_t *flag, ca_error *err) {
	if (ca_unmap(device, staging, err) || ca_copy(device, queue, staging, 0, dst, dst_off, size, err)) {
		return 1;
	}
	return ca_map(device, staging, CA_MAP_WRITE, staging_size, flag, err);
}

// ca_download copies size bytes of src at src_off into an idle staging
// buffer and asks for it to be mapped for reading; the map completes once
// the copy (and all work submitted before it) has run.
static int ca_download(ca_device device, ca_queue queue, ca_buffer src, uint64_t src_off, ca_buffer staging, uint64_t size, int32_t *flag, ca_error *err) {
	if (ca_copy(device, queue, src, src_off, staging, 0, size, err)) {
		return 1;
	}
	return ca_map(device, staging, CA_MAP_READ, size, flag, err);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"

	webgpu "github.com/rajveermalviya/go-webgpu/wgpu"
)

// The staging ring calls wgpu-native directly for the calls of a chunk's
// life (copy, submit, map, unmap): go-webgpu v0.17.1 allocates Go closures
// and cgo handles on each of them, and its MapAsync gives C a pointer that
// Go does not keep alive (see mapread.go), which a ring with maps pending
// across garbage collections cannot live with. Objects are still created
// and released through go-webgpu; their C handles are read from its
// structs, whose layout is that of v0.17.1 (rawVersion; a test checks it).

// rawVersion is the go-webgpu version whose struct layouts raw* mirror.
const rawVersion = "v0.17.1"

// rawPair mirrors go-webgpu's Buffer and Queue: the device's C handle, then
// the object's.
type rawPair struct {
	device unsafe.Pointer
	ref    unsafe.Pointer
}

// rawDevice mirrors go-webgpu's Device.
type rawDevice struct{ ref unsafe.Pointer }

func bufferRef(b *webgpu.Buffer) C.ca_buffer { return C.ca_buffer((*rawPair)(unsafe.Pointer(b)).ref) }
func queueRef(q *webgpu.Queue) C.ca_queue    { return C.ca_queue((*rawPair)(unsafe.Pointer(q)).ref) }
func deviceRef(d *webgpu.Device) C.ca_device {
	return C.ca_device((*rawDevice)(unsafe.Pointer(d)).ref)
}

// rawSize is the size wgpu-native reports for b, read through the raw
// handle (for the layout test).
func rawSize(b *webgpu.Buffer) uint64 { return uint64(C.wgpuBufferGetSize(bufferRef(b))) }

// cerr is the error record of the C calls of one device. The calls run
// under the device's lock, so one record serves them all.
type cerr struct{ p *C.ca_error }

func newCerr() cerr { return cerr{(*C.ca_error)(C.calloc(1, C.size_t(unsafe.Sizeof(C.ca_error{}))))} }

func (e cerr) free() { C.free(unsafe.Pointer(e.p)) }

func (e cerr) reset() { e.p._type = 0 }

// err returns the recorded error, typed by wgpu's error type.
func (e cerr) err() error {
	msg := C.GoString(&e.p.message[0])
	switch e.p._type {
	case 0:
		return errors.New("unknown error")
	case 2: // WGPUErrorType_OutOfMemory
		return fmt.Errorf("%w: %s", ErrOutOfMemory, msg)
	case 5: // WGPUErrorType_DeviceLost
		return fmt.Errorf("%w: %s", ErrDeviceLost, msg)
	}
	return errors.New(msg)
}

// mapFlag is a map's completion word in C memory: 0 while pending, else the
// WGPUBufferMapAsyncStatus plus one.
type mapFlag struct{ p *C.int32_t }

// newMapFlag returns a flag that says "no map pending".
func newMapFlag() mapFlag {
	f := mapFlag{(*C.int32_t)(C.calloc(1, 4))}
	*f.p = 1 // BufferMapAsyncStatus_Success + 1
	return f
}

func (f mapFlag) free() { C.free(unsafe.Pointer(f.p)) }

// done reports whether the map completed, and its status.
func (f mapFlag) done() (bool, webgpu.BufferMapAsyncStatus) {
	v := C.ca_map_state(f.p)
	return v != 0, webgpu.BufferMapAsyncStatus(v - 1)
}

// raw is a device's C handles, read once at the ring's creation.
type raw struct {
	device C.ca_device
	queue  C.ca_queue
}

func (r raw) upload(staging *webgpu.Buffer, stagingSize uint64, dst *webgpu.Buffer, dstOff, size uint64, f mapFlag, e cerr) error {
	e.reset()
	if C.ca_upload(r.device, r.queue, bufferRef(staging), C.uint64_t(stagingSize), bufferRef(dst), C.uint64_t(dstOff), C.uint64_t(size), f.p, e.p) != 0 {
		return e.err()
	}
	return nil
}

func (r raw) download(src *webgpu.Buffer, srcOff uint64, staging *webgpu.Buffer, size uint64, f mapFlag, e cerr) error {
	e.reset()
	if C.ca_download(r.device, r.queue, bufferRef(src), C.uint64_t(srcOff), bufferRef(staging), C.uint64_t(size), f.p, e.p) != 0 {
		return e.err()
	}
	return nil
}

func (r raw) copy(src *webgpu.Buffer, srcOff uint64, dst *webgpu.Buffer, dstOff, size uint64, e cerr) error {
	e.reset()
	if C.ca_copy(r.device, r.queue, bufferRef(src), C.uint64_t(srcOff), bufferRef(dst), C.uint64_t(dstOff), C.uint64_t(size), e.p) != 0 {
		return e.err()
	}
	return nil
}

func (r raw) mapRead(staging *webgpu.Buffer, size uint64, f mapFlag, e cerr) error {
	e.reset()
	if C.ca_map(r.device, bufferRef(staging), C.CA_MAP_READ, C.uint64_t(size), f.p, e.p) != 0 {
		return e.err()
	}
	return nil
}

func (r raw) unmap(staging *webgpu.Buffer, e cerr) error {
	e.reset()
	if C.ca_unmap(r.device, bufferRef(staging), e.p) != 0 {
		return e.err()
	}
	return nil
}

// mapped is the host address of the first size bytes of a mapped buffer.
func mapped(b *webgpu.Buffer, size uint64) unsafe.Pointer {
	return C.wgpuBufferGetMappedRange(bufferRef(b), 0, C.size_t(size))
}
