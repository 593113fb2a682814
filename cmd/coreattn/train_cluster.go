package main

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/coreattn/coreattn/disagg"
	"github.com/coreattn/coreattn/model"
	"github.com/coreattn/coreattn/model/train"
	"github.com/coreattn/coreattn/wgpu"
)

// clusterFlags are the flags of `coreattn train` for several ranks.
type clusterFlags struct {
	ranks, tokensPerRank int
	adapters             []int
	packing, noPingPong  bool
	epsilon              float64
	block                int
	profile              string
	plot                 string
	compare              bool
	from                 []string
	failServer           string
	linkGBps             float64
}

func (cf *clusterFlags) register(fl *pflag.FlagSet) {
	fl.IntVar(&cf.ranks, "ranks", 1, "trainer ranks, dealt round-robin over the adapters (several may share one): each runs the linear layers on its share of the step, and core attention runs as the CAD plan balances it")
	fl.IntVar(&cf.tokensPerRank, "tokens-per-rank", 0, "tokens of each rank (0: --tokens / --ranks, or the preset's default per rank)")
	fl.IntSliceVar(&cf.adapters, "adapters", nil, "adapter indices for the ranks (default: every adapter of the best one's type)")
	fl.BoolVar(&cf.packing, "packing", false, "--ranks: no disaggregation, every rank computes the attention of its own rows (the baseline)")
	fl.BoolVar(&cf.noPingPong, "no-pingpong", false, "--ranks: run each rank's tokens as one batch instead of two nano-batches whose attention alternates with the other's linear layers")
	fl.Float64Var(&cf.epsilon, "epsilon", disagg.DefaultEpsilon, "--ranks: the scheduler's tolerance (0: as tight as the block allows)")
	fl.IntVar(&cf.block, "block", disagg.DefaultBlockSize, "--ranks: CA-task shard size in tokens")
	fl.StringVar(&cf.profile, "profile", "", "--ranks: attention cost profile of the adapter (coreattn profile); default: the FLOP model")
	fl.StringVar(&cf.plot, "plot", "", "draw per-rank stacked bars of packing and CAD side by side to this PNG (with --compare, or from two --from logs)")
	fl.BoolVar(&cf.compare, "compare", false, "--ranks: train --steps steps with packing and with CAD from the same seed and batches, and report both")
	fl.StringArrayVar(&cf.from, "from", nil, "with --plot: a log.jsonl of a --ranks run (give two: packing and CAD)")
	fl.StringVar(&cf.failServer, "fail-server", "", "--ranks: lose RANK's attention server in step STEP (RANK@STEP), to watch the re-plan")
	fl.Float64Var(&cf.linkGBps, "link-gbps", 25, "GB/s of the link between adapters, for the projected multi-GPU step time")
}

// on reports whether the command runs several ranks (or one through the
// cluster, when --ranks is given).
func (cf *clusterFlags) on(cmd *cobra.Command) bool {
	ch := cmd.Flags().Changed
	return cf.ranks > 1 || ch("ranks") || ch("tokens-per-rank") || cf.compare
}

// check validates the flags that need no device.
func (cf *clusterFlags) check(cmd *cobra.Command, f *trainFlags) error {
	ch := cmd.Flags().Changed
	switch {
	case cf.ranks < 1 || cf.ranks > 1024:
		return fmt.Errorf("--ranks %d: want 1..1024", cf.ranks)
	case cf.tokensPerRank < 0:
		return fmt.Errorf("--tokens-per-rank %d: want a positive number (0: the default)", cf.tokensPerRank)
	case cf.epsilon < 0 || math.IsNaN(cf.epsilon) || math.IsInf(cf.epsilon, 0):
		return fmt.Errorf("--epsilon %v: want a number >= 0", cf.epsilon)
	case cf.block < 1:
		return fmt.Errorf("--block %d: want a positive number of tokens", cf.block)
	case cf.linkGBps <= 0 || math.IsNaN(cf.linkGBps):
		return fmt.Errorf("--link-gbps %v: want a positive rate", cf.linkGBps)
	case len(cf.from) > 0 && cf.plot == "":
		return fmt.Errorf("--from %s: say where to draw with --plot FILE.png", cf.from[0])
	case len(cf.from) > 0 && len(cf.from) != 2:
		return fmt.Errorf("--from: give two logs (packing and CAD), got %d", len(cf.from))
	case cf.plot != "" && len(cf.from) == 0 && !cf.compare:
		return fmt.Errorf("--plot %s: draw from two --from logs, or with --compare", cf.plot)
	case cf.compare && cf.packing:
		return fmt.Errorf("--compare runs packing and CAD: leave --packing out")
	case cf.compare && f.resume:
		return fmt.Errorf("--compare trains from the initial weights: leave --resume out")
	case f.bench && cf.on(cmd):
		return fmt.Errorf("--bench measures one rank; for several ranks use --compare")
	case !cf.on(cmd) && (ch("packing") || ch("no-pingpong") || ch("profile") || ch("fail-server") || ch("adapters")):
		return fmt.Errorf("--packing, --no-pingpong, --profile, --fail-server and --adapters go with --ranks")
	case ch("adapters") && ch("adapter"):
		return fmt.Errorf("--adapters and --adapter: give one")
	}
	if _, _, err := cf.fault(); err != nil {
		return err
	}
	return nil
}

