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
	StrategyPacking  = "packing"
	StrategyWLB      = "wlb"
	StrategyPerDocCP = "per-doc-cp"
	StrategyCAD      = "cad"
)

// DefaultEpsilons is the CAD tolerance sweep the simulator reports.
var DefaultEpsilons = []float64{0, 0.05, 0.1, 0.2}

// Config configures Simulate. DefaultSimConfig fills in the paper's
// defaults; every field is a knob.
type Config struct {
	// Sample is the batch recipe, including servers and tokens per server.
	Sample SampleConfig
	// Arch is the transformer; Pass the passes a step runs (Training: a
	// forward and a backward).
	Arch disagg.Arch
	Pass disagg.Pass
	// Batches is the number of global batches sampled and averaged over;
	// Seed seeds the sampler.
	Batches int
	Seed    uint64
	// Epsilons is the CAD tolerance sweep; Headline is the tolerance of the
	// headline CAD row, added to the sweep when missing.
	Epsilons []float64
	Headline float64
	// BlockSize is the CA-task shard granularity in tokens.
	BlockSize int
	// AttnFLOPS is each server's sustained core-attention FLOP/s (used when
	// Cost is nil); LinearFLOPS its sustained FLOP/s on everything else.
	AttnFLOPS   float64
	LinearFLOPS float64
	// Bandwidth is each server's network bandwidth in bytes/s, each way.
	Bandwidth float64
	// Cost, when set, predicts task time instead of the FLOP model (e.g. a
	// measured Profile); every server uses it.
	Cost disagg.CostModel
	// CPDegree is the per-document CP group size; 0 means all servers.
	CPDegree int
	// WLBMaxTokens caps a server's tokens under WLB, as a multiple of
	// TokensPerServer; 0 means no cap.
	WLBMaxTokens float64
	// Progress, when set, is called after each batch.
	Progress func(done, total int)
}

// DefaultConfig returns the defaults for distribution dist on servers
// servers of tokensPerServer tokens: llama-8b, training steps, 3 batches, the
// ε sweep with headline 0.1, 128-token blocks, 400 TFLOP/s attention and 500
// TFLOP/s linear throughput (H200-class bf16) and 50 GB/s per server.
func DefaultConfig(dist string, servers, tokensPerServer int) Config {
	return Config{
		Sample: DefaultSampleConfig(dist, servers, tokensPerServer),
		Arch:   disagg.Llama8B, Pass: disagg.PassTraining, Batches: 3, Seed: 1,
		Epsilons: slices.Clone(DefaultEpsilons), Headline: disagg.DefaultEpsilon,
		BlockSize: disagg.DefaultBlockSize, AttnFLOPS: 400e12, LinearFLOPS: 500e12, Bandwidth: 50e9,
	}
}

// Result is one strategy's figures, averaged over the sampled batches. Times
// are for a whole step (all layers); bytes too.
type Result struct {
	Strategy string `json:"strategy"`
	// Epsilon is the CAD tolerance (nil for the other strategies); Headline
	// marks the CAD row run at SimConfig.Headline.
	Epsilon  *float64 `json:"epsilon,omitempty"`
	Headline bool     `json:"headline,omitempty"`
	// Imbalance is max/mean of per-server predicted attention time;
	// WorstImbalance the largest over the batches.
	Imbalance      float64 `json:"imbalance"`
	WorstImbalance float64 `json:"worst_imbalance"`
	// MemoryImbalance is max/mean of per-server resident tokens.
	MemoryImbalance float64 `json:"memory_imbalance"`
	// BytesPerStep is the traffic between servers in one step.
	BytesPerStep float64 `json:"bytes_per_step"`
	// StepTimeS = slowest server's linear + attention time + exposed
	// communication; AttentionS, LinearS and CommS are the slowest server's
	// attention time, linear time and exposed communication.
	StepTimeS  float64 `json:"step_time_s"`
	AttentionS float64 `json:"attention_s"`
	LinearS    float64 `json:"linear_s"`
	CommS      float64 `json:"comm_s"`
	// PlanMS is the scheduler's wall time per batch (CAD only).
	PlanMS float64 `json:"plan_ms,omitempty"`
	// Moves is the scheduler's number of moves per batch (CAD only).
	Moves float64 `json:"moves,omitempty"`
	// Model, Servers, TokensPerServer and Batches echo the configuration.
	Model           string `json:"model"`
	Servers         int    `json:"servers"`
	TokensPerServer int    `json:"tokens_per_server"`
	Batches         int    `json:"batches"`
}

