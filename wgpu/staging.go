package wgpu

import (
	"context"
	"fmt"
	"sync"
	"time"
	"unsafe"

	webgpu "github.com/rajveermalviya/go-webgpu/wgpu"

	"github.com/coreattn/coreattn/wgpu/internal/gowebgpu"
	"github.com/coreattn/coreattn/wgpu/internal/pause"
)

// slotState is where a staging buffer is in its cycle.
type slotState uint8

const (
	slotIdle    slotState = iota // unmapped, no map pending
	slotPending                  // a copy and a map were submitted
	slotMapped                   // mapped; ptr is its host address
)

// slot is one staging buffer of a ring. Whoever took it from the ring owns
// it; a slot without a buffer is a hole, filled on its next use.
type slot struct {
	buf   *webgpu.Buffer
	flag  mapFlag
	state slotState
	ptr   unsafe.Pointer
	wg    sync.WaitGroup // the host copy's helpers
}

// ring is a transfer's staging buffers of one direction: MapWrite|CopySrc
// buffers that rest mapped (uploads), or MapRead|CopyDst buffers that rest
// unmapped (downloads). Slots are made on demand up to the depth (see
// take); free ones wait in a FIFO, so the oldest, the likeliest settled,
// comes first.
type ring struct {
	t     *Transfer
	write bool
	free  chan *slot

	mu     sync.Mutex // guards made and closed
	made   int
	closed bool
}

// take returns a slot, waiting for one if block is set and all are in use;
// without block it returns nil when none is free. It prefers a slot ready
// now, then a new one while the ring is below its depth, then the oldest
// busy one: the ring grows only while the device lags behind the host.
func (r *ring) take(ctx context.Context, block bool) (*slot, error) {
	var s *slot
	select {
	case s = <-r.free:
		if !r.t.settled(s) && r.grow() {
			r.free <- s
			return &slot{flag: newMapFlag()}, nil
		}
	default:
		if r.grow() {
			return &slot{flag: newMapFlag()}, nil
		}
		if err := r.t.check(); err != nil {
			return nil, err
		}
		if !block {
			return nil, nil
		}
		select {
		case s = <-r.free:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-r.t.done:
			return nil, r.t.check()
		}
	}
	if err := r.t.check(); err != nil {
		r.free <- s // Close is counting its slots back
		return nil, err
	}
	return s, nil
}

// grow counts a new slot if the ring is below its depth.
func (r *ring) grow() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.made == cap(r.free) {
		return false
	}
	r.made++
	return true
}

// settled reports whether s needs no wait: it is not waiting for a map, or
// its map has completed (after one poll of the device).
func (t *Transfer) settled(s *slot) bool {
	if s.state != slotPending {
		return true
	}
	if done, _ := s.flag.done(); done {
		return true
	}
	t.g.Lock()
	if t.g.Usable() == nil {
		t.g.WGPU().Poll(false, nil)
	}
	t.g.Unlock()
	done, _ := s.flag.done()
	return done
}

// release returns a slot (or the hole a discarded one left) to the ring.
func (r *ring) release(s *slot) { r.free <- s }

// acquire takes a slot (see take) and readies it: mapped for an upload,
// idle for a download.
func (r *ring) acquire(ctx context.Context, block bool) (*slot, error) {
	s, err := r.take(ctx, block)
	if s == nil || err != nil {
		return nil, err
	}
	if err := r.ready(ctx, s); err != nil {
		r.release(s)
		return nil, err
	}
	return s, nil
}

func (r *ring) ready(ctx context.Context, s *slot) error {
	t := r.t
	if s.buf == nil {
		return r.fill(s)
	}
	if s.state == slotPending {
		status, err := t.waitMap(ctx, s.flag)
		if err != nil {
			return err
		}
		var size uint64 // a download slot is unmapped below, unread
		if r.write {
			size = t.opts.ChunkBytes
		}
		if err := t.mapped(s, status, size); err != nil {
			return err
		}
	}
	if !r.write && s.state == slotMapped {
		// A download abandoned after its copy was submitted.
		t.g.Lock()
		err := t.unmapLocked(s)
		t.g.Unlock()
		return err
	}
	return nil
}

// fill gives a hole its staging buffer.
func (r *ring) fill(s *slot) error {
	t := r.t
	usage := webgpu.BufferUsage_MapRead | webgpu.BufferUsage_CopyDst
	label := "coreattn download staging"
	if r.write {
		usage = webgpu.BufferUsage_MapWrite | webgpu.BufferUsage_CopySrc
		label = "coreattn upload staging"
	}
	t.g.Lock()
	defer t.g.Unlock()
	if err := t.g.Usable(); err != nil {
		return err
	}
	buf, err := t.g.CreateBuffer(&webgpu.BufferDescriptor{Label: label, Size: t.opts.ChunkBytes, Usage: usage, MappedAtCreation: r.write})
	if err != nil {
		return fmt.Errorf("%s of %d bytes: %w", label, t.opts.ChunkBytes, err)
	}
	s.buf, s.state, s.ptr = buf, slotIdle, nil
	if r.write {
		s.state, s.ptr = slotMapped, mapped(buf, t.opts.ChunkBytes)
	}
	return nil
}

