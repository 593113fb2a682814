package train

import (
	"context"
	"fmt"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/attention/gpu"
	"github.com/coreattn/coreattn/wgpu"
)

// Part is one independently laid-out piece of a step's tokens: a rank's
// tokens (or, with ping-pong, one of its two nano-batches), with the
// stream of the device that holds its tensors.
type Part struct {
	Stream *Stream
	// Args lays out the part's documents (query and key offsets equal,
	// causal, the model's heads); its attention tensors have
	// Args.TotalQ() rows.
	Args *attention.Args
}

// Attention is core attention as the trainer sees it: device-resident
// Q, K, V (after RoPE) in, O and LSE out, and their backward. A step calls
// Plan once with its parts, then Forward for every layer in order, then
// Backward for every layer in reverse order, each with one tensor set per
// part (in Plan's order), then Done once the step's work has completed.
//
// Forward and Backward record their work on the parts' streams, after
// the work recorded before them; an implementation that moves rows
// between devices may flush the streams and wait. [OpAttention] is the
// implementation for one device; the CAD plan of the attention-server pool
// is another (one plan per step, used by every layer).
type Attention interface {
	Plan(ctx context.Context, parts []Part) error
	Forward(ctx context.Context, layer int, t []gpu.ForwardTensors) error
	Backward(ctx context.Context, layer int, t []gpu.BackwardTensors) error
	Done()
}

// OpAttention runs each part's attention where its tensors live, with the
// varlen operator of package attention/gpu.
//
// Today's operator allocates each launch's parameter, tile-table and
// scratch buffers when it is prepared, so OpAttention prepares the step's
// 2L launches as it records them and frees them in Done: the step
// allocates those small buffers (and, for the backward, the fixed-point
// dQ accumulator or dS scratch of each layer).
type OpAttention struct {
	ops   map[*wgpu.Device]*gpu.Op
	parts []Part
	calls []*gpu.Call
}

// NewOpAttention returns the one-device attention over the given operators
// (one per device the parts live on; typically one).
func NewOpAttention(ops ...*gpu.Op) *OpAttention {
	a := &OpAttention{ops: make(map[*wgpu.Device]*gpu.Op)}
	for _, op := range ops {
		a.ops[op.Device()] = op
	}
	return a
}

// Plan implements [Attention].
func (a *OpAttention) Plan(_ context.Context, parts []Part) error {
	a.Done()
	for i, p := range parts {
		if _, ok := a.ops[p.Stream.Device()]; !ok {
			return fmt.Errorf("train: attention: part %d lives on %s, which has no operator", i, p.Stream.Device().Info())
		}
		if err := p.Args.Validate(); err != nil {
			return fmt.Errorf("train: attention: part %d: %w", i, err)
		}
	}
	a.parts = parts
	return nil
}

// Forward implements [Attention].
func (a *OpAttention) Forward(_ context.Context, layer int, t []gpu.ForwardTensors) error {
	if len(t) != len(a.parts) {
		return fmt.Errorf("train: attention: layer %d: %d tensor sets for %d parts", layer, len(t), len(a.parts))
	}
	for i, p := range a.parts {
		call, err := a.ops[p.Stream.Device()].PrepareForward(p.Args, t[i])
		if err != nil {
			return fmt.Errorf("train: attention forward, layer %d: %w", layer, err)
		}
		a.calls = append(a.calls, call)
		p.Stream.Add(ClassAttention, call.Dispatches()...)
	}
	return nil
}

// Backward implements [Attention].
func (a *OpAttention) Backward(_ context.Context, layer int, t []gpu.BackwardTensors) error {
	if len(t) != len(a.parts) {
		return fmt.Errorf("train: attention: layer %d: %d tensor sets for %d parts", layer, len(t), len(a.parts))
	}
	for i, p := range a.parts {
		call, err := a.ops[p.Stream.Device()].PrepareBackward(p.Args, t[i])
		if err != nil {
			return fmt.Errorf("train: attention backward, layer %d: %w", layer, err)
		}
		a.calls = append(a.calls, call)
		p.Stream.Add(ClassAttention, call.Dispatches()...)
	}
	return nil
}

// Done implements [Attention]: it frees the step's launches.
func (a *OpAttention) Done() {
	for _, c := range a.calls {
		c.Release()
	}
	a.calls, a.parts = a.calls[:0], nil
}

// DSScratch caps the dS scratch of each backward launch of the default
// operator options: every layer of a step holds its own launch, so the
// operator's default (2 GiB) would take 2 GiB per layer.
const DSScratch = 256 << 20

// AttentionOptions are the operator options the trainer uses by default:
// the operator's automatic choices, with the dS scratch of each launch
// capped at DSScratch (the backward then stores dS in passes over the KV
// heads, or fuses dQ into the dK/dV kernel where that takes too many).
func AttentionOptions() gpu.Options {
	return gpu.Options{DSScratch: DSScratch}
}