// shape resolves the ranks and the tokens of each: --tokens-per-rank, or
// --tokens split evenly, or the preset's default per rank.
func (cf *clusterFlags) shape(cmd *cobra.Command, tokens, def int) (ranks, perRank int, err error) {
	ranks, perRank = cf.ranks, cf.tokensPerRank
	switch {
	case perRank > 0 && cmd.Flags().Changed("tokens") && tokens != ranks*perRank:
		return 0, 0, fmt.Errorf("--tokens %d is not --ranks %d × --tokens-per-rank %d: give one of them", tokens, ranks, perRank)
	case perRank > 0:
	case tokens > 0:
		if tokens%ranks != 0 {
			return 0, 0, fmt.Errorf("--tokens %d do not split evenly over --ranks %d", tokens, ranks)
		}
		perRank = tokens / ranks
	default:
		perRank = def
	}
	if !cf.noPingPong && perRank%2 != 0 {
		return 0, 0, fmt.Errorf("--tokens-per-rank %d: ping-pong splits each rank's tokens into two equal nano-batches: give an even number (or --no-pingpong)", perRank)
	}
	return ranks, perRank, nil
}

// fault parses --fail-server RANK@STEP.
func (cf *clusterFlags) fault() (rank, step int, err error) {
	if cf.failServer == "" {
		return -1, 0, nil
	}
	r, st, ok := strings.Cut(cf.failServer, "@")
	rank, err1 := strconv.Atoi(r)
	step, err2 := strconv.Atoi(st)
	if !ok || err1 != nil || err2 != nil || rank < 0 || rank >= cf.ranks || step < 1 {
		return 0, 0, fmt.Errorf("--fail-server %q: want RANK@STEP with 0 <= RANK < --ranks %d and STEP >= 1", cf.failServer, cf.ranks)
	}
	return rank, step, nil
}

// trainer is what a run needs of a train.Trainer or a train.Cluster.
type trainer interface {
	Steps() int
	Evaluate(ctx context.Context, b model.Batch) (float64, int, error)
	Weights(ctx context.Context) (*model.Weights, error)
	SetWeights(w *model.Weights) error
	OptimizerState(ctx context.Context) (*train.OptimizerState, error)
	SetOptimizerState(s *train.OptimizerState) error
	SetTimed(on bool)
	Close()
}

// clustered reports whether the run has ranks.
func (s *session) clustered() bool { return s.cfg.Ranks > 0 }

// gradients computes one step's gradients, changing nothing (for timing).
func (s *session) gradients(ctx context.Context, b model.Batch) error {
	if s.cl != nil {
		_, err := s.cl.Gradients(ctx, b)
		return err
	}
	_, err := s.single.Gradients(ctx, b)
	return err
}

// gradientTime is the time of one gradient step, measured over n steps on
// b that change nothing: on one adapter each submitted before the previous
// one's results are read, as training runs them.
func (s *session) gradientTime(ctx context.Context, b model.Batch, n int) (time.Duration, error) {
	t0 := time.Now()
	if s.cl != nil {
		for range n {
			if _, err := s.cl.Gradients(ctx, b); err != nil {
				return 0, err
			}
		}
		return time.Since(t0) / time.Duration(n), nil
	}
	var prev *train.Pending
	for range n {
		p, err := s.single.SubmitGradients(ctx, b)
		if err != nil {
			return 0, err
		}
		if prev != nil {
			if _, err := prev.Wait(ctx); err != nil {
				return 0, err
			}
		}
		prev = p
	}
	if _, err := prev.Wait(ctx); err != nil {
		return 0, err
	}
	return time.Since(t0) / time.Duration(n), nil
}

