package train

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/coreattn/coreattn/attention/gpu"
	"github.com/coreattn/coreattn/disagg"
	"github.com/coreattn/coreattn/gemm"
	"github.com/coreattn/coreattn/model"
	"github.com/coreattn/coreattn/wgpu"
)

// ErrServerLost is wrapped by the error that takes a rank's attention
// server out of the plan (see [ClusterOptions].ServerFault): the step is
// re-planned without it and run again.
var ErrServerLost = errors.New("train: attention server lost")

// ClusterOptions configure a [Cluster].
type ClusterOptions struct {
	// Ranks is N, the trainer ranks; TokensPerRank is T, each rank's share
	// of a step's N·T tokens.
	Ranks, TokensPerRank int
	// Optimizer is AdamW's setting (model.DefaultOptimizer() if zero).
	Optimizer model.Optimizer
	// Packing runs the baseline: every rank computes the attention of the
	// rows it holds (fetching the key prefix of a document continued from
	// earlier ranks); otherwise the scheduler balances CA-tasks over the
	// ranks' attention servers.
	Packing bool
	// NanoBatches splits each rank's tokens into this many nano-batches
	// whose attention phases alternate with each other's linear layers
	// (ping-pong): 0 means 2; 1 turns ping-pong off.
	NanoBatches int
	// Epsilon and BlockSize are the scheduler's tolerance and shard size
	// (see disagg.Options; 0 balances as tightly as the block allows, and
	// selects disagg.DefaultBlockSize).
	Epsilon   float64
	BlockSize int
	// Profiles are measured attention cost profiles: one for every rank,
	// or one per rank; none selects the FLOP model.
	Profiles []*disagg.Profile
	// Transfer moves rows between adapters (nil: LinkTransfer).
	Transfer Transfer
	// Timed measures every dispatch with timestamp queries (host clocks
	// where the adapter has none) for the step's breakdown.
	Timed bool
	// ServerFault, if set, is called before each attention phase of every
	// rank's server; an error wrapping ErrServerLost takes that server out
	// of this and later plans (a fault-injection hook for tests and demos).
	ServerFault func(Fault) error
	// Attention configures the attention operator (AttentionOptions() if
	// zero; its dS scratch is shared out among the step's launches).
	Attention gpu.Options
	// Precision chooses the GEMMs' and attention's kernels and the loss
	// scale, as [Options].Precision does for one rank.
	Precision Precision
}

// Fault names the attention phase a [ClusterOptions].ServerFault hook is
// asked about.
type Fault struct {
	Step, Layer, Rank int
	Backward          bool
}

// Cluster trains one model on N ranks dealt round-robin over devices
// (several ranks may share one). A step's global batch is laid out over
// the ranks with disagg.Place, each rank runs the non-attention layers on
// its own tokens, core attention runs as the step's plan says (the CAD
// schedule, or packing), the ranks' gradients are summed in a fixed order
// and every device's weight replica takes the same AdamW step. It is not
// safe for concurrent use.
type Cluster struct {
	cfg    model.Config
	opt    model.Optimizer
	o      ClusterOptions
	nano   int // nano-batches per rank
	rows   int // R = T / nano, rows per slot
	layout paramLayout
	arch   disagg.Arch
	costs  []disagg.CostModel // per slot
	xfer   Transfer
	scale  float64 // the loss scale S

	devs  []*device
	slots []*slot
	stage []*stageBuffers // per server (slot), grown as plans need
	boxes map[unitKey]*transferBuffers
	down  []bool // ranks whose attention server was lost
	steps int
}

// device is what a cluster keeps on one adapter: the weight replica with
// its optimizer state, the kernels and the per-step scratch.
type device struct {
	index int
	dev   *wgpu.Device
	arena arena
	k     *kernels
	gemm  *gemm.Op
	op    *gpu.Op        // prepares in ws
	ws    *gpu.Workspace // the attention launches' buffers, kept across steps

	params, m, v, table, step *wgpu.Buffer
	scalars, partials         *wgpu.Buffer
	grads                     *wgpu.Buffer // the first slot's: the sum of the device's gradients
	slots                     []int        // slots here, in order
	optim                     segment
	readback                  *wgpu.Readback
	launches                  []*gemm.Launch
	maps                      *wgpu.Buffer // the step's row maps (grown as needed)
}

