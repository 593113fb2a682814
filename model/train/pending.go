package train

import (
	"context"
	"fmt"

	"github.com/coreattn/coreattn/wgpu"
)

// Pending is a step that [Trainer.Submit] (or SubmitGradients) submitted:
// its results come from Wait, once the GPU has run it.
type Pending struct {
	t    *Trainer
	m    mode
	rb   *wgpu.Readback // the read of its scalars, until collected
	res  Result
	err  error
	done bool
}

// Wait waits for the step (and the steps submitted before it) and returns
// its results. If ctx ends first, it returns ctx's error and may be called
// again; otherwise it returns the same results every time.
func (p *Pending) Wait(ctx context.Context) (Result, error) {
	for !p.done {
		if err := p.t.reads.collectOldest(ctx); err != nil {
			return Result{}, err
		}
	}
	return p.res, p.err
}

// scalars fills the result from the scalars buffer's values.
func (p *Pending) scalars(sc [scalarSlots]float32) {
	p.res.Loss, p.res.lossSum = float64(sc[scalarLoss]), float64(sc[scalarLossSum])
	if p.m >= modeStep {
		p.res.GradNorm, p.res.Clip = float64(sc[scalarGradNorm]), float64(sc[scalarClip])
	}
}

// maxPending is the number of steps that may be pending at once: one the
// GPU runs while the host records and submits the next.
const maxPending = 2

// pendingReads are the trainer's readbacks for the scalars of submitted
// steps, and those steps in the order submitted.
type pendingReads struct {
	free    []*wgpu.Readback
	all     []*wgpu.Readback
	pending []*Pending
}

func (r *pendingReads) init(dev *wgpu.Device) error {
	for i := range maxPending {
		rb, err := dev.NewReadback(fmt.Sprintf("train scalars %d", i), scalarSlots*4)
		if err != nil {
			return err
		}
		r.all = append(r.all, rb)
		r.free = append(r.free, rb)
	}
	return nil
}

// acquire returns a free readback, collecting the oldest pending step
// first if none is.
func (r *pendingReads) acquire(ctx context.Context) (*wgpu.Readback, error) {
	for len(r.free) == 0 {
		if err := r.collectOldest(ctx); err != nil {
			return nil, err
		}
	}
	rb := r.free[len(r.free)-1]
	r.free = r.free[:len(r.free)-1]
	return rb, nil
}

// put returns a readback with no read pending.
func (r *pendingReads) put(rb *wgpu.Readback) { r.free = append(r.free, rb) }

// collectOldest waits for the oldest pending step and reads its scalars.
func (r *pendingReads) collectOldest(ctx context.Context) error {
	if len(r.pending) == 0 {
		return fmt.Errorf("train: internal error: no step pending")
	}
	p := r.pending[0]
	var sc [scalarSlots]float32
	if err := wgpu.Collect(ctx, p.rb, sc[:]); err != nil {
		if ctx.Err() != nil {
			return err // still pending: Wait may be called again
		}
		p.err = fmt.Errorf("train: %w", err)
	} else {
		p.scalars(sc)
	}
	r.pending = r.pending[1:]
	r.put(p.rb)
	p.rb, p.done = nil, true
	return nil
}

// drain waits for every pending step, dropping errors (for Close).
func (r *pendingReads) drain() {
	for len(r.pending) > 0 {
		if r.collectOldest(context.Background()) != nil {
			return
		}
	}
}

func (r *pendingReads) release() {
	for _, rb := range r.all {
		rb.Release()
	}
	r.all, r.free, r.pending = nil, nil, nil
}
