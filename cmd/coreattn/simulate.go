package main

import (
	"context"
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/coreattn/coreattn/disagg/sim"

	"github.com/spf13/cobra"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/coreattn/coreattn/disagg"
	"github.com/coreattn/coreattn/disagg/doclens"
)

// simulateFlags are the flags of `coreattn simulate`.
type simulateFlags struct {
	dist, model, plot, profile, pass   string
	servers, tokens, maxDoc, batches   int
	block, cpDegree                    int
	seed                               uint64
	epsilon                            float64
	epsilons                           []float64
	jsonOut                            bool
	bandwidthGBs, attnTFLOPS, linTFLOP float64
	wlbMaxTokens                       float64
	// sampling recipe
	longThreshold, upsampleLong, sampleSize, elongateBase, replaceLen int
	keepShort, replaceProb                                            float64
}

func newSimulateCmd(_ *globalFlags) *cobra.Command {
	f := &simulateFlags{}
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Simulate core-attention disaggregation at cluster scale",
		Long: `Samples global batches from a document-length distribution the DistCA way and
reports, per strategy, the attention-load imbalance (max/mean of predicted
attention time per server), the memory (token) imbalance, the bytes moved per
step and the predicted step time:

  packing     documents packed onto ranks, no disaggregation
  wlb         WLB-LLM variable-length chunking (balances attention, not tokens)
  per-doc-cp  per-document context parallelism, head-tail shards, all-gathered KV
  cad         core-attention disaggregation at each tolerance epsilon

The model behind every figure is described in docs/simulate.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSimulate(cmd.Context(), f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dist, "dist", "prolong", "document-length distribution: pretrain, prolong or a JSON file of lengths")
	fl.IntVar(&f.servers, "servers", 512, "attention servers (= trainer ranks)")
	fl.IntVar(&f.tokens, "tokens-per-server", 524288, "tokens per server per batch")
	fl.IntVar(&f.maxDoc, "max-doc", 0, "cut documents longer than this many tokens (after elongation); 0: no limit")
	fl.StringVar(&f.model, "model", disagg.Llama8B.Name, "model: "+strings.Join(disagg.ArchNames(), ", "))
	fl.Float64Var(&f.epsilon, "epsilon", disagg.DefaultEpsilon, "tolerance of the headline CAD row")
	fl.Float64SliceVar(&f.epsilons, "epsilons", sim.DefaultEpsilons, "CAD tolerance sweep")
	fl.IntVar(&f.batches, "batches", 3, "global batches to sample and average over")
	fl.Uint64Var(&f.seed, "seed", 1, "sampling seed")
	fl.BoolVar(&f.jsonOut, "json", false, "print one JSON object per line and strategy")
	fl.StringVar(&f.plot, "plot", "", "write a PNG (or SVG/PDF by extension) chart of imbalance per strategy")
	fl.StringVar(&f.profile, "profile", "", "cost profile JSON (coreattn profile) instead of the FLOP model")
	fl.StringVar(&f.pass, "pass", "training", "passes per step: training (forward+backward), forward or backward")
	fl.IntVar(&f.block, "block", disagg.DefaultBlockSize, "CA-task shard granularity in tokens")
	fl.Float64Var(&f.bandwidthGBs, "bandwidth", 50, "network bandwidth per server, GB/s each way")
	fl.Float64Var(&f.attnTFLOPS, "attn-tflops", 400, "sustained core-attention TFLOP/s per server (FLOP model)")
	fl.Float64Var(&f.linTFLOP, "linear-tflops", 500, "sustained TFLOP/s per server on the linear layers")
	fl.IntVar(&f.cpDegree, "cp-degree", 0, "per-document CP group size; 0: all servers")
	fl.Float64Var(&f.wlbMaxTokens, "wlb-max-tokens", 0, "WLB token cap per server, as a multiple of --tokens-per-server; 0: none")
	def := sim.DefaultSampleConfig("pretrain", 1, 1)
	fl.IntVar(&f.longThreshold, "long-threshold", def.LongThreshold, "documents at least this long (before elongation) are long")
	fl.IntVar(&f.upsampleLong, "upsample-long", def.UpsampleLong, "replicate long documents this many times in the pool")
	fl.Float64Var(&f.keepShort, "keep-short", def.KeepShort, "fraction of short documents kept in the pool")
	fl.IntVar(&f.sampleSize, "sample-size", def.SampleSize, "documents drawn without replacement per draw")
	fl.IntVar(&f.elongateBase, "elongate-base", def.ElongateBase, "lengths are multiplied by tokens-per-server / elongate-base")
	fl.Float64Var(&f.replaceProb, "replace-long-prob", -1, "probability a long document becomes one of --replace-long-len tokens; default 0.3 for prolong, else 0")
	fl.IntVar(&f.replaceLen, "replace-long-len", def.ReplaceLongLen, "length (before elongation) of replaced long documents")
	return cmd
}

func (f *simulateFlags) config() (sim.Config, error) {
	m, err := disagg.ArchByName(f.model)
	if err != nil {
		return sim.Config{}, err
	}
	cfg := sim.DefaultConfig(f.dist, f.servers, f.tokens)
	cfg.Arch = m
	switch f.pass {
	case "training":
		cfg.Pass = disagg.PassTraining
	case "forward":
		cfg.Pass = disagg.PassForward
	case "backward":
		cfg.Pass = disagg.PassBackward
	default:
		return cfg, fmt.Errorf("--pass %q: want training, forward or backward", f.pass)
	}
	cfg.Batches, cfg.Seed = f.batches, f.seed
	cfg.Epsilons, cfg.Headline = f.epsilons, f.epsilon
	cfg.BlockSize, cfg.CPDegree, cfg.WLBMaxTokens = f.block, f.cpDegree, f.wlbMaxTokens
	cfg.Bandwidth = f.bandwidthGBs * 1e9
	cfg.AttnFLOPS, cfg.LinearFLOPS = f.attnTFLOPS*1e12, f.linTFLOP*1e12
	s := &cfg.Sample
	s.MaxDoc, s.LongThreshold, s.UpsampleLong, s.KeepShort = f.maxDoc, f.longThreshold, f.upsampleLong, f.keepShort
	s.SampleSize, s.ElongateBase, s.ReplaceLongLen = f.sampleSize, f.elongateBase, f.replaceLen
	if f.replaceProb >= 0 {
		s.ReplaceLongProb = f.replaceProb
	} else if f.replaceProb != -1 {
		return cfg, fmt.Errorf("--replace-long-prob %g must be in [0, 1]", f.replaceProb)
	}
	if f.block <= 0 {
		return cfg, fmt.Errorf("--block %d must be positive", f.block)
	}
	if f.profile != "" {
		p, err := disagg.LoadProfile(f.profile)
		if err != nil {
			return cfg, err
		}
		if cfg.Cost, err = p.CostModel(m); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

func runSimulate(ctx context.Context, f *simulateFlags, stdout, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	cfg, err := f.config()
	if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	lens, err := doclens.Load(f.dist)
	if err != nil {
		return fmt.Errorf("simulate: --dist: %w", err)
	}
	start := time.Now()
	cfg.Progress = func(done, total int) {
		fmt.Fprintf(stderr, "simulate: batch %d/%d done (%.1fs)\n", done, total, time.Since(start).Seconds())
	}
	res, err := sim.Run(ctx, lens, cfg)
	if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	if f.jsonOut {
		enc := json.NewEncoder(stdout)
		for _, r := range res {
			if err := enc.Encode(jsonRow{Dist: f.dist, Result: r}); err != nil {
				return fmt.Errorf("simulate: %w", err)
			}
		}
	} else if err := writeTable(stdout, f, res); err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	if f.plot != "" {
		title := fmt.Sprintf("%s, %d servers × %d tokens, %s", f.dist, f.servers, f.tokens, cfg.Arch.Name)
		if err := plotImbalance(f.plot, title, res, cfg.Headline); err != nil {
			return fmt.Errorf("simulate: --plot: %w", err)
		}
	}
	return nil
}

// jsonRow is one line of --json: the result plus the distribution.
type jsonRow struct {
	Dist string `json:"dist"`
	sim.Result
}

// label names a result row: the strategy, with ε for cad.
func label(r sim.Result) string {
	if r.Epsilon == nil {
		return r.Strategy
	}
	return fmt.Sprintf("%s ε=%g", r.Strategy, *r.Epsilon)
}

func writeTable(w io.Writer, f *simulateFlags, res []sim.Result) error {
	fmt.Fprintf(w, "dist %s, %d servers × %d tokens, %s, %d batch(es); * marks the headline CAD row\n\n",
		f.dist, f.servers, f.tokens, f.model, f.batches)
	names := make([]string, len(res))
	width := len("strategy")
	for i, r := range res {
		names[i] = r.Strategy
		if r.Headline {
			names[i] += " *"
		}
		width = max(width, len(names[i]))
	}
	// Right-aligned numbers; names padded so that they read left-aligned.
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\tepsilon\timbalance\tworst\tmemory\tbytes/step\tstep (s)\tattention (s)\tlinear (s)\tcomm (s)\tplan (ms)\t\n", width, "strategy")
	for i, r := range res {
		eps, plan := "-", "-"
		if r.Epsilon != nil {
			eps = fmt.Sprintf("%.2f", *r.Epsilon)
			plan = fmt.Sprintf("%.1f", r.PlanMS)
		}
		fmt.Fprintf(tw, "%-*s\t%s\t%.3f\t%.3f\t%.3f\t%s\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t\n",
			width, names[i], eps, r.Imbalance, r.WorstImbalance, r.MemoryImbalance, humanBytes(r.BytesPerStep),
			r.StepTimeS, r.AttentionS, r.LinearS, r.CommS, plan)
	}
	return tw.Flush()
}

// humanBytes formats a byte count with a decimal unit.
func humanBytes(b float64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB", "EB"}
	i := 0
	for b >= 1000 && i < len(units)-1 {
		b /= 1000
		i++
	}
	return fmt.Sprintf("%.1f %s", b, units[i])
}

// plotImbalance draws imbalance per strategy as bars rising from 1 (perfect
// balance) on a log axis, with the value above each bar and a dashed line at
// the headline tolerance.
func plotImbalance(path, title string, res []sim.Result, headline float64) error {
	p := plot.New()
	p.Title.Text = "Attention-load imbalance (max/mean), " + title
	p.Y.Label.Text = "imbalance (log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = imbalanceTicks{}
	names := make([]string, len(res))
	bars := &floorBars{base: 1, width: 0.6}
	xys := make(plotter.XYs, len(res))
	labels := make([]string, len(res))
	top := 1.0
	for i, r := range res {
		names[i] = label(r)
		bars.values = append(bars.values, r.Imbalance)
		col := color.RGBA{R: 0x4c, G: 0x72, B: 0xb0, A: 0xff}
		switch r.Strategy {
		case sim.StrategyPacking:
			col = color.RGBA{R: 0xc4, G: 0x4e, B: 0x52, A: 0xff}
		case sim.StrategyWLB:
			col = color.RGBA{R: 0xdd, G: 0x84, B: 0x52, A: 0xff}
		case sim.StrategyPerDocCP:
			col = color.RGBA{R: 0x8c, G: 0x8c, B: 0x8c, A: 0xff}
		}
		bars.colors = append(bars.colors, col)
		xys[i] = plotter.XY{X: float64(i), Y: r.Imbalance}
		labels[i] = fmt.Sprintf("%.3f", r.Imbalance)
		top = max(top, r.Imbalance)
	}
	lb, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
	if err != nil {
		return err
	}
	for i := range lb.TextStyle {
		lb.TextStyle[i].XAlign = draw.XCenter
		lb.TextStyle[i].YAlign = draw.YBottom
	}
	ref := plotter.NewFunction(func(float64) float64 { return 1 + headline })
	ref.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	ref.Color = color.Gray{Y: 0x60}
	p.Add(plotter.NewGrid(), bars, lb, ref)
	p.Legend.Add(fmt.Sprintf("1 + ε = %g", 1+headline), ref)
	p.Legend.Top = true
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.6, float64(len(res))-0.4
	p.Y.Min, p.Y.Max = 1, math.Pow(top, 1.15)*1.02
	return p.Save(vg.Length(max(16, 2.2*float64(len(res))))*vg.Centimeter, 11*vg.Centimeter, path)
}

// floorBars are bars rising from base rather than 0, so they work on a log
// axis.
type floorBars struct {
	values []float64
	colors []color.Color
	base   float64
	width  float64 // in x units
}

func (b *floorBars) Plot(c draw.Canvas, plt *plot.Plot) {
	trX, trY := plt.Transforms(&c)
	for i, v := range b.values {
		x0, x1 := trX(float64(i)-b.width/2), trX(float64(i)+b.width/2)
		y0, y1 := trY(b.base), trY(max(v, b.base))
		pts := []vg.Point{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}}
		c.FillPolygon(b.colors[i], c.ClipPolygonXY(pts))
	}
}

func (b *floorBars) DataRange() (xmin, xmax, ymin, ymax float64) {
	ymin, ymax = b.base, b.base
	for _, v := range b.values {
		ymax = max(ymax, v)
	}
	return -0.5, float64(len(b.values)) - 0.5, ymin, ymax
}

// imbalanceTicks puts labelled ticks at 1, 1.1, 1.2, 1.5, 2, 5, 10, 20, ...
type imbalanceTicks struct{}

func (imbalanceTicks) Ticks(lo, hi float64) []plot.Tick {
	var out []plot.Tick
	for _, m := range []float64{1, 10, 100, 1000} {
		for _, k := range []float64{1, 1.1, 1.2, 1.5, 2, 3, 5} {
			v := m * k
			if m > 1 && k < 1.5 {
				continue
			}
			if v >= lo && v <= hi {
				out = append(out, plot.Tick{Value: v, Label: fmt.Sprintf("%g", v)})
			}
		}
	}
	return out
}