// slot is one nano-batch of one rank: its rows' activations and recorded
// work, and its own gradients and loss.
type slot struct {
	index, rank, nano int
	d                 *device
	r                 *rank
	grads, scalars    *wgpu.Buffer
	partials          *wgpu.Buffer
	readback          *wgpu.Readback
}

// NewCluster allocates a cluster of o.Ranks ranks over devs (rank r on
// devs[r % len(devs)]), records every rank's work and sets the weights to
// zero (see [Cluster.SetWeights]). It fails with an error wrapping
// [ErrTooLarge] where a rank's shapes exceed its adapter's limits.
func NewCluster(devs []*wgpu.Device, c model.Config, o ClusterOptions) (*Cluster, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if o.Optimizer == (model.Optimizer{}) {
		o.Optimizer = model.DefaultOptimizer()
	}
	if err := o.Optimizer.Validate(); err != nil {
		return nil, err
	}
	nano := o.NanoBatches
	if nano == 0 {
		nano = 2
	}
	switch {
	case len(devs) == 0:
		return nil, errors.New("train: a cluster needs at least one device")
	case o.Ranks < 1:
		return nil, fmt.Errorf("train: %d ranks: want at least 1", o.Ranks)
	case o.TokensPerRank < 1:
		return nil, fmt.Errorf("train: %d tokens per rank: want at least 1", o.TokensPerRank)
	case nano < 1 || nano > 2:
		return nil, fmt.Errorf("train: %d nano-batches per rank: want 1 (no ping-pong) or 2", nano)
	case o.TokensPerRank%nano != 0:
		return nil, fmt.Errorf("train: %d tokens per rank do not split into %d equal nano-batches (ping-pong wants an even number)", o.TokensPerRank, nano)
	case int64(o.Ranks)*int64(o.TokensPerRank) > math.MaxInt32/4:
		return nil, fmt.Errorf("%w: %d ranks of %d tokens", ErrTooLarge, o.Ranks, o.TokensPerRank)
	case len(o.Profiles) > 1 && len(o.Profiles) != o.Ranks:
		return nil, fmt.Errorf("train: %d cost profiles for %d ranks (want 1 or %d)", len(o.Profiles), o.Ranks, o.Ranks)
	}
	if o.Transfer == nil {
		o.Transfer = LinkTransfer{}
	}
	// The loss gradient is the global batch's: S/N with N its targets.
	scale, err := o.Precision.lossScale(o.Ranks * o.TokensPerRank)
	if err != nil {
		return nil, err
	}
	for _, d := range devs {
		if err := o.Precision.Check(d.Info()); err != nil {
			return nil, err
		}
	}
	cl := &Cluster{cfg: c, opt: o.Optimizer, o: o, nano: nano, rows: o.TokensPerRank / nano, layout: newParamLayout(c),
		xfer: o.Transfer, scale: scale, boxes: map[unitKey]*transferBuffers{}, down: make([]bool, o.Ranks)}
	cl.arch = disagg.Arch{Name: c.String(), HeadsQ: c.HeadsQ, HeadsKV: c.HeadsKV, HeadDim: c.HeadDim, Layers: c.Layers,
		Params: float64(c.MatmulParams()), ElemBytes: 4}
	if err := cl.costModels(devs); err != nil {
		return nil, err
	}
	if err := cl.build(devs); err != nil {
		cl.Close()
		return nil, err
	}
	return cl, nil
}

// costModels sets each slot's attention cost model: its rank's profile,
// or the FLOP model (the servers' speeds are equal, so only the ratio of
// two loads matters).
func (cl *Cluster) costModels(devs []*wgpu.Device) error {
	S := cl.o.Ranks * cl.nano
	cl.costs = make([]disagg.CostModel, S)
	flop, err := disagg.NewFLOPModel(cl.arch, 1e12)
	if err != nil {
		return err
	}
	for j := range S {
		r := j % cl.o.Ranks
		var p *disagg.Profile
		switch len(cl.o.Profiles) {
		case 1:
			p = cl.o.Profiles[0]
		case cl.o.Ranks:
			p = cl.o.Profiles[r]
		}
		if p == nil {
			cl.costs[j] = flop
			continue
		}
		m, err := p.CostModel(cl.arch)
		if err != nil {
			return fmt.Errorf("train: profile of rank %d: %w", r, err)
		}
		cl.costs[j] = m
	}
	return nil
}