func (c *Config) validate() error {
	if err := c.Sample.Validate(); err != nil {
		return err
	}
	if err := c.Arch.Validate(); err != nil {
		return err
	}
	switch {
	case !c.Pass.Valid():
		return fmt.Errorf("disagg: simulate: unknown pass %d", int(c.Pass))
	case c.Batches <= 0:
		return fmt.Errorf("disagg: simulate: batches %d must be positive", c.Batches)
	case !positive(c.LinearFLOPS):
		return fmt.Errorf("disagg: simulate: linear throughput %g FLOP/s must be positive", c.LinearFLOPS)
	case !positive(c.Bandwidth):
		return fmt.Errorf("disagg: simulate: bandwidth %g bytes/s must be positive", c.Bandwidth)
	case c.Cost == nil && !positive(c.AttnFLOPS):
		return fmt.Errorf("disagg: simulate: attention throughput %g FLOP/s must be positive", c.AttnFLOPS)
	case c.BlockSize < 0:
		return fmt.Errorf("disagg: simulate: block size %d must not be negative", c.BlockSize)
	case c.CPDegree < 0 || (c.CPDegree > 0 && c.Sample.Servers%c.CPDegree != 0):
		return fmt.Errorf("disagg: simulate: cp degree %d must divide servers %d", c.CPDegree, c.Sample.Servers)
	case !(c.WLBMaxTokens >= 0) || math.IsInf(c.WLBMaxTokens, 0):
		return fmt.Errorf("disagg: simulate: wlb token cap %g must be a non-negative number", c.WLBMaxTokens)
	}
	for _, e := range append(slices.Clone(c.Epsilons), c.Headline) {
		if !(e >= 0) || math.IsInf(e, 0) {
			return fmt.Errorf("disagg: simulate: epsilon %g must be a non-negative number", e)
		}
	}
	return nil
}

func positive(x float64) bool { return x > 0 && !math.IsInf(x, 0) }

// accum averages one strategy's figures over batches.
type accum struct {
	Result
	n int
}

