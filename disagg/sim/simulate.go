package sim

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/coreattn/coreattn/disagg"
)

// Strategy names, as Result.Strategy reports them.
const (
	StrategyPacking  = "packing"    // DP only: every CA-task on its home server
	StrategyWLBLLM   = "wlbllm"     // WLB-LLM: variable-length packing + per-document CP, best CP
	StrategyPerDocCP = "per-doc-cp" // per-document CP at a fixed degree, contexts in order
	StrategyPerSeqCP = "per-seq-cp" // Megatron's per-sequence CP, zigzag
	StrategyDistCA   = "distca"     // CAD with DistCA's buffer rule for ε
	StrategyCAD      = "cad"        // CAD at a fixed ε
)

// AllStrategies lists every strategy in report order.
var AllStrategies = []string{StrategyPacking, StrategyPerSeqCP, StrategyPerDocCP, StrategyWLBLLM, StrategyDistCA, StrategyCAD}

// WLBCPDegrees are the CP degrees WLB-LLM is tried at, per batch.
var WLBCPDegrees = []int{1, 2, 4, 8}

// Config configures Run. DefaultConfig fills in the paper's defaults.
type Config struct {
	// Recipe draws the batches (DistCA's recipe). When Stress is set, the
	// legacy recipe (documents elongated and never cut, filling
	// Stress.Servers × Stress.TokensPerServer) replaces it: a stress test
	// outside the paper's regime.
	Recipe Recipe        `json:"recipe"`
	Stress *SampleConfig `json:"stress,omitempty"`
	// Batch is the number of context batches per step (the paper's "batch
	// size"); CAD splits them into a ping and a pong nano-batch.
	Batch   int         `json:"batch"`
	Cluster Cluster     `json:"cluster"`
	Arch    disagg.Arch `json:"-"`
	Batches int         `json:"batches"` // steps simulated and averaged
	// Epsilons are the fixed tolerances of the "cad" rows.
	Epsilons  []float64 `json:"epsilons"`
	BlockSize int       `json:"block_size"`
	// Costs predict one GPU's core-attention time with all of Arch's heads:
	// one for every server, or one per server (server classes). When empty,
	// a FLOP model at AttnFLOPS.
	Costs     []disagg.CostModel `json:"-"`
	AttnFLOPS float64            `json:"attn_flops"`
	// Microbatches per pipeline replica when PP > 1.
	Microbatches int `json:"microbatches"`
	// CPDegree is per-doc-cp's and per-seq-cp's degree (0: the largest of 8,
	// 4, 2, 1 dividing a pipeline stage's servers).
	CPDegree int `json:"cp_degree"`
	// WLBAlpha scales WLB-LLM's token cap (DistCA's alpha_factor);
	// WLBBreakpoint is its length unit x = length/breakpoint (0: by model).
	WLBAlpha      float64 `json:"wlb_alpha"`
	WLBBreakpoint float64 `json:"wlb_breakpoint"`
	// SingleStream turns ping-pong off (the paper's "Single Stream").
	SingleStream bool `json:"single_stream"`
	// Strategies to run (nil: all).
	Strategies []string `json:"strategies"`
	// Progress, when set, is called after each step.
	Progress func(done, total int) `json:"-"`
	// Dump, when set, receives each step's context batches.
	Dump func(step int, batches [][]int) error `json:"-"`
}

// DefaultConfig is the paper's 3D setting for dist at context length
// context on gpus GPUs: Llama-8B, TP 8, batch = GPUs/TP contexts (one per
// server), 3 steps, 128-token blocks, the FLOP model at 340 TFLOP/s per GPU
// (FA2's bf16 forward plateau on an H100, DistCA's measurement).
func DefaultConfig(dist string, context, gpus int) Config {
	c := DefaultCluster(gpus)
	return Config{
		Recipe: DefaultRecipe(dist, context), Batch: max(1, c.Servers()), Cluster: c,
		Arch: disagg.Llama8B, Batches: 3, BlockSize: disagg.DefaultBlockSize,
		AttnFLOPS: 340e12, WLBAlpha: 1, Microbatches: 0,
	}
}

