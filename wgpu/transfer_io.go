package wgpu

import (
	"context"
	"fmt"
	"time"

	webgpu "github.com/rajveermalviya/go-webgpu/wgpu"

	"github.com/coreattn/coreattn/wgpu/internal/gowebgpu"
)

// Upload copies src into dst at byte offset dstOff; both dstOff and
// len(src) must be multiples of 4. It returns once src may be reused: every
// chunk is in staging and its copy submitted, so work submitted afterwards
// sees the data. When it fails (ctx ending included) the range of dst holds
// a mix of old and new bytes.
func (t *Transfer) Upload(ctx context.Context, dst *Buffer, dstOff uint64, src []byte) error {
	n := uint64(len(src))
	if err := t.checkRange(dst, dstOff, n); err != nil {
		return fmt.Errorf("wgpu: upload %d bytes at %d: %w", n, dstOff, err)
	}
	if dstOff%4 != 0 || n%4 != 0 {
		return fmt.Errorf("wgpu: upload %d bytes to %q at %d: %w", n, dst.label, dstOff, ErrMisaligned)
	}
	if n == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var err error
	switch {
	case t.g == nil:
		err = t.uploadPlain(ctx, dst, dstOff, src)
	case t.opts.Upload == UploadQueueWrite:
		err = t.uploadQueueWrite(dst, dstOff, src)
	case t.opts.Upload == UploadMappedAtCreation:
		err = t.uploadMappedAtCreation(ctx, dst, dstOff, src)
	default:
		err = t.uploadStaged(ctx, dst, dstOff, src)
	}
	if err != nil {
		return fmt.Errorf("wgpu: %s: upload %d bytes to %q at %d: %w", t.dev.info.Name, n, dst.label, dstOff, err)
	}
	t.stats.up.Add(n)
	return nil
}

// Download copies len(dst) bytes of src from byte offset srcOff into dst,
// after all work submitted before it. Any offset and length within src
// will do. When it fails (ctx ending included) dst holds a mix of old and
// new bytes; no copy into dst runs after it returns.
func (t *Transfer) Download(ctx context.Context, dst []byte, src *Buffer, srcOff uint64) error {
	n := uint64(len(dst))
	if err := t.checkRange(src, srcOff, n); err != nil {
		return fmt.Errorf("wgpu: download %d bytes at %d: %w", n, srcOff, err)
	}
	if n == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var err error
	if t.g == nil {
		err = t.downloadPlain(ctx, dst, src, srcOff)
	} else {
		err = t.downloadStaged(ctx, src, srcOff, n, &sink{host: dst})
	}
	if err != nil {
		return fmt.Errorf("wgpu: %s: download %d bytes from %q at %d: %w", t.dev.info.Name, n, src.label, srcOff, err)
	}
	t.stats.down.Add(n)
	return nil
}

// checkRange checks that t can move n bytes of b at off.
func (t *Transfer) checkRange(b *Buffer, off, n uint64) error {
	if err := t.check(); err != nil {
		return err
	}
	switch {
	case b == nil:
		return fmt.Errorf("nil buffer: %w", ErrReleased)
	case b.dev != t.dev:
		return fmt.Errorf("%q: %w", b.label, ErrWrongDevice)
	case off > b.size || n > b.size-off:
		return fmt.Errorf("%q holds %d bytes: %w", b.label, b.size, ErrOutOfRange)
	}
	return nil
}

func (t *Transfer) uploadStaged(ctx context.Context, dst *Buffer, off uint64, src []byte) error {
	r := &t.up
	for len(src) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		s, err := r.acquire(ctx, true)
		if err != nil {
			return err
		}
		n := min(uint64(len(src)), t.opts.ChunkBytes)
		t.hostCopy(s, hostBytes(s.ptr, n), src[:n])
		start := time.Now()
		t.g.Lock()
		err = t.g.Usable()
		if err == nil && gowebgpu.Handle(dst.impl) == nil {
			err = fmt.Errorf("%q: %w", dst.label, ErrReleased)
		}
		if err == nil {
			if err = t.raw.upload(s.buf, t.opts.ChunkBytes, gowebgpu.Handle(dst.impl), off, n, s.flag, t.cerr); err != nil {
				t.discardLocked(s)
			} else {
				s.state, s.ptr = slotPending, nil
			}
		}
		t.g.Unlock()
		t.stats.submit.Add(int64(time.Since(start)))
		r.release(s)
		if err != nil {
			return err
		}
		t.stats.chunks.Add(1)
		src, off = src[n:], off+n
	}
	return nil
}

// flight is a download chunk whose copy is submitted: src bytes
// [at, at+size) on their way into slot s.
type flight struct {
	s        *slot
	at, size uint64
}

// sink is where downloadStaged puts what it reads: a host slice, or,
// with host nil, a buffer of another device, uploaded through that
// device's engine t.
type sink struct {
	host   []byte
	t      *Transfer
	buf    *Buffer
	bufOff uint64
}

