package wgpu

import (
	"context"
	"fmt"
	"time"
)

// The plain path: a runtime whose staging this package does not drive
// (Dawn, whose queue writes copy the data into staging of its own before
// they return, and whose reads map a staging buffer it keeps). Transfers
// go through the runtime's writes and reads chunk by chunk, one chunk in
// flight; TransferOptions' Upload method, Depth and Copiers change
// nothing there, and Stats count bytes, chunks and the time of each call
// (HostCopy for writes, Wait for reads).

// uploadPlain writes src into dst at off through the runtime's queue.
func (t *Transfer) uploadPlain(ctx context.Context, dst *Buffer, off uint64, src []byte) error {
	for len(src) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		if dst.released.Load() {
			return fmt.Errorf("%q: %w", dst.label, ErrReleased)
		}
		n := min(uint64(len(src)), t.opts.ChunkBytes)
		start := time.Now()
		err := t.dev.impl.Write(dst.impl, off, src[:n])
		t.stats.hostCopy.Add(int64(time.Since(start)))
		if err != nil {
			return err
		}
		t.stats.chunks.Add(1)
		src, off = src[n:], off+n
	}
	return nil
}

// downloadPlain reads len(dst) bytes of src at off into dst through the
// runtime's reads, in whole 4-byte words (within the buffer's padding).
func (t *Transfer) downloadPlain(ctx context.Context, dst []byte, src *Buffer, off uint64) error {
	end := off + uint64(len(dst))
	lo, hi := off&^3, (end+3)&^3
	words := make([]byte, min(hi-lo, t.opts.ChunkBytes))
	for a := lo; a < hi; {
		if src.released.Load() {
			return fmt.Errorf("%q: %w", src.label, ErrReleased)
		}
		n := min(hi-a, t.opts.ChunkBytes)
		start := time.Now()
		err := t.dev.impl.Read(ctx, src.impl, a, words[:n], nil)
		t.stats.waitTime.Add(int64(time.Since(start)))
		if err != nil {
			return err
		}
		from, to := max(a, off), min(a+n, end)
		copy(dst[from-off:to-off], words[from-a:to-a])
		t.stats.chunks.Add(1)
		a += n
	}
	return nil
}

// copyBounced copies n bytes between two devices through host memory,
// chunk by chunk: the path where one of them has no staging engine.
func copyBounced(ctx context.Context, de *Transfer, dst *Buffer, dstOff uint64, se *Transfer, src *Buffer, srcOff, n uint64) error {
	chunk := min(n, se.opts.ChunkBytes, de.opts.ChunkBytes)
	host := make([]byte, chunk)
	for a := uint64(0); a < n; a += chunk {
		m := min(chunk, n-a)
		if err := se.Download(ctx, host[:m], src, srcOff+a); err != nil {
			return err
		}
		if err := de.Upload(ctx, dst, dstOff+a, host[:m]); err != nil {
			return err
		}
	}
	return nil
}
