package gowebgpu

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
	resolve, err := d.CreateBuffer(&webgpu.BufferDescriptor{Size: size, Usage: webgpu.BufferUsage_QueryResolve | webgpu.BufferUsage_CopySrc})
	if err != nil {
		set.Release()
		return nil, fmt.Errorf("wgpu: %s: timestamp buffer: %w", d.info.Name, err)
	}
	readback, err := d.CreateBuffer(&webgpu.BufferDescriptor{Size: size, Usage: webgpu.BufferUsage_MapRead | webgpu.BufferUsage_CopyDst})
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

// durations decodes the readback buffer, mapped by the caller, with ticks
// of period nanoseconds (see ticksDuration), and unmaps it.
func (t *timestamps) durations(period float64) []time.Duration {
	out := passDurations(t.readback.GetMappedRange(0, uint(16*t.n)), period)
	t.readback.Unmap()
	return out
}

// passDurations decodes resolved timestamps, a begin and an end tick per
// dispatch, into each dispatch's duration.
func passDurations(raw []byte, period float64) []time.Duration {
	out := make([]time.Duration, len(raw)/16)
	for i := range out {
		begin := binary.LittleEndian.Uint64(raw[16*i:])
		end := binary.LittleEndian.Uint64(raw[16*i+8:])
		if end > begin {
			out[i] = ticksDuration(end-begin, period)
		}
	}
	return out
}

func (t *timestamps) release() {
	t.readback.Release()
	t.resolve.Release()
	t.set.Release()
}