// Run samples cfg.Batches global batches from the document-length
// distribution lens and reports, per strategy, the figures of Result averaged
// over them: packing, wlb, per-doc-cp and cad at every tolerance (in that
// order, cad by ascending ε).
func Run(ctx context.Context, lens []int, cfg Config) ([]Result, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cost := cfg.Cost
	if cost == nil {
		fm, err := disagg.NewFLOPModel(cfg.Arch, cfg.AttnFLOPS)
		if err != nil {
			return nil, err
		}
		cost = fm
	}
	costs := []disagg.CostModel{cost}
	eps := slices.Clone(cfg.Epsilons)
	if !slices.Contains(eps, cfg.Headline) {
		eps = append(eps, cfg.Headline)
	}
	slices.Sort(eps)
	eps = slices.Compact(eps)

	sampler, err := NewSampler(lens, cfg.Sample, cfg.Seed)
	if err != nil {
		return nil, err
	}
	n, t := cfg.Sample.Servers, cfg.Sample.TokensPerServer
	opt := disagg.Options{Arch: cfg.Arch, Pass: cfg.Pass, BlockSize: cfg.BlockSize}
	rows := make([]*accum, 0, 3+len(eps))
	for _, s := range []string{StrategyPacking, StrategyWLB, StrategyPerDocCP} {
		rows = append(rows, &accum{Result: Result{Strategy: s}})
	}
	for _, e := range eps {
		rows = append(rows, &accum{Result: Result{Strategy: StrategyCAD, Epsilon: &e, Headline: e == cfg.Headline}})
	}
	for b := range cfg.Batches {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		docs := sampler.Next()
		l, err := disagg.Place(docs, n, t)
		if err != nil {
			return nil, fmt.Errorf("disagg: simulate: batch %d: %w", b, err)
		}
		pk, err := disagg.Pack(l, costs, opt)
		if err != nil {
			return nil, err
		}
		cfg.add(rows[0], PlanStats(pk), false)
		wlb, err := WLB(docs, n, t, costs, opt, int64(cfg.WLBMaxTokens*float64(t)))
		if err != nil {
			return nil, err
		}
		cfg.add(rows[1], wlb, false)
		cp, err := PerDocCP(docs, n, t, cfg.CPDegree, costs, opt)
		if err != nil {
			return nil, err
		}
		cfg.add(rows[2], cp, false)
		for i, e := range eps {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			o := opt
			o.Epsilon = e
			start := time.Now()
			p, err := disagg.Schedule(l, costs, o)
			if err != nil {
				return nil, err
			}
			row := rows[3+i]
			row.PlanMS += float64(time.Since(start).Microseconds()) / 1e3
			row.Moves += float64(p.Moves)
			if err := p.Verify(); err != nil {
				return nil, fmt.Errorf("disagg: simulate: batch %d, epsilon %g: %w", b, e, err)
			}
			cfg.add(row, PlanStats(p), true)
		}
		if cfg.Progress != nil {
			cfg.Progress(b+1, cfg.Batches)
		}
	}
	out := make([]Result, len(rows))
	for i, a := range rows {
		r := a.Result
		k := float64(a.n)
		r.Imbalance /= k
		r.MemoryImbalance /= k
		r.BytesPerStep /= k
		r.StepTimeS /= k
		r.AttentionS /= k
		r.LinearS /= k
		r.CommS /= k
		r.PlanMS /= k
		r.Moves /= k
		r.Model, r.Servers, r.TokensPerServer, r.Batches = cfg.Arch.Name, n, t, a.n
		out[i] = r
	}
	return out, nil
}

// add accumulates one batch's stats. With overlap, communication hides
// behind the server's linear-layer compute (DistCA's ping-pong of two
// nano-batches); without it, it is exposed.
func (c *Config) add(a *accum, st Stats, overlap bool) {
	step, attn, lin, comm := c.stepTime(st, overlap)
	imb := st.Imbalance()
	a.Imbalance += imb
	a.WorstImbalance = max(a.WorstImbalance, imb)
	a.MemoryImbalance += st.MemoryImbalance()
	a.BytesPerStep += float64(st.Bytes()) * float64(c.Arch.Layers)
	a.StepTimeS += step
	a.AttentionS += attn
	a.LinearS += lin
	a.CommS += comm
	a.n++
}

// stepTime is the step-time model: per server, linear time = linear FLOPs of
// its tokens / LinearFLOPS, attention time = layers × predicted per-layer
// time, communication = layers × max(bytes in, bytes out) / Bandwidth, of
// which the part not hidden behind linear time (overlap) or all of it (no
// overlap) is exposed. Step = max over servers of linear + attention, plus the
// largest exposed communication.
func (c *Config) stepTime(st Stats, overlap bool) (step, attn, lin, comm float64) {
	layers := float64(c.Arch.Layers)
	var compute float64
	for s := range st.Load {
		l := c.Arch.LinearFLOPs(st.Tokens[s], c.Pass) / c.LinearFLOPS
		a := layers * st.Load[s]
		m := layers * float64(max(st.BytesIn[s], st.BytesOut[s])) / c.Bandwidth
		if overlap {
			m = max(0, m-l)
		}
		compute = max(compute, l+a)
		attn, lin, comm = max(attn, a), max(lin, l), max(comm, m)
	}
	return compute + comm, attn, lin, comm
}
