package train

import (
	"context"
	"errors"
	"fmt"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/attention/gpu"
	"github.com/coreattn/coreattn/gemm"
	"github.com/coreattn/coreattn/model"
	"github.com/coreattn/coreattn/wgpu"
)

// Options configure a [Trainer].
type Options struct {
	// Tokens is T, the tokens of every step (training batches must hold
	// exactly T; evaluation and sampling batches at most T).
	Tokens int
	// Optimizer is AdamW's setting (model.DefaultOptimizer() if zero).
	Optimizer model.Optimizer
	// Attention computes core attention (nil: an [OpAttention] on the
	// device with [AttentionOptions]).
	Attention Attention
	// Timed measures each step's GPU time per kernel class with timestamp
	// queries (where the adapter has them); the step then waits for the
	// GPU before it returns, even from [Trainer.Submit].
	Timed bool
	// Precision chooses the GEMMs' and attention's kernels and the loss
	// scale (the zero value: f32 on FMA).
	Precision Precision
}

// Trainer runs training steps of one model on one device. It is not safe
// for concurrent use.
type Trainer struct {
	cfg    model.Config
	opt    model.Optimizer
	dev    *wgpu.Device
	tokens int
	layout paramLayout
	attn   Attention
	prec   Precision
	scale  float64 // the loss scale S

	arena    arena
	gemm     *gemm.Op
	launches []*gemm.Launch
	readback *wgpu.Readback
	w        weightsOf // params, grads, table, step, scalars, partials
	m, v     *wgpu.Buffer
	r        *rank
	optim    segment      // gradient norm and AdamW
	steps    int          // optimizer steps taken (or submitted)
	ownAttn  *OpAttention // the default attention, closed with the trainer
	reads    pendingReads // the scalars of submitted steps
}

// Result is what a step reads back.
type Result struct {
	Loss     float64 // mean next-byte cross-entropy (nats)
	GradNorm float64 // global gradient norm before clipping
	Clip     float64 // the factor the gradients were scaled by
	Timing   Timing

	lossSum float64 // the rows' losses summed on the device
}

