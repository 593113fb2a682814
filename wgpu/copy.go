package wgpu

import (
	"context"
	"fmt"

	"github.com/coreattn/coreattn/wgpu/internal/gowebgpu"
)

// Copy copies n bytes of src at srcOff into dst at dstOff; offsets and n
// are multiples of 4. On one device the copy runs on its queue. Across
// devices it streams through the two devices' engines ([Device.Transfer]):
// each chunk is read into src's mapped staging and copied by the host
// straight into dst's, while the next chunks cross both links. Copy
// returns once src's bytes are read (it sees all work submitted to src's
// device before it) and dst's copies are submitted (work submitted to dst's
// device afterwards sees them). When it fails, dst's range holds a mix of
// old and new bytes.
func Copy(ctx context.Context, dst *Buffer, dstOff uint64, src *Buffer, srcOff uint64, n uint64) error {
	if err := checkCopy(dst, dstOff, src, srcOff, n); err != nil {
		return fmt.Errorf("wgpu: copy %d bytes at %d to %d: %w", n, srcOff, dstOff, err)
	}
	if n == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var err error
	if dst.dev == src.dev {
		err = copyOnDevice(dst, dstOff, src, srcOff, n)
	} else {
		se, de := src.dev.Transfer(), dst.dev.Transfer()
		if err = se.check(); err == nil {
			err = de.check()
		}
		switch {
		case err != nil:
		case se.g == nil || de.g == nil:
			err = copyBounced(ctx, de, dst, dstOff, se, src, srcOff, n) // counts its own bytes
		default:
			if err = se.downloadStaged(ctx, src, srcOff, n, &sink{t: de, buf: dst, bufOff: dstOff}); err == nil {
				se.stats.down.Add(n)
				de.stats.up.Add(n)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("wgpu: copy %d bytes from %q (%s) at %d to %q (%s) at %d: %w",
			n, src.label, src.dev.info.Name, srcOff, dst.label, dst.dev.info.Name, dstOff, err)
	}
	return nil
}

func checkCopy(dst *Buffer, dstOff uint64, src *Buffer, srcOff uint64, n uint64) error {
	switch {
	case dst == nil || src == nil:
		return fmt.Errorf("nil buffer: %w", ErrReleased)
	case dstOff%4 != 0 || srcOff%4 != 0 || n%4 != 0:
		return fmt.Errorf("%q to %q: %w", src.label, dst.label, ErrMisaligned)
	case srcOff > src.size || n > src.size-srcOff:
		return fmt.Errorf("%q holds %d bytes: %w", src.label, src.size, ErrOutOfRange)
	case dstOff > dst.size || n > dst.size-dstOff:
		return fmt.Errorf("%q holds %d bytes: %w", dst.label, dst.size, ErrOutOfRange)
	}
	return nil
}

// copyOnDevice submits a buffer-to-buffer copy on the buffers' device.
// wgpu refuses a copy within one buffer.
func copyOnDevice(dst *Buffer, dstOff uint64, src *Buffer, srcOff uint64, n uint64) error {
	d := dst.dev
	t := d.Transfer() // for its C handles and error record
	if t.g == nil {
		if err := t.check(); err != nil {
			return err
		}
		if src.released.Load() || dst.released.Load() {
			return ErrReleased
		}
		return d.impl.Copy(dst.impl, dstOff, src.impl, srcOff, n)
	}
	t.g.Lock()
	defer t.g.Unlock()
	if err := t.g.Usable(); err != nil {
		return err
	}
	if err := t.check(); err != nil {
		return err
	}
	if gowebgpu.Handle(src.impl) == nil || gowebgpu.Handle(dst.impl) == nil {
		return ErrReleased
	}
	return t.raw.copy(gowebgpu.Handle(src.impl), srcOff, gowebgpu.Handle(dst.impl), dstOff, n, t.cerr)
}