// Breakpoint returns WLB-LLM's length unit for model m: DistCA's
// ATTN_LINEAR_BREAKPOINT, 64000 for the 8B model and 131072 for the 34B
// (the value its 3D script pairs with CodeLlama-34B); other models scale
// the 8B value by their hidden size over 4096.
func Breakpoint(m disagg.Arch) float64 {
	switch m.Name {
	case disagg.Llama8B.Name:
		return 64000
	case disagg.Llama34B.Name:
		return 131072
	}
	return 64000 * float64(m.HeadsQ*m.HeadDim) / 4096
}

// Result is one strategy's figures, averaged over the steps. Times are per
// step; "max" figures are over servers (or GPUs for memory and buffers).
type Result struct {
	Strategy string `json:"strategy"`
	// Epsilon is a "cad" row's fixed tolerance.
	Epsilon *float64 `json:"epsilon,omitempty"`
	// EpsilonPerBatch is, for "distca", the tolerance DistCA's buffer rule
	// chose at each step; BufferOverflow is set when even ε = 1 did not fit.
	EpsilonPerBatch []float64 `json:"epsilon_per_batch,omitempty"`
	BufferOverflow  bool      `json:"buffer_overflow,omitempty"`
	// BufferGB is the largest per-GPU all-to-all buffer a CA plan needs
	// (max over phases, servers and steps); BufferGBPerBatch per step.
	BufferGB         float64   `json:"buffer_gb,omitempty"`
	BufferGBPerBatch []float64 `json:"buffer_gb_per_batch,omitempty"`
	// CPPerBatch is, for "wlbllm", the CP degree chosen at each step; CP
	// the degree of the CP baselines.
	CPPerBatch []int `json:"cp_per_batch,omitempty"`
	CP         int   `json:"cp,omitempty"`
	// OOM is set when the strategy needs more than the GPU memory; its
	// times are then not reported (zero).
	OOM bool `json:"oom,omitempty"`
	// StepTimeS is the predicted step time; AttentionS and LinearS the
	// largest per-server attention and linear seconds; CommExposedS the
	// step time communication adds; IdleFrac the mean fraction of the step
	// a server computes nothing.
	StepTimeS    float64 `json:"step_time_s"`
	AttentionS   float64 `json:"attention_s"`
	LinearS      float64 `json:"linear_s"`
	CommExposedS float64 `json:"comm_exposed_s"`
	IdleFrac     float64 `json:"idle_frac"`
	// Imbalance is max/mean of per-server attention time; WorstImbalance
	// the largest over steps.
	Imbalance      float64 `json:"imbalance"`
	WorstImbalance float64 `json:"worst_imbalance"`
	// MemoryGB is the largest per-GPU memory; MemoryImbalance max/mean of
	// per-GPU activation memory.
	MemoryGB        float64 `json:"memory_gb"`
	MemoryImbalance float64 `json:"memory_imbalance"`
	// BytesPerStep is the bytes sent between servers in a step (a server's
	// own rows excluded).
	BytesPerStep float64 `json:"bytes_per_step"`
	// PlanMS is the CA scheduler's wall time per step (CAD rows).
	PlanMS float64 `json:"plan_ms,omitempty"`
	// Echo of the setting.
	Model           string  `json:"model"`
	GPUs            int     `json:"gpus"`
	Servers         int     `json:"servers"`
	TokensPerServer float64 `json:"tokens_per_server"`
	Batches         int     `json:"batches"`
}