// openClusterDevices opens the adapters the ranks are dealt over: --adapter
// alone, --adapters, or every adapter of the best one's type (so that a
// GPU machine's software adapter takes no rank), at most one per rank.
func openClusterDevices(g *globalFlags, cmd *cobra.Command, f *trainFlags) ([]*wgpu.Device, error) {
	opts := wgpu.Options{Verbose: g.verbose}
	var idx []int
	switch {
	case cmd.Flags().Changed("adapter"):
		idx = []int{f.adapter}
	case len(f.cluster.adapters) > 0:
		idx = f.cluster.adapters
	default:
		list, err := wgpu.Adapters(opts)
		if err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
		for _, a := range list {
			if a.Type == list[0].Type {
				idx = append(idx, a.Index)
			}
		}
	}
	idx = idx[:min(len(idx), max(f.cluster.ranks, 1))]
	var devs []*wgpu.Device
	for _, i := range idx {
		d, err := openAdapterWith(f.deviceOptions(g), "train", i)
		if err != nil {
			closeAll(devs)
			return nil, err
		}
		devs = append(devs, d)
	}
	return devs, nil
}

func closeAll(devs []*wgpu.Device) {
	for _, d := range devs {
		d.Close()
	}
}

func adapterNames(devs []*wgpu.Device) string {
	names := make([]string, len(devs))
	for i, d := range devs {
		names[i] = d.Info().String()
	}
	return strings.Join(names, "; ")
}

// newCluster builds the ranks (packing or CAD) with the run's flags.
func (s *session) newCluster(packing, timed bool) (*train.Cluster, error) {
	cf := &s.f.cluster
	o := train.ClusterOptions{Ranks: s.cfg.Ranks, TokensPerRank: s.cfg.TokensPerRank, Optimizer: s.cfg.Optimizer,
		Packing: packing, Epsilon: cf.epsilon, BlockSize: cf.block, Timed: timed, Precision: s.cfg.precision()}
	if s.cfg.NoPingPong {
		o.NanoBatches = 1
	}
	if cf.profile != "" {
		p, err := loadProfile(cf.profile)
		if err != nil {
			return nil, fmt.Errorf("--profile: %w", err)
		}
		o.Profiles = []*disagg.Profile{p}
	}
	if rank, step, _ := cf.fault(); rank >= 0 {
		o.ServerFault = func(ft train.Fault) error {
			if ft.Rank == rank && ft.Step == step && ft.Layer == 0 && !ft.Backward {
				return fmt.Errorf("%w: --fail-server %s", train.ErrServerLost, cf.failServer)
			}
			return nil
		}
	}
	return train.NewCluster(s.devs, s.cfg.Model, o)
}

// RanksRecord is what a step of several ranks adds to log.jsonl (exported
// only so that encoding/json can fill the embedded pointer).
type RanksRecord struct {
	Mode               string       `json:"mode"` // "cad" or "packing"
	PingPong           bool         `json:"pingpong"`
	Ranks              []rankRecord `json:"ranks"`
	ImbalancePredicted float64      `json:"imbalance_predicted"`
	ImbalanceMeasured  *float64     `json:"imbalance_measured,omitempty"`
	BytesMoved         int64        `json:"bytes_moved"`
	BytesHost          int64        `json:"bytes_host"`
	WaitProjected      bool         `json:"wait_projected,omitempty"`
	ProjectedMS        *float64     `json:"projected_parallel_ms,omitempty"`
	ReduceMS           *float64     `json:"reduce_ms,omitempty"`
	Replans            int          `json:"replans,omitempty"`
	Lost               []int        `json:"lost,omitempty"`
}

// rankRecord is one rank's share of a step: the plan's predicted
// attention load (relative to the mean) and, on timed steps, the measured
// milliseconds.
type rankRecord struct {
	PredictedLoad float64  `json:"predicted_load"`
	LinearMS      *float64 `json:"linear_ms,omitempty"`
	AttentionMS   *float64 `json:"attention_ms,omitempty"`
	TransferMS    *float64 `json:"transfer_ms,omitempty"`
	WaitMS        *float64 `json:"wait_ms,omitempty"`
}

func ptr[T any](v T) *T { return &v }