// New allocates a trainer for c on dev, records its steps, and sets the
// weights to zero (see [Trainer.SetWeights]). It fails with an error
// wrapping [ErrTooLarge] where the shapes exceed the adapter's limits.
func New(dev *wgpu.Device, c model.Config, opts Options) (*Trainer, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if opts.Optimizer == (model.Optimizer{}) {
		opts.Optimizer = model.DefaultOptimizer()
	}
	if err := opts.Optimizer.Validate(); err != nil {
		return nil, err
	}
	if err := CheckLimits(c, opts.Tokens, dev.Info()); err != nil {
		return nil, err
	}
	scale, err := opts.Precision.lossScale(opts.Tokens)
	if err != nil {
		return nil, err
	}
	if err := opts.Precision.Check(dev.Info()); err != nil {
		return nil, err
	}
	t := &Trainer{cfg: c, opt: opts.Optimizer, dev: dev, tokens: opts.Tokens, layout: newParamLayout(c), attn: opts.Attention,
		prec: opts.Precision, scale: scale}
	t.arena.dev = dev
	if t.attn == nil {
		t.ownAttn = NewOpAttention(gpu.NewWithOptions(dev, opts.Precision.attention(AttentionOptions())))
		t.attn = t.ownAttn
	}
	if err := t.build(opts.Timed); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

func (t *Trainer) build(timed bool) error {
	k, err := compileKernels(t.dev)
	if err != nil {
		return err
	}
	a := &t.arena
	var errs []error
	buf := func(label string, n int) *wgpu.Buffer {
		b, err := a.storage(label, n)
		errs = append(errs, err)
		return b
	}
	n := t.layout.total
	t.w = weightsOf{
		params: buf("parameters", n), grads: buf("gradients", n), layout: t.layout,
		table: buf("rope table", t.tokens*t.cfg.HeadDim),
		step:  buf("step values", stepSlots), scalars: buf("scalars", scalarSlots),
		partials: buf("partial sums", 1024),
	}
	t.m, t.v = buf("adam m", n), buf("adam v", n)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := wgpu.Write(t.w.table, 0, to32(ropeTable(t.tokens, t.cfg.HeadDim, t.cfg.RopeTheta))); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if t.readback, err = t.dev.NewReadback("train scalars", scalarSlots*4); err != nil {
		return err
	}
	if err := t.reads.init(t.dev); err != nil {
		return err
	}
	if t.r, err = newRank(t.cfg, t.tokens, a.storage); err != nil {
		return err
	}
	t.r.stream = NewStream(t.dev, timed)
	t.gemm = gemm.NewWithOptions(t.dev, t.prec.gemmOptions())
	b := &builder{k: k, a: a}
	rc := &recorder{c: t.cfg, b: b, g: t.gemm, w: t.w}
	err = rc.record(t.r)
	t.launches = rc.launches
	if err != nil {
		return err
	}
	t.optim.add(ClassOther, b.sum("finish_norm", n, true, t.opt.MaxGradNorm, t.w.grads, t.w.partials, t.w.step, t.w.scalars)...)
	t.optim.add(ClassOther, b.adamw(adamwShape{n: n, decayEnd: t.layout.decayEnd, beta1: t.opt.Beta1, beta2: t.opt.Beta2, eps64: t.opt.Eps},
		t.w.step, t.w.scalars, t.w.grads, t.w.params, t.m, t.v))
	return b.err
}

// Close waits for the submitted steps and frees every device buffer. It
// is idempotent.
func (t *Trainer) Close() {
	t.reads.drain()
	if t.attn != nil {
		t.attn.Done()
	}
	t.ownAttn.Close()
	for _, l := range t.launches {
		l.Release()
	}
	t.launches = nil
	t.readback.Release()
	t.reads.release()
	t.arena.release()
}

// Config is the model's configuration.
func (t *Trainer) Config() model.Config { return t.cfg }

// Tokens is T, the tokens per step.
func (t *Trainer) Tokens() int { return t.tokens }

// Steps is the number of optimizer steps taken or submitted (the next
// step is Steps()+1).
func (t *Trainer) Steps() int { return t.steps }

// DeviceBytes is the memory of the buffers the trainer allocated, its
// attention's included (which grow to the largest step seen).
func (t *Trainer) DeviceBytes() uint64 { return t.arena.bytes + t.ownAttn.DeviceBytes() }

// mode is how much of a step runs.
type mode int

const (
	modeLogits mode = iota // forward and LM head: the logits
	modeEval               // and the loss
	modeGrad               // and the gradients
	modeStep               // and the optimizer step
)

// Step trains on b (exactly Tokens() tokens) at learning rate lr: the
// forward, the loss, the backward and the AdamW update, submitted as one
// command buffer; it returns the loss and the gradient norm. It is Submit
// and Wait.
func (t *Trainer) Step(ctx context.Context, b model.Batch, lr float64) (Result, error) {
	p, err := t.Submit(ctx, b, lr)
	if err != nil {
		return Result{}, err
	}
	return p.Wait(ctx)
}

// Submit records and submits the training step of [Trainer.Step] and
// returns without waiting for the GPU: the host can prepare the next step
// while the GPU runs this one, and read this one's results later with
// [Pending.Wait]. Steps run in the order submitted, each on the weights
// the one before left, so the results are those of Step; anything else
// asked of the trainer meanwhile (Evaluate, Weights, ...) comes after the
// submitted steps. Steps() counts the step from here on. At most two
// steps are pending at once: a third Submit first waits for the oldest.
func (t *Trainer) Submit(ctx context.Context, b model.Batch, lr float64) (*Pending, error) {
	if len(b.Tokens) != t.tokens {
		return nil, fmt.Errorf("%w: a training batch of %d tokens for a trainer of %d per step", model.ErrBatch, len(b.Tokens), t.tokens)
	}
	p, err := t.submit(ctx, b, modeStep, lr)
	if err == nil {
		t.steps++
	}
	return p, err
}

// Gradients computes the loss of b (exactly Tokens() tokens) and the
// gradients, leaving the weights and the optimizer alone: for checks and
// for timing a step without changing the model.
func (t *Trainer) Gradients(ctx context.Context, b model.Batch) (Result, error) {
	p, err := t.SubmitGradients(ctx, b)
	if err != nil {
		return Result{}, err
	}
	return p.Wait(ctx)
}

// SubmitGradients is [Trainer.Gradients] submitted as [Trainer.Submit]
// submits a step: for timing steps back to back without changing the
// model.
func (t *Trainer) SubmitGradients(ctx context.Context, b model.Batch) (*Pending, error) {
	if len(b.Tokens) != t.tokens {
		return nil, fmt.Errorf("%w: a training batch of %d tokens for a trainer of %d per step", model.ErrBatch, len(b.Tokens), t.tokens)
	}
	return t.submit(ctx, b, modeGrad, 0)
}

// SetTimed turns the per-class GPU timing of later steps on or off (see
// [Options].Timed).
func (t *Trainer) SetTimed(on bool) { t.r.stream.timed = on }

// Evaluate returns the summed loss of b's targets (at most Tokens() tokens)
// and their number, without changing the weights.
func (t *Trainer) Evaluate(ctx context.Context, b model.Batch) (lossSum float64, targets int, err error) {
	p, err := t.submit(ctx, b, modeEval, 0)
	if err != nil {
		return 0, 0, err
	}
	res, err := p.Wait(ctx)
	if err != nil {
		return 0, 0, err
	}
	return res.lossSum, b.NumTargets(), nil
}

// Logits returns the logits of the first rows rows of b (at most Tokens()
// tokens): rows×Vocab values.
func (t *Trainer) Logits(ctx context.Context, b model.Batch, rows int) ([]float32, error) {
	if rows < 0 || rows > len(b.Tokens) {
		return nil, fmt.Errorf("train: logits of %d rows of a batch of %d", rows, len(b.Tokens))
	}
	if _, err := t.submit(ctx, b, modeLogits, 0); err != nil {
		return nil, err
	}
	out := make([]float32, rows*model.Vocab)
	if err := wgpu.Download(ctx, t.r.logits, out); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	return out, nil
}

// pad fills b up to T tokens with one-token documents, which have no
// target and cost attention almost nothing.
func pad(b model.Batch, tokens int) model.Batch {
	if len(b.Tokens) == tokens {
		return b
	}
	out := model.Batch{Tokens: make([]int32, tokens), CuSeqlens: make([]int32, len(b.CuSeqlens), len(b.CuSeqlens)+tokens-len(b.Tokens))}
	copy(out.Tokens, b.Tokens)
	copy(out.CuSeqlens, b.CuSeqlens)
	for i := len(b.Tokens) + 1; i <= tokens; i++ {
		out.CuSeqlens = append(out.CuSeqlens, int32(i))
	}
	return out
}

// submit records and submits the step's work up to m with the read of its
// scalars (none for modeLogits), returning a pending result: complete
// already where the stream is timed (which waits) or m is modeLogits.
func (t *Trainer) submit(ctx context.Context, b model.Batch, m mode, lr float64) (*Pending, error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	if len(b.Tokens) > t.tokens {
		return nil, fmt.Errorf("%w: %d tokens for a trainer of %d per step", model.ErrBatch, len(b.Tokens), t.tokens)
	}
	// A free readback first: waiting for the oldest pending step, if it
	// comes to that, before this step's writes queue up.
	rb, err := t.reads.acquire(ctx)
	if err != nil {
		return nil, err
	}
	p, err := t.record(ctx, b, m, lr, rb)
	if err != nil || p.rb == nil {
		t.reads.put(rb)
	}
	return p, err
}

// record writes the step's inputs, records its work up to m and submits
// it, with the read of the scalars through rb where the stream is
// untimed; a timed stream waits and reads them at once.
func (t *Trainer) record(ctx context.Context, b model.Batch, m mode, lr float64, rb *wgpu.Readback) (*Pending, error) {
	nTargets := b.NumTargets()
	b = pad(b, t.tokens)
	r, c := t.r, t.cfg
	// The writes go through the queue: the steps submitted before still
	// read the previous values.
	if err := wgpu.Write(r.batch, 0, batchInts(b)); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if m >= modeGrad {
		if err := wgpu.Write(r.index, 0, embedIndex(b.Tokens)); err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
	}
	if err := wgpu.Write(t.w.step, 0, stepValues(nTargets, lr, t.opt, t.steps+1, t.scale)); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	args := &attention.Args{CuSeqlensQ: b.CuSeqlens, CuSeqlensK: b.CuSeqlens, NumHeadsQ: c.HeadsQ, NumHeadsKV: c.HeadsKV, HeadDim: c.HeadDim, Causal: true}
	s := r.stream
	s.reset()
	if err := t.attn.Plan(ctx, []Part{{Stream: s, Args: args}}); err != nil {
		return nil, err
	}
	defer t.attn.Done()
	s.add(r.embed)
	for l := range c.Layers {
		s.add(r.fwdPre[l])
		ft := gpu.ForwardTensors{Q: r.q[l], K: r.k[l], V: r.v[l], O: r.o[l], LSE: r.lse[l]}
		if err := t.attn.Forward(ctx, l, []gpu.ForwardTensors{ft}); err != nil {
			return nil, err
		}
		s.add(r.fwdPost[l])
	}
	s.add(r.head)
	if m >= modeEval {
		s.add(r.loss)
	}
	if m >= modeGrad {
		s.add(r.bwdHead)
		for l := c.Layers - 1; l >= 0; l-- {
			s.add(r.bwdPost[l])
			bt := gpu.BackwardTensors{Q: r.q[l], K: r.k[l], V: r.v[l], O: r.o[l], LSE: r.lse[l], DO: r.do, DQ: r.dq, DK: r.dk, DV: r.dv}
			if err := t.attn.Backward(ctx, l, []gpu.BackwardTensors{bt}); err != nil {
				return nil, err
			}
			s.add(r.bwdPre[l])
		}
		s.add(r.embedBwd)
	}
	if m >= modeStep {
		s.add(t.optim)
	}
	p := &Pending{t: t, m: m}
	if s.timed || m == modeLogits {
		if err := s.Flush(ctx); err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
		p.res.Timing = s.takeTiming()
		p.done = true
		if m == modeLogits {
			return p, nil
		}
		var sc [scalarSlots]float32
		if err := wgpu.Read(ctx, t.readback, t.w.scalars, sc[:]); err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
		p.scalars(sc)
		return p, nil
	}
	if err := s.flushRead(rb, t.w.scalars, scalarSlots*4); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	p.rb = rb
	t.reads.pending = append(t.reads.pending, p)
	return p, nil
}

// optimize runs the optimizer alone on the gradients in the gradient
// buffer (after a modeGrad run, or gradients summed from several ranks).
func (t *Trainer) optimize(ctx context.Context, lr float64) (Result, error) {
	if err := wgpu.Write(t.w.step, 0, stepValues(0, lr, t.opt, t.steps+1, t.scale)); err != nil {
		return Result{}, fmt.Errorf("train: %w", err)
	}
	s := t.r.stream
	s.reset()
	s.add(t.optim)
	if err := s.Flush(ctx); err != nil {
		return Result{}, fmt.Errorf("train: %w", err)
	}
	var sc [scalarSlots]float32
	if err := wgpu.Read(ctx, t.readback, t.w.scalars, sc[:]); err != nil {
		return Result{}, fmt.Errorf("train: %w", err)
	}
	t.steps++
	return Result{GradNorm: float64(sc[scalarGradNorm]), Clip: float64(sc[scalarClip]), Timing: s.takeTiming()}, nil
}