// Validate reports the first bad field, named as the CLI flag.
func (c *Config) Validate() error {
	if err := c.Cluster.Validate(); err != nil {
		return err
	}
	if err := c.Arch.Validate(); err != nil {
		return err
	}
	if c.Stress != nil {
		if err := c.Stress.Validate(); err != nil {
			return err
		}
	} else if err := c.Recipe.Validate(); err != nil {
		return err
	}
	switch {
	case c.Arch.HeadsQ%c.Cluster.TP != 0 || c.Arch.HeadsKV%c.Cluster.TP != 0 && c.Cluster.TP%c.Arch.HeadsKV != 0:
		return fmt.Errorf("disagg: simulate: --tp %d must divide the model's %d query heads", c.Cluster.TP, c.Arch.HeadsQ)
	case c.Arch.Layers%c.Cluster.PP != 0:
		return fmt.Errorf("disagg: simulate: --pp %d must divide the model's %d layers", c.Cluster.PP, c.Arch.Layers)
	case c.Batch <= 0 || c.Batch > 1<<20:
		return fmt.Errorf("disagg: simulate: --batch %d must be in [1, %d]", c.Batch, 1<<20)
	case c.Batches <= 0 || c.Batches > 1<<16:
		return fmt.Errorf("disagg: simulate: --batches %d must be in [1, 65536]", c.Batches)
	case c.BlockSize <= 0 || c.BlockSize > 1<<20:
		return fmt.Errorf("disagg: simulate: --block %d must be in [1, %d]", c.BlockSize, 1<<20)
	case len(c.Costs) == 0 && !finitePos(c.AttnFLOPS):
		return fmt.Errorf("disagg: simulate: --attn-tflops %g must be positive and finite", c.AttnFLOPS/1e12)
	case c.Microbatches < 0 || c.Microbatches > 1<<12:
		return fmt.Errorf("disagg: simulate: --microbatches %d must be in [0, 4096]", c.Microbatches)
	case c.CPDegree < 0 || c.CPDegree > c.Cluster.Servers()/c.Cluster.PP || (c.CPDegree > 0 && (c.Cluster.Servers()/c.Cluster.PP)%c.CPDegree != 0):
		return fmt.Errorf("disagg: simulate: --cp-degree %d must divide the %d servers of a pipeline stage", c.CPDegree, c.Cluster.Servers()/c.Cluster.PP)
	case !(c.WLBAlpha > 0) || math.IsInf(c.WLBAlpha, 0):
		return fmt.Errorf("disagg: simulate: --wlb-alpha %g must be positive and finite", c.WLBAlpha)
	case !(c.WLBBreakpoint >= 0) || math.IsInf(c.WLBBreakpoint, 0):
		return fmt.Errorf("disagg: simulate: --wlb-breakpoint %g must be non-negative and finite", c.WLBBreakpoint)
	}
	for _, e := range c.Epsilons {
		if !(e >= 0 && e <= 10) {
			return fmt.Errorf("disagg: simulate: --epsilons %g must be in [0, 10]", e)
		}
	}
	for _, s := range c.Strategies {
		if !slices.Contains(AllStrategies, s) {
			return fmt.Errorf("disagg: simulate: --strategies %q: want some of %v", s, AllStrategies)
		}
	}
	if c.Stress == nil {
		// Tokens a step holds per server, bounded so that per-server slices
		// and int token counts never overflow.
		tokens := float64(c.Batch) * float64(c.Recipe.Context)
		if tokens > 1<<40 {
			return fmt.Errorf("disagg: simulate: --batch %d × --context %d tokens is too many", c.Batch, c.Recipe.Context)
		}
		if tokens/float64(c.Cluster.Servers()) > math.MaxInt32 {
			return fmt.Errorf("disagg: simulate: %g tokens per server is too many (lower --batch or --context, or raise --gpus)", tokens/float64(c.Cluster.Servers()))
		}
	} else if c.Stress.Servers != c.Cluster.Servers() {
		return fmt.Errorf("disagg: simulate: the stress recipe's %d servers differ from the cluster's %d", c.Stress.Servers, c.Cluster.Servers())
	}
	if n := len(c.Costs); n > 1 && n != c.Cluster.Servers() {
		return fmt.Errorf("disagg: simulate: %d cost models for %d servers", n, c.Cluster.Servers())
	}
	return nil
}

// runner holds what every strategy of one Run shares.
type runner struct {
	cfg   Config
	costs []disagg.CostModel
	n     int
}

// stepStats is one strategy's figures for one step.
type stepStats struct {
	attn, linear, busy []float64 // per server, seconds
	act                []float64 // per server, activation bytes per GPU
	mem                float64   // largest per-GPU memory
	step, commExposed  float64
	bytes, buffer      float64
	eps                float64
	bufferOverflow     bool
	cp                 int
	oom                bool
	planMS             float64
}