// newClusterRecord turns a step's statistics into its log record.
func newClusterRecord(st train.StepStats, packing, pingpong, timed bool, linkBps float64) *RanksRecord {
	mode := "cad"
	if packing {
		mode = "packing"
	}
	rec := &RanksRecord{Mode: mode, PingPong: pingpong, ImbalancePredicted: st.PredictedImbalance, BytesMoved: st.BytesMoved,
		BytesHost: st.BytesHost, Replans: st.Replans, Lost: st.Lost}
	mean := 0.0
	for _, l := range st.PlanLoad {
		mean += l / float64(len(st.PlanLoad))
	}
	for r, rt := range st.Ranks {
		rr := rankRecord{}
		if mean > 0 {
			rr.PredictedLoad = st.PlanLoad[r] / mean
		}
		if timed {
			rr.LinearMS, rr.AttentionMS, rr.TransferMS, rr.WaitMS = ptr(ms(rt.Linear)), ptr(ms(rt.Attention)), ptr(ms(rt.Transfer)), ptr(ms(rt.Wait))
		}
		rec.Ranks = append(rec.Ranks, rr)
	}
	if timed {
		rec.ImbalanceMeasured = ptr(st.MeasuredImbalance)
		rec.WaitProjected = st.WaitProjected
		rec.ProjectedMS = ptr(ms(st.Projected(linkBps)))
		rec.ReduceMS = ptr(ms(st.Reduce))
	}
	return rec
}

// clusterStep trains one step of several ranks.
func (s *session) clusterStep(ctx context.Context, b model.Batch, lr float64, start time.Time, elapsed0 float64) (stepRecord, error) {
	step := s.cl.Steps() + 1
	t0 := time.Now()
	res, err := s.cl.Step(ctx, b, lr)
	if err != nil {
		return stepRecord{}, fmt.Errorf("step %d: %w", step, err)
	}
	if math.IsNaN(res.Loss) || math.IsInf(res.Loss, 0) {
		return stepRecord{}, fmt.Errorf("step %d: the loss is %v (lower --lr?)", step, res.Loss)
	}
	d := time.Since(t0)
	if res.Stats.Replans > 0 {
		fmt.Fprintf(s.stderr, "step %d: attention server of rank %v lost: re-planned onto the others\n", step, res.Stats.Lost)
	}
	rec := stepRecord{Step: step, Loss: res.Loss, GradNorm: res.GradNorm, Clip: res.Clip, LR: lr, Tokens: len(b.Tokens),
		TokensPerS: float64(len(b.Tokens)) / d.Seconds(), StepMS: ms(d), ElapsedS: elapsed0 + time.Since(start).Seconds()}
	rec.RanksRecord = newClusterRecord(res.Stats, s.cfg.Packing, !s.cfg.NoPingPong, len(res.Stats.Intervals) > 0, s.f.cluster.linkGBps*1e9)
	return rec, nil
}

// meanRank averages the ranks' timed figures over records.
func meanRanks(recs []stepRecord) (ranks []rankRecord, imbalance, predicted, projected, stepMS float64, moved int64) {
	var n float64
	for _, r := range recs {
		c := r.RanksRecord
		if c == nil || c.ProjectedMS == nil {
			continue
		}
		if ranks == nil {
			ranks = make([]rankRecord, len(c.Ranks))
			for i := range ranks {
				ranks[i] = rankRecord{LinearMS: ptr(0.0), AttentionMS: ptr(0.0), TransferMS: ptr(0.0), WaitMS: ptr(0.0)}
			}
		}
		n++
		for i, rr := range c.Ranks {
			if i >= len(ranks) || rr.LinearMS == nil {
				continue
			}
			*ranks[i].LinearMS += *rr.LinearMS
			*ranks[i].AttentionMS += *rr.AttentionMS
			*ranks[i].TransferMS += *rr.TransferMS
			*ranks[i].WaitMS += *rr.WaitMS
			ranks[i].PredictedLoad += rr.PredictedLoad
		}
		predicted += c.ImbalancePredicted
		projected += *c.ProjectedMS
		stepMS += r.StepMS
		moved += c.BytesMoved
	}
	if n == 0 {
		return nil, 0, 0, 0, 0, 0
	}
	attn := make([]float64, len(ranks))
	for i := range ranks {
		for _, p := range []*float64{ranks[i].LinearMS, ranks[i].AttentionMS, ranks[i].TransferMS, ranks[i].WaitMS} {
			*p /= n
		}
		ranks[i].PredictedLoad /= n
		attn[i] = *ranks[i].AttentionMS
	}
	return ranks, disagg.MaxOverMean(attn), predicted / n, projected / n, stepMS / n, moved / int64(n)
}

// skipWarmup drops the first steps of a run's records (kernels compile,
// buffers grow) where there are enough left.
func skipWarmup(recs []stepRecord) []stepRecord {
	if len(recs) > 3 {
		return recs[2:]
	}
	return recs
}
