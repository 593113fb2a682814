package wgpu

import (
	"encoding/binary"
	"fmt"
	"time"

	webgpu "github.com/rajveermalviya/go-webgpu/wgpu"
)

// timestamps holds the query set and buffers for timing n dispatches.
type timestamps struct {
	n        int
	set      *webgpu.QuerySet
	resolve  *webgpu.Buffer
	readback *webgpu.Buffer
}

// newTimestamps allocates two queries per dispatch. Callers hold d.mu.
func (d *Device) newTimestamps(n int) (*timestamps, error) {
	set, err := d.dev.CreateQuerySet(&webgpu.QuerySetDescriptor{Type: webgpu.QueryType_Timestamp, Count: uint32(2 * n)})
	if err != nil {
		return nil, fmt.Errorf("wgpu: %s: timestamp queries: %w", d.info.Name, err)
	}
	size := uint64(16 * n)
	resolve, err := d.dev.CreateBuffer(&webgpu.BufferDescriptor{Size: size, Usage: webgpu.BufferUsage_QueryResolve | webgpu.BufferUsage_CopySrc})
	if err != nil {
		set.Release()
		return nil, fmt.Errorf("wgpu: %s: timestamp buffer: %w", d.info.Name, err)
	}
	readback, err := d.dev.CreateBuffer(&webgpu.BufferDescriptor{Size: size, Usage: webgpu.BufferUsage_MapRead | webgpu.BufferUsage_CopyDst})
	if err != nil {
		set.Release()
		resolve.Release()
		return nil, fmt.Errorf("wgpu: %s: timestamp buffer: %w", d.info.Name, err)
	}
	return &timestamps{n: n, set: set, resolve: resolve, readback: readback}, nil
}

func (t *timestamps) encodeResolve(enc *webgpu.CommandEncoder) error {
	if err := enc.ResolveQuerySet(t.set, 0, uint32(2*t.n), t.resolve, 0); err != nil {
		return err
	}
	return enc.CopyBufferToBuffer(t.resolve, 0, t.readback, 0, uint64(16*t.n))
}

// durations decodes the readback buffer, mapped by the caller, and unmaps it.
func (t *timestamps) durations() []time.Duration {
	raw := t.readback.GetMappedRange(0, uint(16*t.n))
	out := make([]time.Duration, t.n)
	for i := range out {
		begin := binary.LittleEndian.Uint64(raw[16*i:])
		end := binary.LittleEndian.Uint64(raw[16*i+8:])
		if end > begin {
			out[i] = time.Duration(end - begin)
		}
	}
	t.readback.Unmap()
	return out
}

func (t *timestamps) release() {
	t.readback.Release()
	t.resolve.Release()
	t.set.Release()
}