func (r *runner) newStats() *stepStats {
	n := r.n
	return &stepStats{attn: make([]float64, n), linear: make([]float64, n), busy: make([]float64, n), act: make([]float64, n)}
}

// Run simulates cfg.Batches steps drawn from the distribution lens and
// returns one Result per strategy (CAD rows by ascending ε).
func Run(ctx context.Context, lens []int, cfg Config) ([]Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, n: cfg.Cluster.Servers()}
	costs := cfg.Costs
	if len(costs) == 0 {
		fm, err := disagg.NewFLOPModel(cfg.Arch, cfg.AttnFLOPS)
		if err != nil {
			return nil, err
		}
		costs = []disagg.CostModel{fm}
	}
	var err error
	if r.costs, err = disagg.ExpandCosts(costs, r.n); err != nil {
		return nil, err
	}
	next, err := r.stepSource(lens)
	if err != nil {
		return nil, err
	}
	strategies := cfg.Strategies
	if len(strategies) == 0 {
		strategies = AllStrategies
	}
	type row struct {
		Result
		eps float64 // fixed ε, or -1 for DistCA's rule, or NaN for baselines
		acc []*stepStats
	}
	var rows []*row
	for _, s := range AllStrategies {
		if !slices.Contains(strategies, s) {
			continue
		}
		switch s {
		case StrategyCAD:
			eps := slices.Clone(cfg.Epsilons)
			slices.Sort(eps)
			for _, e := range slices.Compact(eps) {
				rows = append(rows, &row{Result: Result{Strategy: s, Epsilon: &e}, eps: e})
			}
		case StrategyDistCA:
			rows = append(rows, &row{Result: Result{Strategy: s}, eps: -1})
		default:
			rows = append(rows, &row{Result: Result{Strategy: s}, eps: math.NaN()})
		}
	}
	for b := range cfg.Batches {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		step, err := next()
		if err != nil {
			return nil, fmt.Errorf("disagg: simulate: step %d: %w", b, err)
		}
		if cfg.Dump != nil {
			if err := cfg.Dump(b, step); err != nil {
				return nil, err
			}
		}
		for _, rw := range rows {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			st, err := r.runStrategy(rw.Strategy, step, rw.eps)
			if err != nil {
				return nil, fmt.Errorf("disagg: simulate: step %d, %s: %w", b, rw.Strategy, err)
			}
			rw.acc = append(rw.acc, st)
		}
		if cfg.Progress != nil {
			cfg.Progress(b+1, cfg.Batches)
		}
	}
	out := make([]Result, len(rows))
	for i, rw := range rows {
		out[i] = r.summarize(rw.Result, rw.acc)
	}
	return out, nil
}

// stepSource returns a function yielding each step's context batches.
func (r *runner) stepSource(lens []int) (func() ([][]int, error), error) {
	if r.cfg.Stress != nil {
		s, err := NewSampler(lens, *r.cfg.Stress, r.cfg.Recipe.Seed)
		if err != nil {
			return nil, err
		}
		return func() ([][]int, error) { return [][]int{s.Next()}, nil }, nil
	}
	b, err := NewBatcher(lens, r.cfg.Recipe)
	if err != nil {
		return nil, err
	}
	return func() ([][]int, error) { return b.Full(r.cfg.Batch) }, nil
}

func (r *runner) runStrategy(name string, step [][]int, eps float64) (*stepStats, error) {
	switch name {
	case StrategyPacking:
		return r.runCAD(step, 0, true)
	case StrategyDistCA, StrategyCAD:
		return r.runCAD(step, eps, false)
	case StrategyWLBLLM:
		return r.runWLB(step)
	case StrategyPerDocCP, StrategyPerSeqCP:
		c := r.cfg.CPDegree
		if c == 0 {
			c = r.defaultCP()
		}
		st, err := r.runCP(step, c, name == StrategyPerSeqCP, false)
		return st, err
	}
	return nil, fmt.Errorf("unknown strategy %q", name)
}

func (r *runner) defaultCP() int {
	per := r.n / r.cfg.Cluster.PP
	for _, c := range []int{8, 4, 2} {
		if per%c == 0 {
			return c
		}
	}
	return 1
}