// downloadStaged reads n bytes of src at off into k. It keeps up to Depth
// chunk copies in flight and hands each to k as its map completes, while
// the next ones cross the link.
func (t *Transfer) downloadStaged(ctx context.Context, src *Buffer, off, n uint64, k *sink) (err error) {
	r := &t.down
	end := off + n
	lo, hi := off&^3, (end+3)&^3 // whole words; within the buffer's padded size
	var q [maxDepth]flight
	head, count := 0, 0
	defer func() {
		for ; count > 0; count-- { // abandoned copies: the next taker unmaps
			r.release(q[head].s)
			head = (head + 1) % maxDepth
		}
	}()
	for next := lo; next < hi || count > 0; {
		if err := ctx.Err(); err != nil {
			return err
		}
		for next < hi && count < t.opts.Depth {
			s, err := r.acquire(ctx, count == 0)
			if err != nil {
				return err
			}
			if s == nil {
				break // all slots busy: drain one first
			}
			size := min(hi-next, t.opts.ChunkBytes)
			if err := t.submitDownload(s, src, next, size); err != nil {
				r.release(s)
				return err
			}
			q[(head+count)%maxDepth] = flight{s: s, at: next, size: size}
			count++
			next += size
		}
		f := q[head]
		status, err := t.waitMap(ctx, f.s.flag)
		if err != nil {
			return err
		}
		head, count = (head+1)%maxDepth, count-1
		if err := t.mapped(f.s, status, f.size); err != nil {
			r.release(f.s)
			return err
		}
		a, b := max(f.at, off), min(f.at+f.size, end)
		data := hostBytes(f.s.ptr, f.size)[a-f.at : b-f.at]
		if k.host != nil {
			t.hostCopy(f.s, k.host[a-off:b-off], data)
		} else if err = k.t.uploadStaged(ctx, k.buf, k.bufOff+(a-off), data); err != nil {
			r.release(f.s) // still mapped: the next taker unmaps it
			return err
		}
		start := time.Now()
		t.g.Lock()
		err = t.unmapLocked(f.s)
		t.g.Unlock()
		t.stats.submit.Add(int64(time.Since(start)))
		r.release(f.s)
		if err != nil {
			return err
		}
		t.stats.chunks.Add(1)
	}
	return nil
}

// submitDownload submits the copy of size bytes of src at off into the
// idle slot s, and its map.
func (t *Transfer) submitDownload(s *slot, src *Buffer, off, size uint64) error {
	start := time.Now()
	defer func() { t.stats.submit.Add(int64(time.Since(start))) }()
	t.g.Lock()
	defer t.g.Unlock()
	if err := t.g.Usable(); err != nil {
		return err
	}
	if gowebgpu.Handle(src.impl) == nil {
		return fmt.Errorf("%q: %w", src.label, ErrReleased)
	}
	if err := t.raw.download(gowebgpu.Handle(src.impl), off, s.buf, size, s.flag, t.cerr); err != nil {
		if done, _ := s.flag.done(); !done { // the map was requested: the slot is in an unknown state
			t.discardLocked(s)
		}
		return err
	}
	s.state = slotPending
	return nil
}

// uploadQueueWrite hands each chunk to Queue.WriteBuffer (for comparison).
func (t *Transfer) uploadQueueWrite(dst *Buffer, off uint64, src []byte) error {
	for len(src) > 0 {
		n := min(uint64(len(src)), t.opts.ChunkBytes)
		start := time.Now()
		t.g.Lock()
		err := t.g.Usable()
		if err == nil && gowebgpu.Handle(dst.impl) == nil {
			err = fmt.Errorf("%q: %w", dst.label, ErrReleased)
		}
		if err == nil {
			err = t.g.Queue().WriteBuffer(gowebgpu.Handle(dst.impl), off, src[:n])
		}
		t.g.Unlock()
		t.stats.hostCopy.Add(int64(time.Since(start)))
		if err != nil {
			return err
		}
		t.stats.chunks.Add(1)
		src, off = src[n:], off+n
	}
	return nil
}

// uploadMappedAtCreation copies each chunk into a staging buffer created
// mapped for it and released after its copy is submitted (for comparison).
func (t *Transfer) uploadMappedAtCreation(ctx context.Context, dst *Buffer, off uint64, src []byte) error {
	var s slot // only its WaitGroup, for the copiers
	for len(src) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(uint64(len(src)), t.opts.ChunkBytes)
		start := time.Now()
		t.g.Lock()
		if err := t.g.Usable(); err != nil {
			t.g.Unlock()
			return err
		}
		buf, err := t.g.CreateBuffer(&webgpu.BufferDescriptor{Label: "coreattn upload chunk", Size: n, Usage: webgpu.BufferUsage_MapWrite | webgpu.BufferUsage_CopySrc, MappedAtCreation: true})
		var p []byte
		if err == nil {
			p = hostBytes(mapped(buf, n), n)
		}
		t.g.Unlock()
		t.stats.submit.Add(int64(time.Since(start)))
		if err != nil {
			return err
		}
		t.hostCopy(&s, p, src[:n])
		start = time.Now()
		t.g.Lock()
		err = t.g.Usable()
		if err == nil {
			err = t.check()
		}
		if err == nil && gowebgpu.Handle(dst.impl) == nil {
			err = fmt.Errorf("%q: %w", dst.label, ErrReleased)
		}
		if err == nil {
			if err = t.raw.unmap(buf, t.cerr); err == nil {
				err = t.raw.copy(buf, 0, gowebgpu.Handle(dst.impl), off, n, t.cerr)
			}
		}
		if !t.g.Closed() {
			buf.Release() // wgpu frees it once the copy has run
		}
		t.g.Unlock()
		t.stats.submit.Add(int64(time.Since(start)))
		if err != nil {
			return err
		}
		t.stats.chunks.Add(1)
		src, off = src[n:], off+n
	}
	return nil
}
