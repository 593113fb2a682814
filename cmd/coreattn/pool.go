package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/coreattn/coreattn/disagg/local"
	"github.com/coreattn/coreattn/disagg/pool"
	"github.com/coreattn/coreattn/disagg/server"
	"github.com/coreattn/coreattn/disagg/sim"

	"github.com/spf13/cobra"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/disagg"
	"github.com/coreattn/coreattn/wgpu"
)

// localPlacement deals servers over every local adapter, starting at
// adapter first and wrapping round.
func localPlacement(g *globalFlags, cmdName string, first int) (local.Placement, error) {
	opts := g.options()
	list, err := wgpu.Adapters(opts)
	if err != nil {
		return local.Placement{}, fmt.Errorf("%s: %w", cmdName, err)
	}
	if first < 0 || first >= len(list) {
		return local.Placement{}, fmt.Errorf("%s: --adapter %d: want an index in [0, %d) (see 'coreattn devices')", cmdName, first, len(list))
	}
	adapters := make([]int, len(list))
	for i := range list {
		adapters[i] = list[(first+i)%len(list)].Index
	}
	return local.Placement{Adapters: adapters, WGPU: opts}, nil
}

// localServers opens n attention servers on the local adapters, dealt
// round-robin starting at adapter first (n = 0: one per adapter); servers on
// the same adapter share its device. shared reports whether any do.
func localServers(g *globalFlags, cmdName string, first, n int) (servers []server.Server, shared bool, err error) {
	pl, err := localPlacement(g, cmdName, first)
	if err != nil {
		return nil, false, err
	}
	servers, err = local.OpenServers(context.Background(), n, pl)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", cmdName, err)
	}
	return servers, len(servers) > len(pl.Adapters), nil
}

// poolRunner runs `coreattn attention --servers N` through an attention
// server pool, reporting servers that fail on the way; it implements
// attnRunner.
type poolRunner struct {
	pool *pool.Pool
	log  io.Writer
}

// newPoolRunner opens a pool of servers attention servers over the local
// adapters, starting at adapter and dealt round-robin (several servers share
// an adapter when there are fewer adapters than servers).
func newPoolRunner(g *globalFlags, adapter, servers int) (attnRunner, error) {
	if err := checkRange("servers", servers, 1, maxLocalServers); err != nil {
		return nil, fmt.Errorf("attention: %w", err)
	}
	pl, err := localPlacement(g, "attention", adapter)
	if err != nil {
		return nil, err
	}
	p, err := local.OpenPool(context.Background(), servers, pl, pool.Options{})
	if err != nil {
		return nil, fmt.Errorf("attention: %w", err)
	}
	return &poolRunner{pool: p, log: os.Stderr}, nil
}

func (r *poolRunner) Forward(ctx context.Context, a *attention.Args, q, k, v []float32) ([]float32, []float32, error) {
	o, lse, rep, err := r.pool.ForwardReport(ctx, a, q, k, v)
	r.warn(rep)
	return o, lse, err
}

func (r *poolRunner) Backward(ctx context.Context, a *attention.Args, q, k, v, o, lse, do []float32) ([]float32, []float32, []float32, error) {
	dq, dk, dv, rep, err := r.pool.BackwardReport(ctx, a, q, k, v, o, lse, do)
	r.warn(rep)
	return dq, dk, dv, err
}

// warn reports the servers that failed during a call.
func (r *poolRunner) warn(rep *pool.Report) {
	if rep == nil {
		return
	}
	for _, name := range rep.Revived {
		fmt.Fprintf(r.log, "attention: %s is back in the pool after a probe\n", name)
	}
	for _, e := range rep.Excluded {
		fmt.Fprintf(r.log, "attention: warning: %s left out of the plan: %v\n", e.Name, e.Reason)
	}
	for _, f := range rep.Failures {
		fmt.Fprintf(r.log, "attention: warning: %s failed and left the pool (%d tasks re-planned): %v\n", f.Name, f.Replanned, f.Err)
	}
}

func (r *poolRunner) Close() error { return r.pool.Close() }

func (r *poolRunner) String() string {
	var parts []string
	for _, s := range r.pool.Servers() {
		parts = append(parts, s.Name+" on "+s.Adapter)
	}
	return fmt.Sprintf("pool of %d servers (%s)", len(parts), strings.Join(parts, "; "))
}

