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
// part (in Plan's order), then Done once the step's work has been
// submitted. The work may still be running then, and when the next step's
// Plan comes: what it uses must stay alive and unchanged until the device
// has run it (the queue's order makes writes submitted later safe).
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
// It prepares the step's 2L launches as it records them, in a
// gpu.Workspace per device: the layers share their parameter blocks and
// tile tables (their arguments are the same) and one set of scratch
// buffers (they run one after another), all kept from step to step, so a
// warm step allocates nothing on the device. Each Plan begins a workspace
// round (gpu.Workspace.Reset): the previous step must have been submitted.
type OpAttention struct {
	ops   map[*wgpu.Device]*gpu.Op
	ws    []*gpu.Workspace
	parts []Part
	calls []*gpu.Call
}

// NewOpAttention returns the one-device attention over the given operators
// (one per device the parts live on; typically one). Close frees its
// buffers.
func NewOpAttention(ops ...*gpu.Op) *OpAttention {
	a := &OpAttention{ops: make(map[*wgpu.Device]*gpu.Op)}
	for _, op := range ops {
		ws := gpu.NewWorkspace(op.Device())
		a.ws = append(a.ws, ws)
		a.ops[op.Device()] = op.WithWorkspace(ws)
	}
	return a
}

// Plan implements [Attention].
func (a *OpAttention) Plan(_ context.Context, parts []Part) error {
	a.Done()
	for _, ws := range a.ws {
		ws.Reset()
	}
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

// Done implements [Attention]: it drops the step's launches (their
// buffers stay in the workspaces for the next step).
func (a *OpAttention) Done() {
	for _, c := range a.calls {
		c.Release()
	}
	a.calls, a.parts = a.calls[:0], nil
}

// Close frees the workspaces' buffers; the submitted work that uses them
// keeps them until it has run. It is idempotent, and a nil OpAttention's
// does nothing.
func (a *OpAttention) Close() {
	if a == nil {
		return
	}
	a.Done()
	for _, ws := range a.ws {
		ws.Release()
	}
}

// DeviceBytes is the memory of the workspaces' buffers (0 for a nil
// OpAttention).
func (a *OpAttention) DeviceBytes() uint64 {
	if a == nil {
		return 0
	}
	var n uint64
	for _, ws := range a.ws {
		n += ws.Bytes()
	}
	return n
}

// DSScratch caps the dS scratch of the backward launches of the default
// operator options (the operator's default is 2 GiB); every launch of a
// step shares it.
const DSScratch = 256 << 20

// AttentionOptions are the operator options the trainer uses by default:
// the operator's automatic choices, with the dS scratch of each launch
// capped at DSScratch (the backward then stores dS in passes over the KV
// heads, or fuses dQ into the dK/dV kernel where that takes too many).
func AttentionOptions() gpu.Options {
	return gpu.Options{DSScratch: DSScratch}
}