// close waits for every slot to come back, then frees them.
func (r *ring) close() {
	r.mu.Lock()
	r.closed = true
	n := r.made
	r.mu.Unlock()
	t := r.t
	for range n {
		s := <-r.free
		if s.state == slotPending {
			t.waitMap(context.Background(), s.flag) // a lost device ends the wait; discard then leaks the flag
		}
		t.g.Lock()
		t.discardLocked(s)
		t.g.Unlock()
		s.flag.free() // discard left a flag no map can write
	}
}

// discardLocked frees a slot's buffer, leaving a hole. A flag that a
// pending map may still write is left to leak (4 bytes) and replaced.
// Callers hold dev.mu.
func (t *Transfer) discardLocked(s *slot) {
	if s.buf != nil && !t.g.Closed() {
		s.buf.Release()
	}
	s.buf, s.ptr, s.state = nil, nil, slotIdle
	if done, _ := s.flag.done(); !done {
		s.flag = newMapFlag()
	}
}

// mapped records the end of a slot's map: on success the slot is mapped,
// with the host address of its first size bytes unless size is 0;
// otherwise it is discarded and the map's error returned.
func (t *Transfer) mapped(s *slot, status webgpu.BufferMapAsyncStatus, size uint64) error {
	t.g.Lock()
	defer t.g.Unlock()
	if err := gowebgpu.MapStatusError(status); err != nil {
		if status == webgpu.BufferMapAsyncStatus_DeviceLost {
			t.g.MarkLost(err.Error())
		}
		t.discardLocked(s)
		return err
	}
	if err := t.g.Usable(); err != nil {
		return err
	}
	s.state, s.ptr = slotMapped, nil
	if size > 0 {
		s.ptr = mapped(s.buf, size)
	}
	return nil
}

// unmapLocked unmaps a download slot. Callers hold t.g's lock.
func (t *Transfer) unmapLocked(s *slot) error {
	if err := t.g.Usable(); err != nil {
		return err
	}
	if err := t.raw.unmap(s.buf, t.cerr); err != nil {
		t.discardLocked(s)
		return err
	}
	s.state, s.ptr = slotIdle, nil
	return nil
}

// maxPollPause bounds the sleep between two polls of a map: a chunk's
// device copy takes about a millisecond on a PCIe 5 link.
const maxPollPause = 100 * time.Microsecond

// waitMap polls the device until the map behind f completes or ctx ends
// (see waitFlag), and counts the time.
func (t *Transfer) waitMap(ctx context.Context, f mapFlag) (webgpu.BufferMapAsyncStatus, error) {
	if done, status := f.done(); done {
		return status, nil
	}
	start := time.Now()
	defer func() { t.stats.waitTime.Add(int64(time.Since(start))) }()
	return waitFlag(ctx, t.g, f, maxPollPause)
}

// waitFlag polls g until the map behind f completes or ctx ends, sleeping
// between polls up to maxPause, and adds the time to g's WaitTime. Each
// poll holds the device lock for a non-blocking wgpuDevicePoll only (never
// a blocking one: wgpu-core 0.17 gives up on those after 5 s; see
// gowebgpu's drain), so other goroutines keep submitting meanwhile.
func waitFlag(ctx context.Context, g *gowebgpu.Device, f mapFlag, maxPause time.Duration) (webgpu.BufferMapAsyncStatus, error) {
	if done, status := f.done(); done {
		return status, nil
	}
	start := time.Now()
	defer func() { g.AddWait(time.Since(start)) }()
	wait := 2 * time.Microsecond
	for {
		g.Lock()
		err := g.Usable()
		if err == nil {
			g.WGPU().Poll(false, nil)
		}
		g.Unlock()
		if done, status := f.done(); done {
			return status, nil
		}
		if err != nil {
			return 0, err
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		pause.Poll(wait)
		wait = min(2*wait, maxPause)
	}
}

// hostCopy copies src to dst (one side staging memory) with the engine's
// copiers, and counts the time.
func (t *Transfer) hostCopy(s *slot, dst, src []byte) {
	start := time.Now()
	t.copier.copy(&s.wg, dst, src)
	t.stats.hostCopy.Add(int64(time.Since(start)))
}

// hostBytes views n bytes at a host address.
func hostBytes(p unsafe.Pointer, n uint64) []byte { return unsafe.Slice((*byte)(p), n) }