func (cl *Cluster) build(devs []*wgpu.Device) error {
	N, S, c := cl.o.Ranks, cl.o.Ranks*cl.nano, cl.cfg
	used := min(N, len(devs))
	maxPos := N * cl.o.TokensPerRank
	attn := cl.o.Attention
	if attn == (gpu.Options{}) {
		// Every launch on an adapter shares its workspace's scratch.
		attn = AttentionOptions()
	}
	attn = cl.o.Precision.attention(attn)
	for i := range used {
		dev := devs[i]
		if err := CheckLimits(c, cl.rows, dev.Info()); err != nil {
			return err
		}
		if table := uint64(maxPos) * uint64(c.HeadDim) * 4; table > dev.MaxBufferBytes() {
			return fmt.Errorf("%w: the RoPE table of %d positions (%d ranks × %d tokens) needs %d bytes; %s binds %d", ErrTooLarge, maxPos, N, cl.o.TokensPerRank, table, dev.Info().Name, dev.MaxBufferBytes())
		}
		d := &device{index: i, dev: dev}
		d.arena.dev = dev
		cl.devs = append(cl.devs, d)
		var err error
		if d.k, err = compileKernels(dev); err != nil {
			return err
		}
		if err := compileExchange(d.k); err != nil {
			return err
		}
		var errs []error
		buf := func(label string, n int) *wgpu.Buffer {
			b, err := d.arena.storage(label, n)
			errs = append(errs, err)
			return b
		}
		n := cl.layout.total
		d.params, d.m, d.v = buf("parameters", n), buf("adam m", n), buf("adam v", n)
		d.table = buf("rope table", maxPos*c.HeadDim)
		d.step, d.scalars, d.partials = buf("step values", stepSlots), buf("scalars", scalarSlots), buf("partial sums", 1024)
		if err := errors.Join(errs...); err != nil {
			return err
		}
		if err := wgpu.Write(d.table, 0, to32(ropeTable(maxPos, c.HeadDim, c.RopeTheta))); err != nil {
			return fmt.Errorf("train: %w", err)
		}
		if d.readback, err = dev.NewReadback("cluster scalars", scalarSlots*4); err != nil {
			return err
		}
		d.gemm = gemm.NewWithOptions(dev, cl.o.Precision.gemmOptions())
		d.ws = gpu.NewWorkspace(dev)
		d.op = gpu.NewWithOptions(dev, attn).WithWorkspace(d.ws)
	}
	for j := range S {
		rk := j % N
		d := cl.devs[rk%used]
		s := &slot{index: j, rank: rk, nano: j / N, d: d}
		cl.slots = append(cl.slots, s)
		d.slots = append(d.slots, j)
		var errs []error
		buf := func(label string, n int) *wgpu.Buffer {
			b, err := d.arena.storage(fmt.Sprintf("slot %d %s", j, label), n)
			errs = append(errs, err)
			return b
		}
		s.grads, s.scalars, s.partials = buf("gradients", cl.layout.total), buf("scalars", scalarSlots), buf("partial sums", 1024)
		if err := errors.Join(errs...); err != nil {
			return err
		}
		var err error
		if s.readback, err = d.dev.NewReadback("slot scalars", scalarSlots*4); err != nil {
			return err
		}
		if s.r, err = newRank(c, cl.rows, d.arena.storage); err != nil {
			return err
		}
		b := &builder{k: d.k, a: &d.arena}
		rc := &recorder{c: c, b: b, g: d.gemm, w: weightsOf{params: d.params, grads: s.grads, layout: cl.layout, table: d.table,
			step: d.step, scalars: s.scalars, partials: s.partials}}
		err = rc.record(s.r)
		d.launches = append(d.launches, rc.launches...)
		if err != nil {
			return err
		}
	}
	for _, d := range cl.devs {
		d.grads = cl.slots[d.slots[0]].grads
		b := &builder{k: d.k, a: &d.arena}
		n := cl.layout.total
		d.optim.add(ClassOther, b.sum("finish_norm", n, true, cl.opt.MaxGradNorm, d.grads, d.partials, d.step, d.scalars)...)
		d.optim.add(ClassOther, b.adamw(adamwShape{n: n, decayEnd: cl.layout.decayEnd, beta1: cl.opt.Beta1, beta2: cl.opt.Beta2, eps64: cl.opt.Eps},
			d.step, d.scalars, d.grads, d.params, d.m, d.v))
		if b.err != nil {
			return b.err
		}
	}
	cl.stage = make([]*stageBuffers, S)
	return nil
}

