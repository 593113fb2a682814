package train

import (
	"context"
	"fmt"
	"time"

	"github.com/coreattn/coreattn/wgpu"
)

// Class is the kind of a kernel, for the step's time breakdown.
type Class int

// The classes of the breakdown.
const (
	ClassGEMM      Class = iota // matrix products (package gemm)
	ClassAttention              // core attention
	ClassOther                  // norms, RoPE, SwiGLU, embedding, loss, reductions, optimizer
	numClasses
)

// String names the class as the JSONL log does.
func (c Class) String() string {
	switch c {
	case ClassGEMM:
		return "gemm"
	case ClassAttention:
		return "attention"
	case ClassOther:
		return "other"
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

// Stream records one rank's work on its device, in order, to be submitted
// as one command buffer; an [Attention] that must synchronise (to move
// rows between devices) flushes it first.
type Stream struct {
	dev     *wgpu.Device
	ds      []wgpu.Dispatch
	classes []Class
	timed   bool
	timing  Timing
}

// NewStream returns an empty stream on dev; timed streams measure each
// dispatch with timestamp queries where the adapter has them.
func NewStream(dev *wgpu.Device, timed bool) *Stream {
	return &Stream{dev: dev, timed: timed}
}

// Device is the stream's device.
func (s *Stream) Device() *wgpu.Device { return s.dev }

// Add appends dispatches of one class.
func (s *Stream) Add(c Class, ds ...wgpu.Dispatch) {
	s.ds = append(s.ds, ds...)
	for range ds {
		s.classes = append(s.classes, c)
	}
}

// add appends a recorded segment.
func (s *Stream) add(seg segment) {
	s.ds = append(s.ds, seg.ds...)
	s.classes = append(s.classes, seg.classes...)
}

// Flush submits what was recorded since the last flush as one command
// buffer. A timed stream waits for it and adds its timing; an untimed one
// returns at once.
func (s *Stream) Flush(ctx context.Context) error {
	if len(s.ds) == 0 {
		return nil
	}
	defer func() { s.ds, s.classes = s.ds[:0], s.classes[:0] }()
	if !s.timed {
		return s.dev.Submit(s.ds...)
	}
	t, err := s.dev.Run(ctx, s.ds...)
	if err != nil {
		return err
	}
	s.timing.Wall += t.Wall
	if t.Passes != nil {
		s.timing.Timestamps = true
		for i, p := range t.Passes {
			s.timing.Class[s.classes[i]] += p
		}
	}
	return nil
}

// flushRead submits what was recorded since the last flush, as Flush does
// on an untimed stream, with a read of src's first size bytes into rb at
// the end of the command buffer (see wgpu.Device.SubmitRead).
func (s *Stream) flushRead(rb *wgpu.Readback, src *wgpu.Buffer, size uint64) error {
	defer func() { s.ds, s.classes = s.ds[:0], s.classes[:0] }()
	return s.dev.SubmitRead(rb, src, size, s.ds...)
}

// reset drops what was recorded and not flushed (after a failed step).
func (s *Stream) reset() {
	s.ds, s.classes = s.ds[:0], s.classes[:0]
	s.timing = Timing{}
}

// takeTiming returns the timing accumulated since the last call.
func (s *Stream) takeTiming() Timing {
	t := s.timing
	s.timing = Timing{}
	return t
}

// Timing is where a step's time went.
type Timing struct {
	// Wall is the host's view of the submitted work, from submission until
	// the device was idle (timed streams only).
	Wall time.Duration
	// Class is the GPU time of each class of kernels, from timestamp
	// queries, when Timestamps is set.
	Class      [numClasses]time.Duration
	Timestamps bool
}

// segment is a recorded run of dispatches with their classes, built once
// and added to a stream every step.
type segment struct {
	ds      []wgpu.Dispatch
	classes []Class
}

func (g *segment) add(c Class, ds ...wgpu.Dispatch) {
	g.ds = append(g.ds, ds...)
	for range ds {
		g.classes = append(g.classes, c)
	}
}