// benchPoolFlags are the flags of `coreattn bench pool`.
type benchPoolFlags struct {
	servers, adapter, tokens  int
	heads, kvHeads, headDim   int
	dist, profile, pass       string
	cad, sequential, jsonOut  bool
	cadGiven, sequentialGiven bool
	epsilon                   float64
	block, maxDoc, reps       int
	seed                      uint64
}

func newBenchPoolCmd(g *globalFlags) *cobra.Command {
	f := &benchPoolFlags{}
	cmd := &cobra.Command{
		Use:   "pool",
		Short: "Run one sampled batch through the attention-server pool, with and without CAD",
		Long: `Samples one global batch of documents the DistCA way (like coreattn simulate),
runs its causal core attention through a pool of attention servers on the
local adapters, once packed (every server computes the tokens it holds) and
once disaggregated (CAD: the scheduler balances CA-tasks over the servers),
and prints each server's measured time beside the scheduler's prediction.

Measured per server: kernel ms (host view, submission until idle, summed over
the server's fused batches), GPU ms (timestamp queries, where the adapter has
them) and total ms (with uploads and downloads). Imbalance is max/mean over
servers. Predictions come from --profile (coreattn profile) or the FLOP model;
their absolute scale is only meaningful with a profile.

Defaults: one server per adapter; on a machine with only CPU adapters (lavapipe)
3 logical servers and a small batch (2048 tokens per server, 2 heads of 64),
run one after another so each is timed alone.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.cadGiven = cmd.Flags().Changed("cad")
			f.sequentialGiven = cmd.Flags().Changed("sequential")
			return runBenchPool(contextOf(cmd.Context()), g, f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.servers, "servers", 0, "attention servers (0: one per adapter, 3 on CPU adapters)")
	fl.IntVar(&f.adapter, "adapter", 0, "first adapter; servers are dealt round-robin from it")
	fl.StringVar(&f.dist, "dist", "prolong", "document-length distribution: prolong, pretrain or a JSON file of lengths")
	fl.IntVar(&f.tokens, "tokens-per-server", 0, "tokens per server (0: 2048 on CPU adapters, 16384 otherwise)")
	fl.IntVar(&f.heads, "heads", 0, "query heads (0: 2 on CPU adapters, 32 otherwise)")
	fl.IntVar(&f.kvHeads, "kv-heads", 0, "key/value heads (0: same as --heads on CPU adapters, 8 otherwise)")
	fl.IntVar(&f.headDim, "head-dim", 0, "head dimension (0: 64 on CPU adapters, 128 otherwise)")
	fl.BoolVar(&f.cad, "cad", true, "run only with (true) or only without (false) disaggregation; both when not given")
	fl.Float64Var(&f.epsilon, "epsilon", disagg.DefaultEpsilon, "CAD scheduling tolerance")
	fl.IntVar(&f.block, "block", disagg.DefaultBlockSize, "CA-task shard granularity in tokens")
	fl.IntVar(&f.maxDoc, "max-doc", 0, "cut sampled documents longer than this (0: no limit)")
	fl.StringVar(&f.profile, "profile", "", "cost profile JSON (coreattn profile) for every server instead of the FLOP model")
	fl.StringVar(&f.pass, "pass", "both", "forward, backward or both")
	fl.IntVar(&f.reps, "reps", 3, "timed runs per strategy and pass (after one warm-up); the median is reported")
	fl.BoolVar(&f.sequential, "sequential", false, "run servers one after another (default: only when servers share an adapter)")
	fl.Uint64Var(&f.seed, "seed", 1, "sampling seed")
	fl.BoolVar(&f.jsonOut, "json", false, "print one JSON object per strategy and pass")
	return cmd
}

// benchPoolRow is one strategy and pass of `coreattn bench pool`.
type benchPoolRow struct {
	Strategy           string          `json:"strategy"`
	Epsilon            *float64        `json:"epsilon,omitempty"`
	Pass               string          `json:"pass"`
	Dist               string          `json:"dist"`
	Servers            int             `json:"servers"`
	TokensPerServer    int             `json:"tokens_per_server"`
	Docs               int             `json:"docs"`
	HeadsQ             int             `json:"heads_q"`
	HeadsKV            int             `json:"heads_kv"`
	HeadDim            int             `json:"head_dim"`
	Sequential         bool            `json:"sequential"`
	PredictedImbalance float64         `json:"predicted_imbalance"`
	MeasuredImbalance  float64         `json:"measured_imbalance"`
	GPUImbalance       float64         `json:"gpu_imbalance,omitempty"`
	MaxKernelMS        float64         `json:"max_kernel_ms"`
	WallMS             float64         `json:"wall_ms"`
	PerServer          []benchPoolSrvr `json:"per_server"`
}

// benchPoolSrvr is one server's figures (medians over the timed runs).
type benchPoolSrvr struct {
	Name       string  `json:"name"`
	Adapter    string  `json:"adapter"`
	Tasks      int     `json:"tasks"`
	Batches    int     `json:"batches"`
	QRows      int     `json:"q_rows"`
	KRows      int     `json:"k_rows"`
	PredictedS float64 `json:"predicted_s"`
	KernelMS   float64 `json:"kernel_ms"`
	GPUMS      float64 `json:"gpu_ms,omitempty"`
	TotalMS    float64 `json:"total_ms"`
}

func (f *benchPoolFlags) check() error {
	switch {
	case f.servers < 0 || f.servers > maxLocalServers:
		return flagError("servers", f.servers, "want 0 (one per adapter) to %d", maxLocalServers)
	case f.tokens < 0 || f.tokens > math.MaxInt32:
		return flagError("tokens-per-server", f.tokens, "want 0 (the default) to %d", math.MaxInt32)
	case f.heads < 0:
		return flagError("heads", f.heads, "must not be negative")
	case f.kvHeads < 0:
		return flagError("kv-heads", f.kvHeads, "must not be negative")
	case f.headDim < 0:
		return flagError("head-dim", f.headDim, "must not be negative")
	case !(f.epsilon >= 0) || math.IsInf(f.epsilon, 0):
		return flagError("epsilon", f.epsilon, "want a non-negative number")
	case f.block <= 0 || f.block > math.MaxInt32:
		return flagError("block", f.block, "want 1 to %d", math.MaxInt32)
	case f.maxDoc < 0:
		return flagError("max-doc", f.maxDoc, "want 0 (no limit) or a positive length")
	case f.reps < 1 || f.reps > maxReps:
		return flagError("reps", f.reps, "want 1 to %d", maxReps)
	case f.pass != "forward" && f.pass != "backward" && f.pass != "both":
		return flagError("pass", f.pass, "want forward, backward or both")
	}
	return nil
}

// defaults fills in the size defaults for the adapters (cpu: only CPU
// adapters) and checks the sizes of a batch over n servers before anything
// is sampled or allocated.
func (f *benchPoolFlags) defaults(cpu bool, n int) error {
	def := func(v *int, onCPU, onGPU int) {
		if *v == 0 {
			*v = onGPU
			if cpu {
				*v = onCPU
			}
		}
	}
	def(&f.tokens, 2048, 16384)
	def(&f.heads, 2, 32)
	def(&f.kvHeads, f.heads, 8)
	def(&f.headDim, 64, 128)
	total := int64(n) * int64(f.tokens)
	if total > math.MaxInt32 {
		return flagError("tokens-per-server", f.tokens, "%d servers × %d tokens = %d, more than a batch holds (%d)", n, f.tokens, total, math.MaxInt32)
	}
	return checkHeads(f.heads, f.kvHeads, f.headDim, int(total))
}

func runBenchPool(ctx context.Context, g *globalFlags, f *benchPoolFlags, out, progress io.Writer) error {
	if err := f.check(); err != nil {
		return fmt.Errorf("bench pool: %w", err)
	}
	if !isTerminal(progress) {
		progress = io.Discard
	}
	lens, err := loadDist(f.dist)
	if err != nil {
		return fmt.Errorf("bench pool: %w", err)
	}
	var prof *disagg.Profile
	if f.profile != "" {
		if prof, err = loadProfile(f.profile); err != nil {
			return fmt.Errorf("bench pool: %w", err)
		}
	}
	list, err := wgpu.Adapters(g.options())
	if err != nil {
		return fmt.Errorf("bench pool: %w", err)
	}
	cpu := !slices.ContainsFunc(list, func(a wgpu.AdapterInfo) bool { return !a.IsCPU() })
	n := f.servers
	if n == 0 && cpu {
		n = 3
	}
	servers, shared, err := localServers(g, "bench pool", f.adapter, n)
	if err != nil {
		return err
	}
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	n = len(servers)
	if err := f.defaults(cpu, n); err != nil {
		return fmt.Errorf("bench pool: %w", err)
	}
	a, docs := f.sampleBatch(lens, n)
	if docs == nil {
		return fmt.Errorf("bench pool: could not sample a batch from --dist %s", f.dist)
	}
	sequential := shared
	if f.sequentialGiven {
		sequential = f.sequential
	}
	rng := rand.New(rand.NewPCG(f.seed, 0xbe))
	randn := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		return x
	}
	nq, nk := a.TotalQ()*a.NumHeadsQ*a.HeadDim, a.TotalK()*a.NumHeadsKV*a.HeadDim
	q, k, v, do := randn(nq), randn(nk), randn(nk), randn(nq)

	type strategy struct {
		name string
		opts pool.Options
	}
	var strategies []strategy
	base := pool.Options{BlockSize: f.block, Sequential: sequential}
	if prof != nil {
		base.Profiles = []*disagg.Profile{prof}
	}
	if !f.cadGiven || !f.cad {
		o := base
		o.Packing = true
		strategies = append(strategies, strategy{sim.StrategyPacking, o})
	}
	if !f.cadGiven || f.cad {
		o := base
		o.Epsilon = f.epsilon
		strategies = append(strategies, strategy{sim.StrategyCAD, o})
	}
	if !f.jsonOut {
		fmt.Fprintf(out, "batch: %s, %d servers × %d tokens, %d documents (longest %d), Hq=%d Hkv=%d D=%d, causal; servers run %s\n",
			f.dist, n, f.tokens, len(docs), slices.Max(docs), a.NumHeadsQ, a.NumHeadsKV, a.HeadDim, map[bool]string{true: "one after another", false: "concurrently"}[sequential])
		for _, s := range servers {
			info := s.Info()
			fmt.Fprintf(out, "  %s: %s\n", info.Name, info.Adapter)
		}
	}
	enc := json.NewEncoder(out)
	for _, st := range strategies {
		p, err := pool.New(servers, st.opts)
		if err != nil {
			return fmt.Errorf("bench pool: %w", err)
		}
		var o, lse []float32
		for _, pass := range []string{"forward", "backward"} {
			if f.pass != "both" && f.pass != pass && !(pass == "forward" && f.pass == "backward") {
				continue
			}
			reps := make([]*pool.Report, 0, f.reps)
			for r := range f.reps + 1 { // the first run warms up the pipelines
				fmt.Fprintf(progress, "\rbench pool: %s %s run %d/%d ...", st.name, pass, r, f.reps)
				var rep *pool.Report
				if pass == "forward" {
					o, lse, rep, err = p.ForwardReport(ctx, a, q, k, v)
				} else {
					_, _, _, rep, err = p.BackwardReport(ctx, a, q, k, v, o, lse, do)
				}
				fmt.Fprint(progress, "\r\033[K")
				if err != nil {
					return fmt.Errorf("bench pool: %s %s: %w", st.name, pass, err)
				}
				if r > 0 {
					reps = append(reps, rep)
				}
			}
			if f.pass == "backward" && pass == "forward" {
				continue // the forward only fed the backward its O and LSE
			}
			row := f.summarize(st.name, pass, a, len(docs), sequential, p.Servers(), reps)
			if st.opts.Packing {
				row.Epsilon = nil
			}
			if f.jsonOut {
				if err := enc.Encode(row); err != nil {
					return err
				}
			} else {
				writePoolRow(out, row)
			}
		}
	}
	return nil
}

// sampleBatch draws one batch (after defaults): causal documents of the
// sampled lengths, packed back to back.
func (f *benchPoolFlags) sampleBatch(lens []int, servers int) (*attention.Args, []int) {
	cfg := sim.DefaultSampleConfig(f.dist, servers, f.tokens)
	cfg.MaxDoc = f.maxDoc
	s, err := sim.NewSampler(lens, cfg, f.seed)
	if err != nil {
		return nil, nil
	}
	docs := s.Next()
	a := &attention.Args{CuSeqlensQ: []int32{0}, CuSeqlensK: []int32{0}, NumHeadsQ: f.heads, NumHeadsKV: f.kvHeads, HeadDim: f.headDim, Causal: true}
	for _, d := range docs {
		end := a.CuSeqlensQ[len(a.CuSeqlensQ)-1] + int32(d)
		a.CuSeqlensQ = append(a.CuSeqlensQ, end)
		a.CuSeqlensK = append(a.CuSeqlensK, end)
	}
	return a, docs
}

// summarize takes, per server, the median over the timed runs.
func (f *benchPoolFlags) summarize(strategy, pass string, a *attention.Args, docs int, sequential bool, infos []server.Info, reps []*pool.Report) benchPoolRow {
	eps := f.epsilon
	row := benchPoolRow{
		Strategy: strategy, Epsilon: &eps, Pass: pass, Dist: f.dist, Servers: len(reps[0].Servers), TokensPerServer: f.tokens,
		Docs: docs, HeadsQ: a.NumHeadsQ, HeadsKV: a.NumHeadsKV, HeadDim: a.HeadDim, Sequential: sequential,
	}
	median := func(get func(*pool.Report) time.Duration) float64 {
		v := make([]float64, len(reps))
		for i, r := range reps {
			v[i] = ms(get(r))
		}
		slices.Sort(v)
		return round(v[len(v)/2], 3)
	}
	row.WallMS = median(func(r *pool.Report) time.Duration { return r.Wall })
	last := reps[len(reps)-1]
	var pred, kern, gpu []float64
	for i, s := range last.Servers {
		srv := benchPoolSrvr{
			Name: s.Name, Tasks: len(s.Tasks), Batches: s.Batches, QRows: s.QRows, KRows: s.KRows, PredictedS: s.Predicted,
			KernelMS: median(func(r *pool.Report) time.Duration { return r.Servers[i].Stats.Kernel }),
			GPUMS:    median(func(r *pool.Report) time.Duration { return r.Servers[i].Stats.GPU }),
			TotalMS:  median(func(r *pool.Report) time.Duration { return r.Servers[i].Stats.Total }),
		}
		row.PerServer = append(row.PerServer, srv)
		pred, kern, gpu = append(pred, srv.PredictedS), append(kern, srv.KernelMS), append(gpu, srv.GPUMS)
	}
	for i, info := range infos {
		row.PerServer[i].Adapter = info.Adapter
	}
	row.PredictedImbalance = round(maxOverMean(pred), 3)
	row.MeasuredImbalance = round(maxOverMean(kern), 3)
	row.GPUImbalance = round(maxOverMean(gpu), 3)
	row.MaxKernelMS = slices.Max(kern)
	return row
}

// maxOverMean returns max(v)/mean(v), or 0 when v sums to zero.
func maxOverMean(v []float64) float64 {
	var sum, mx float64
	for _, x := range v {
		sum += x
		mx = math.Max(mx, x)
	}
	if sum <= 0 {
		return 0
	}
	return mx / (sum / float64(len(v)))
}

// writePoolRow prints one strategy and pass as a small table.
func writePoolRow(w io.Writer, row benchPoolRow) {
	title := row.Strategy
	if row.Epsilon != nil {
		title += fmt.Sprintf(" (ε=%g)", *row.Epsilon)
	}
	gpu := "n/a"
	if row.GPUImbalance > 0 {
		gpu = fmt.Sprintf("%.3f", row.GPUImbalance)
	}
	fmt.Fprintf(w, "\n%s, %s: imbalance predicted %.3f, measured %.3f (kernel) / %s (GPU); slowest server %.1f ms, call %.1f ms\n",
		title, row.Pass, row.PredictedImbalance, row.MeasuredImbalance, gpu, row.MaxKernelMS, row.WallMS)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\ttasks\tbatches\tq rows\tk rows\tpredicted\tkernel ms\tGPU ms\ttotal ms\t")
	var predSum float64
	for _, s := range row.PerServer {
		predSum += s.PredictedS
	}
	for _, s := range row.PerServer {
		share := 0.0
		if predSum > 0 {
			share = s.PredictedS / (predSum / float64(len(row.PerServer)))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.3f×\t%.1f\t%.1f\t%.1f\t\n", s.Name, s.Tasks, s.Batches, s.QRows, s.KRows, share, s.KernelMS, s.GPUMS, s.TotalMS)
	}
	tw.Flush()
}