// Close frees every device buffer (not the devices). It is idempotent.
func (cl *Cluster) Close() {
	for _, st := range cl.stage {
		st.release()
	}
	cl.stage = nil
	for _, b := range cl.boxes {
		b.release()
	}
	cl.boxes = map[unitKey]*transferBuffers{}
	for _, s := range cl.slots {
		s.readback.Release()
	}
	for _, d := range cl.devs {
		for _, l := range d.launches {
			l.Release()
		}
		d.launches = nil
		d.readback.Release()
		d.maps.Release()
		d.maps = nil
		if d.ws != nil {
			d.ws.Release()
		}
		d.arena.release()
	}
}

// Config is the model's configuration.
func (cl *Cluster) Config() model.Config { return cl.cfg }

// Ranks is N.
func (cl *Cluster) Ranks() int { return cl.o.Ranks }

// Tokens is N·T, the tokens of a step.
func (cl *Cluster) Tokens() int { return cl.o.Ranks * cl.o.TokensPerRank }

// Steps is the number of optimizer steps taken.
func (cl *Cluster) Steps() int { return cl.steps }

// Devices is the number of adapters the ranks were dealt over.
func (cl *Cluster) Devices() int { return len(cl.devs) }

// Lost lists the ranks whose attention server was taken out of the plans.
func (cl *Cluster) Lost() []int {
	var out []int
	for r, d := range cl.down {
		if d {
			out = append(out, r)
		}
	}
	return out
}

// DeviceBytes is the memory the cluster allocated, on all devices.
func (cl *Cluster) DeviceBytes() uint64 {
	var n uint64
	for _, d := range cl.devs {
		n += d.arena.bytes
	}
	for _, st := range cl.stage {
		n += st.bytes()
	}
	return n
}

// SetTimed turns the breakdown of later steps on or off.
func (cl *Cluster) SetTimed(on bool) { cl.o.Timed = on }

// SetWeights uploads w to every device's replica.
func (cl *Cluster) SetWeights(w *model.Weights) error {
	if w.Config != cl.cfg {
		return fmt.Errorf("train: weights of %s for a cluster of %s", w.Config, cl.cfg)
	}
	if err := checkTensors(cl.cfg, "weights", w.Tensors); err != nil {
		return err
	}
	flat := cl.layout.flatten(w.Tensors)
	for _, d := range cl.devs {
		if err := wgpu.Write(d.params, 0, flat); err != nil {
			return fmt.Errorf("train: %w", err)
		}
	}
	return nil
}

// Weights downloads the parameters (of the first device's replica; every
// replica holds the same bits).
func (cl *Cluster) Weights(ctx context.Context) (*model.Weights, error) {
	ts, err := cl.download(ctx, cl.devs[0].params)
	if err != nil {
		return nil, err
	}
	return &model.Weights{Config: cl.cfg, Tensors: ts}, nil
}

// OptimizerState downloads AdamW's moments and the step count.
func (cl *Cluster) OptimizerState(ctx context.Context) (*OptimizerState, error) {
	m, err := cl.download(ctx, cl.devs[0].m)
	if err != nil {
		return nil, err
	}
	v, err := cl.download(ctx, cl.devs[0].v)
	if err != nil {
		return nil, err
	}
	return &OptimizerState{Step: cl.steps, M: m, V: v}, nil
}

// SetOptimizerState uploads AdamW's state to every replica.
func (cl *Cluster) SetOptimizerState(s *OptimizerState) error {
	if s.Step < 0 {
		return fmt.Errorf("train: optimizer state at step %d", s.Step)
	}
	for _, t := range []struct {
		name string
		ts   [][]float32
	}{{"adam m", s.M}, {"adam v", s.V}} {
		if err := checkTensors(cl.cfg, t.name, t.ts); err != nil {
			return err
		}
	}
	m, v := cl.layout.flatten(s.M), cl.layout.flatten(s.V)
	for _, d := range cl.devs {
		if err := wgpu.Write(d.m, 0, m); err != nil {
			return fmt.Errorf("train: %w", err)
		}
		if err := wgpu.Write(d.v, 0, v); err != nil {
			return fmt.Errorf("train: %w", err)
		}
	}
	cl.steps = s.Step
	return nil
}

func (cl *Cluster) download(ctx context.Context, b *wgpu.Buffer) ([][]float32, error) {
	flat := make([]float32, cl.layout.total)
	if err := wgpu.Download(ctx, b, flat); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	return cl.layout.split(cl.cfg, flat), nil
}