// microbatches returns the microbatch count per pipeline replica.
func (r *runner) microbatches(contexts int) int {
	if r.cfg.Cluster.PP == 1 {
		return 1
	}
	m := r.cfg.Microbatches
	if m == 0 {
		m = 2 * r.cfg.Cluster.PP
	}
	return max(1, min(m, contexts))
}

func flatten(bs [][]int) []int {
	var out []int
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

// split cuts items into k consecutive parts as evenly as possible.
func split[T any](items []T, k int) [][]T {
	out := make([][]T, k)
	for i := range k {
		out[i] = items[i*len(items)/k : (i+1)*len(items)/k]
	}
	return out
}

// runCAD is DistCA (or plain packing when pack is set): with PP 1 one
// scheduling call per step over a ping and a pong nano-batch; with PP > 1
// one call per pipeline tick, all stages in the same phase, idle stages
// serving attention.
func (r *runner) runCAD(step [][]int, eps float64, pack bool) (*stepStats, error) {
	c, m := r.cfg.Cluster, r.cfg.Arch
	st := r.newStats()
	p := c.PP
	reps := r.n / p
	mb := r.microbatches(len(step))
	micro := split(step, mb)
	nanos := func(ctxs [][]int) [][]int {
		if r.cfg.SingleStream || len(ctxs) < 2 {
			return [][]int{flatten(ctxs)}
		}
		h := (len(ctxs) + 1) / 2
		return [][]int{flatten(ctxs[:h]), flatten(ctxs[h:])}
	}
	start := time.Now()
	if pack {
		eps = -2 // sentinel for packing below
	}
	tick := func(parts [][][]int, active int, layers int, pass []disagg.Pass) error {
		// parts[k] are the nano-batches of the microbatch on active stage k.
		var ns [][]int
		var tokens float64
		for i := range len(parts[0]) {
			var docs []int
			for _, pk := range parts {
				if i < len(pk) {
					docs = append(docs, pk[i]...)
				}
			}
			ns = append(ns, docs)
			tokens = max(tokens, math.Ceil(float64(sum(docs))/float64(active)))
		}
		var t float64
		var err error
		if eps == -2 {
			t, err = r.packTick(ns, active, tokens, layers, pass, st)
		} else {
			t, err = r.cadTick(ns, active, tokens, layers, pass, eps, st)
		}
		st.step += t
		return err
	}
	both := []disagg.Pass{disagg.PassForward, disagg.PassBackward}
	if p == 1 {
		if err := tick([][][]int{nanos(step)}, r.n, m.Layers, both); err != nil {
			return nil, err
		}
	} else {
		layers := m.Layers / p
		for _, pass := range both {
			for t := range mb + p - 1 {
				var parts [][][]int
				for k := range p {
					j := t - k
					if pass == disagg.PassBackward {
						j = t - (p - 1 - k)
					}
					if j >= 0 && j < mb {
						parts = append(parts, nanos(micro[j]))
					}
				}
				if err := tick(parts, len(parts)*reps, layers, []disagg.Pass{pass}); err != nil {
					return nil, err
				}
			}
		}
	}
	st.planMS = float64(time.Since(start).Microseconds()) / 1e3
	if p > 1 {
		// Layout ranks of a tick are not the physical stage servers: count
		// each server's own stage work (all of its replica's microbatches
		// over its layers) and the attention it served.
		lin := c.linearTime(m, float64(sum(flatten(step)))/float64(reps), m.Layers/p, disagg.PassTraining)
		for s := range r.n {
			st.linear[s] = lin
			st.busy[s] = lin + st.attn[s]
		}
	}
	// Memory: 1F1B keeps min(p, mb) microbatches of activations on stage 0.
	perServer := float64(sum(flatten(step))) / float64(r.n)
	inFlight := perServer
	if p > 1 {
		inFlight = perServer * float64(p) / float64(mb) * float64(min(p, mb))
	}
	for s := range r.n {
		st.act[s] = c.activationBytes(m, inFlight, m.Layers/p)
	}
	st.mem = c.staticBytes(m, reps) + slices.Max(st.act) + c.BufferBytes
	st.oom = st.mem > c.MemoryBytes
	return st, nil
}

// packTick is plain packing: every CA-task on its home server; K/V of a
// document's earlier chunks come from the servers holding them (the
// context parallelism a document longer than a server needs).
func (r *runner) packTick(nanos [][]int, active int, tokens float64, layers int, passes []disagg.Pass, st *stepStats) (float64, error) {
	var times []nano
	var bytes float64
	for _, docs := range nanos {
		if len(docs) == 0 {
			continue
		}
		l, err := disagg.Place(docs, r.n, int(tokens))
		if err != nil {
			return 0, err
		}
		p, err := disagg.Pack(l, r.costs, disagg.Options{Arch: r.cfg.Arch, BlockSize: r.cfg.BlockSize})
		if err != nil {
			return 0, err
		}
		nb := cadNano{plan: p, traffic: cadTraffic(r.cfg.Cluster, p)}
		for _, pass := range passes {
			tk := make([]float64, r.n)
			for s := range r.n {
				tk[s] = float64(l.RankTokens(s))
			}
			times = append(times, r.nanoTimes(nb, pass, tk))
		}
		for _, ph := range nb.traffic {
			for _, lb := range ph {
				bytes += float64(lb.network()) * float64(layers) * float64(len(passes)) / 2
			}
		}
	}
	st.bytes += bytes
	var total float64
	for pi := range passes {
		var ts []nano
		for i := pi; i < len(times); i += len(passes) {
			ts = append(ts, times[i])
		}
		end, busy := timeline(ts, layers, !r.cfg.SingleStream)
		total += end
		for s := range r.n {
			st.busy[s] += busy[s]
			for _, nb := range ts {
				st.attn[s] += nb.ca[s] * float64(layers)
				st.linear[s] += nb.lin[s] * float64(layers)
			}
		}
	}
	return total, nil
}

// runWLB is WLB-LLM: for each CP degree of WLBCPDegrees dividing a stage's
// servers, documents are packed over DP × microbatch bins with its workload
// and token cap, each bin runs per-document CP on its group; the fastest
// degree that fits in memory is kept.
func (r *runner) runWLB(step [][]int) (*stepStats, error) {
	var best *stepStats
	var fallback *stepStats
	for _, c := range WLBCPDegrees {
		if (r.n/r.cfg.Cluster.PP)%c != 0 {
			continue
		}
		st, err := r.runCP(step, c, false, true)
		if err != nil {
			return nil, err
		}
		if st.oom {
			if fallback == nil || st.mem < fallback.mem {
				fallback = st
			}
			continue
		}
		if best == nil || st.step < best.step {
			best = st
		}
	}
	if best == nil {
		return fallback, nil
	}
	return best, nil
}

// runCP runs a CP baseline at degree c: wlb packs documents with WLB-LLM's
// packer, otherwise replicas take the contexts in order; perSeq shards
// sequences zigzag instead of documents.
func (r *runner) runCP(step [][]int, c int, perSeq, wlb bool) (*stepStats, error) {
	cl, m := r.cfg.Cluster, r.cfg.Arch
	st := r.newStats()
	st.cp = c
	p := cl.PP
	dp := r.n / p / c
	mb := r.microbatches(len(step))
	// bins[d][j] are replica d's microbatch j: documents, or sequences.
	bins := make([][][][]int, dp)
	if wlb {
		docs := flatten(step)
		bp := r.cfg.WLBBreakpoint
		if bp == 0 {
			bp = Breakpoint(m)
		}
		capTokens := int(float64(sum(docs)) / float64(dp*mb) * r.cfg.WLBAlpha)
		packed := wlbPack(docs, dp*mb, capTokens, bp)
		for d := range dp {
			for j := range mb {
				bins[d] = append(bins[d], [][]int{packed[d*mb+j]})
			}
		}
	} else {
		for d, ctxs := range split(step, dp) {
			bins[d] = append(bins[d], split(ctxs, mb)...)
		}
	}
	layers := m.Layers / p
	kvRow, _ := m.KVRowBytes(disagg.PassForward)
	var maxAct, maxKV float64
	for d := range dp {
		f, b := make([]float64, mb), make([]float64, mb)
		f0, b0 := make([]float64, mb), make([]float64, mb)
		for j := range mb {
			var cm cpMicro
			if perSeq {
				cm = perSeqShards(bins[d][j], c)
			} else {
				cm = perDocShards(flatten(bins[d][j]), c)
			}
			first := d * c // stage 0's servers of replica d; stages repeat the same work
			t := r.cpMicroTimes(cm, first)
			f[j], b[j] = t.fwd*float64(layers), t.bwd*float64(layers)
			f0[j], b0[j] = t.fwd0*float64(layers), t.bwd0*float64(layers)
			st.bytes += t.netBytes * float64(m.Layers)
			for k := range p {
				for i := range c {
					s := k*dp*c + first + i
					st.attn[s] += t.attn[i] * float64(layers)
					st.linear[s] += t.lin[i] * float64(layers)
					st.busy[s] += (t.attn[i] + t.lin[i]) * float64(layers)
					st.act[s] = max(st.act[s], cl.activationBytes(m, float64(cm.tokens[i]), layers))
					maxAct = max(maxAct, st.act[s])
				}
			}
			if c > 1 {
				maxKV = max(maxKV, float64(t.kvRows)*float64(kvRow)/float64(cl.TP)*float64(layers))
			}
		}
		span := oneFOneB(f, b, p)
		if span > st.step {
			st.step, st.commExposed = span, span-oneFOneB(f0, b0, p)
		}
	}
	inFlight := float64(min(p, mb))
	st.mem = cl.staticBytes(m, dp*c) + inFlight*(maxAct+maxKV)
	st.oom = st.mem > cl.MemoryBytes
	return st, nil
}

// summarize averages a strategy's steps into a Result.
func (r *runner) summarize(res Result, acc []*stepStats) Result {
	cfg := r.cfg
	k := float64(len(acc))
	res.Model, res.GPUs, res.Servers, res.Batches = cfg.Arch.Name, cfg.Cluster.GPUs, r.n, len(acc)
	if cfg.Stress != nil {
		res.TokensPerServer = float64(cfg.Stress.TokensPerServer)
	} else {
		res.TokensPerServer = float64(cfg.Batch) * float64(cfg.Recipe.Context) / float64(r.n)
	}
	cps := map[int]bool{}
	for _, st := range acc {
		imb := disagg.MaxOverMean(st.attn)
		res.Imbalance += imb / k
		res.WorstImbalance = max(res.WorstImbalance, imb)
		res.MemoryGB = max(res.MemoryGB, st.mem/1e9)
		res.MemoryImbalance += disagg.MaxOverMean(st.act) / k
		res.OOM = res.OOM || st.oom
		res.StepTimeS += st.step / k
		res.AttentionS += slices.Max(st.attn) / k
		res.LinearS += slices.Max(st.linear) / k
		res.CommExposedS += st.commExposed / k
		var busy float64
		for _, x := range st.busy {
			busy += x
		}
		if st.step > 0 {
			res.IdleFrac += (1 - busy/float64(len(st.busy))/st.step) / k
		}
		res.BytesPerStep += st.bytes / k
		res.PlanMS += st.planMS / k
		switch res.Strategy {
		case StrategyDistCA:
			res.EpsilonPerBatch = append(res.EpsilonPerBatch, st.eps)
			res.BufferOverflow = res.BufferOverflow || st.bufferOverflow
			fallthrough
		case StrategyCAD:
			res.BufferGB = max(res.BufferGB, st.buffer/1e9)
			res.BufferGBPerBatch = append(res.BufferGBPerBatch, st.buffer/1e9)
		case StrategyWLBLLM:
			res.CPPerBatch = append(res.CPPerBatch, st.cp)
		case StrategyPerDocCP, StrategyPerSeqCP:
			res.CP = st.cp
		}
		cps[st.cp] = true
	}
	if res.Strategy != StrategyCAD && res.Strategy != StrategyDistCA {
		res.PlanMS = 0
	}
	if res.OOM {
		res.StepTimeS, res.AttentionS, res.LinearS, res.CommExposedS, res.IdleFrac = 0, 0, 0, 0, 0
	}
	return res
}
