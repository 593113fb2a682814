package main

import (
	"context"
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/coreattn/coreattn/disagg"
	"github.com/coreattn/coreattn/disagg/doclens"
	"github.com/coreattn/coreattn/disagg/sim"
	"github.com/coreattn/coreattn/internal/outfile"
)

// simulateFlags are the flags of `coreattn simulate`.
type simulateFlags struct {
	recipe, dist, model, plot, dump            string
	profiles, strategies                       []string
	context, batch, tokens, gpus, tp, pp, gpn  int
	micro, batches, block, cpDegree, maxDoc    int
	seed                                       uint64
	epsilons                                   []float64
	jsonOut, singleStream                      bool
	intraGBs, interGBs, peakTF, mfu, memGB     float64
	bufferGB, attnTF, wlbAlpha, wlbBreak, act  float64
	longThreshold, upsample, sampleSize, elong int
	multipleOf                                 int
	keepShort, changeLong                      float64
}

func newSimulateCmd(_ *globalFlags) *cobra.Command {
	f := &simulateFlags{}
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Simulate DistCA's core-attention disaggregation against its baselines at cluster scale",
		Long: `Draws training steps with DistCA's batch recipe (its code's defaults: documents
cut at --context, ProLong long documents first) and predicts, per strategy, the
step time, attention imbalance, memory per GPU, bytes moved and, for CAD, the
per-GPU all-to-all buffer and the tolerance DistCA's buffer rule picks:

  packing     DP only: every CA-task on its home server
  per-seq-cp  Megatron's per-sequence context parallelism, zigzag shards
  per-doc-cp  per-document context parallelism at --cp-degree
  wlbllm      WLB-LLM: variable-length packing over DP groups + per-doc CP,
              the fastest CP degree of 1, 2, 4, 8 that fits in memory
  distca      CAD with ping-pong; ε = the smallest from 0.05 up whose plan
              fits --buffer-gb (DistCA's rule)
  cad         CAD at each fixed ε of --epsilons

A server is a tensor-parallel group (--tp); --pp adds 1F1B pipelines (CAD
schedules per tick, idle stages serve attention). --recipe stress keeps the
old 512 single-GPU servers × 512K uncut-document run: a stress test outside
the paper's regime. The model behind every figure is in docs/simulate.md.`,
		Example: `  coreattn simulate                                     # 8B, pretrain, 128K, 64 H200s, TP 8
  coreattn simulate --dist prolong --context 524288 --gpus 256 --batch 8
  coreattn simulate --model llama-34b --gpus 512 --pp 4 --batch 128 --json
  coreattn simulate --recipe stress                     # outside the paper's regime`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSimulate(contextOf(cmd.Context()), f, cmd.Flags().Changed, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.recipe, "recipe", "distca", "batch recipe: distca (the paper's) or stress (uncut documents, outside the paper's regime)")
	fl.StringVar(&f.dist, "dist", "pretrain", "document-length distribution: pretrain, prolong or a JSON file of lengths (sampled like pretrain)")
	fl.IntVar(&f.context, "context", 131072, "context length (DistCA's NUM_TOKENS): batches of exactly this many tokens; documents are cut at it")
	fl.IntVar(&f.batch, "batch", 0, "context batches per step (the paper's batch size); 0: one per server, or --tokens-per-server worth")
	fl.IntVar(&f.tokens, "tokens-per-server", 0, "tokens per server per step (sets --batch = servers × this / context); stress recipe: default 524288")
	fl.IntVar(&f.gpus, "gpus", 64, "GPUs in the cluster")
	fl.IntVar(&f.tp, "tp", 8, "tensor-parallel degree: a server is a TP group")
	fl.IntVar(&f.pp, "pp", 1, "pipeline-parallel degree (1F1B)")
	fl.IntVar(&f.micro, "microbatches", 0, "microbatches per pipeline (0: 2 × --pp)")
	fl.IntVar(&f.gpn, "gpus-per-node", 8, "GPUs per node (NVLink inside, --inter-gbs across)")
	fl.Float64Var(&f.intraGBs, "intra-gbs", 450, "NVLink bandwidth per GPU, GB/s each way")
	fl.Float64Var(&f.interGBs, "inter-gbs", 50, "inter-node bandwidth per GPU, GB/s each way (400 Gb/s InfiniBand)")
	fl.Float64Var(&f.peakTF, "peak-tflops", 989, "dense bf16 TFLOP/s per GPU")
	fl.Float64Var(&f.mfu, "linear-mfu", 0.5, "fraction of peak the context-independent layers sustain")
	fl.Float64Var(&f.memGB, "memory-gb", 140, "GPU memory, GB (strategies needing more are reported out of memory)")
	fl.Float64Var(&f.bufferGB, "buffer-gb", 2, "DistCA's per-GPU all-to-all buffer, GiB")
	fl.Float64Var(&f.act, "act-bytes", 16, "activation bytes kept per token, layer and hidden unit (16: MLP recomputed; 34: Megatron selective)")
	fl.StringVar(&f.model, "model", disagg.Llama8B.Name, "model: "+strings.Join(disagg.ArchNames(), ", "))
	fl.StringSliceVar(&f.profiles, "profile", []string{sim.DefaultProfile}, "cost profile per server class (a built-in name, a JSON file from coreattn profile or scripts/fa2_profile.py, or flop for the FLOP model at --attn-tflops); several split the servers into equal consecutive classes")
	fl.Float64Var(&f.attnTF, "attn-tflops", 340, "core-attention TFLOP/s per GPU of --profile flop")
	fl.Float64SliceVar(&f.epsilons, "epsilons", []float64{0, 0.05, 0.1, 0.15, 0.2}, "fixed tolerances of the cad rows")
	fl.StringSliceVar(&f.strategies, "strategies", nil, "strategies to run (default all): "+strings.Join(sim.AllStrategies, ", "))
	fl.IntVar(&f.batches, "batches", 3, "steps to simulate and average over")
	fl.Uint64Var(&f.seed, "seed", 42, "recipe seed (DistCA's default 42)")
	fl.IntVar(&f.block, "block", disagg.DefaultBlockSize, "CA-task shard granularity in tokens")
	fl.IntVar(&f.cpDegree, "cp-degree", 0, "per-doc-cp and per-seq-cp degree (0: 8, or the largest of 4, 2, 1 dividing a stage's servers)")
	fl.Float64Var(&f.wlbAlpha, "wlb-alpha", 1, "WLB-LLM token cap as a multiple of the mean tokens per DP group (DistCA's alpha_factor)")
	fl.Float64Var(&f.wlbBreak, "wlb-breakpoint", 0, "WLB-LLM workload unit x = length / this (0: 64000 for llama-8b, 131072 for llama-34b)")
	fl.BoolVar(&f.singleStream, "single-stream", false, "turn ping-pong off (communication on the compute stream)")
	def := sim.DefaultRecipe(sim.DistPretrain, 131072)
	fl.IntVar(&f.longThreshold, "long-threshold", def.LongThreshold, "documents at least this long are long (DistCA's filter_threshold)")
	fl.IntVar(&f.upsample, "upsample-long", def.Upsample, "repeat the long documents this many times")
	fl.Float64Var(&f.keepShort, "keep-short", def.KeepShort, "keep the first fraction of the short documents (DistCA's filter_ratio)")
	fl.IntVar(&f.sampleSize, "sample-size", def.SampleSize, "pretrain: lengths drawn without replacement")
	fl.IntVar(&f.elong, "elongate", 0, "pretrain: multiply drawn lengths by this; ProLong: replacement length 64K × this (0: max(1, context/65536))")
	fl.Float64Var(&f.changeLong, "change-long-ratio", -1, "ProLong: probability a long document becomes 64K × elongate tokens (default 0.3)")
	fl.IntVar(&f.multipleOf, "multiple-of", def.MultipleOf, "round lengths up to a multiple of this")
	fl.IntVar(&f.maxDoc, "max-doc", 0, "stress recipe: cut documents longer than this (0: never)")
	fl.BoolVar(&f.jsonOut, "json", false, "print one JSON object per line and strategy")
	fl.StringVar(&f.plot, "plot", "", "write a chart of step time and imbalance per strategy (.png, .svg or .pdf)")
	fl.StringVar(&f.dump, "dump-batches", "", "write the sampled steps as JSON (per step, per server, the document lengths)")
	return cmd
}

// plotExts are the chart formats --plot writes.
var plotExts = map[string]bool{".png": true, ".svg": true, ".pdf": true}

// config turns the flags into a sim.Config, checking every value before any
// work is done; each error names its flag.
func (f *simulateFlags) config(changed func(string) bool) (sim.Config, error) {
	m, err := disagg.ArchByName(f.model)
	if err != nil {
		return sim.Config{}, fmt.Errorf("--model: %w", err)
	}
	for name, v := range map[string]int{"--context": f.context, "--batch": f.batch, "--tokens-per-server": f.tokens,
		"--gpus": f.gpus, "--tp": f.tp, "--pp": f.pp, "--microbatches": f.micro, "--gpus-per-node": f.gpn,
		"--batches": f.batches, "--block": f.block, "--cp-degree": f.cpDegree, "--max-doc": f.maxDoc,
		"--long-threshold": f.longThreshold, "--upsample-long": f.upsample, "--sample-size": f.sampleSize,
		"--elongate": f.elong, "--multiple-of": f.multipleOf} {
		if v < 0 {
			return sim.Config{}, fmt.Errorf("%s %d must not be negative", name, v)
		}
	}
	dist := f.dist
	if dist != sim.DistProLong {
		dist = sim.DistPretrain
	}
	cfg := sim.DefaultConfig(dist, f.context, f.gpus)
	cfg.Arch = m
	c := &cfg.Cluster
	c.TP, c.PP, c.GPUsPerNode = f.tp, f.pp, f.gpn
	c.IntraBW, c.InterBW = f.intraGBs*1e9, f.interGBs*1e9
	c.PeakFLOPS, c.LinearMFU = f.peakTF*1e12, f.mfu
	c.MemoryBytes, c.BufferBytes, c.ActBytesPerHidden = f.memGB*1e9, f.bufferGB*(1<<30), f.act
	r := &cfg.Recipe
	r.LongThreshold, r.Upsample, r.KeepShort, r.SampleSize = f.longThreshold, f.upsample, f.keepShort, f.sampleSize
	r.Elongate, r.MultipleOf, r.Seed = f.elong, f.multipleOf, f.seed
	if f.changeLong != -1 {
		r.ChangeLongRatio = f.changeLong
	}
	cfg.Batches, cfg.BlockSize, cfg.Microbatches, cfg.CPDegree = f.batches, f.block, f.micro, f.cpDegree
	cfg.Epsilons, cfg.Strategies, cfg.SingleStream = f.epsilons, f.strategies, f.singleStream
	cfg.WLBAlpha, cfg.WLBBreakpoint, cfg.AttnFLOPS = f.wlbAlpha, f.wlbBreak, f.attnTF*1e12
	if err := c.Validate(); err != nil {
		return cfg, err
	}
	servers := c.Servers()
	switch f.recipe {
	case "distca":
		switch {
		case f.batch > 0 && f.tokens > 0:
			return cfg, fmt.Errorf("--batch and --tokens-per-server both set: give one")
		case f.batch > 0:
			cfg.Batch = f.batch
		case f.tokens > 0:
			total := int64(servers) * int64(f.tokens)
			if total%int64(f.context) != 0 || total/int64(f.context) > 1<<20 {
				return cfg, fmt.Errorf("--tokens-per-server %d × %d servers must be a multiple of --context %d (at most 2^20 contexts)", f.tokens, servers, f.context)
			}
			cfg.Batch = int(total / int64(f.context))
		default:
			cfg.Batch = servers
		}
	case "stress":
		tokens := f.tokens
		if tokens == 0 {
			tokens = 524288
		}
		if !changed("gpus") && !changed("tp") {
			c.GPUs, c.TP = 512, 1
			servers = c.Servers()
		}
		if int64(servers)*int64(tokens) > 1<<34 {
			return cfg, fmt.Errorf("--tokens-per-server %d × %d servers is more than 2^34 tokens", tokens, servers)
		}
		sc := sim.DefaultSampleConfig(f.dist, servers, tokens)
		sc.MaxDoc = f.maxDoc
		cfg.Stress, cfg.Batch = &sc, 1
	default:
		return cfg, fmt.Errorf("--recipe %q: want distca or stress", f.recipe)
	}
	costs, err := loadCosts(f.profiles, m, servers)
	if err != nil {
		return cfg, err
	}
	cfg.Costs = costs
	return cfg, cfg.Validate()
}

// loadCosts reads one cost model per server class and spreads the classes
// over the servers in equal consecutive blocks.
func loadCosts(names []string, m disagg.Arch, servers int) ([]disagg.CostModel, error) {
	if len(names) == 0 || len(names) > servers {
		return nil, fmt.Errorf("--profile: %d classes for %d servers", len(names), servers)
	}
	classes := make([]disagg.CostModel, len(names))
	for i, n := range names {
		if n == "flop" {
			classes[i] = nil
			continue
		}
		var p *disagg.Profile
		var err error
		if _, statErr := os.Stat(n); statErr == nil || strings.ContainsAny(n, "/.") {
			p, err = disagg.LoadProfile(n)
		} else {
			p, err = sim.BuiltinProfile(n)
		}
		if err != nil {
			return nil, fmt.Errorf("--profile: %w", err)
		}
		if classes[i], err = p.CostModel(m); err != nil {
			return nil, fmt.Errorf("--profile %s: %w", n, err)
		}
	}
	if len(classes) == 1 {
		if classes[0] == nil {
			return nil, nil
		}
		return classes, nil
	}
	out := make([]disagg.CostModel, servers)
	for s := range out {
		out[s] = classes[s*len(classes)/servers]
		if out[s] == nil {
			return nil, fmt.Errorf("--profile: flop cannot be mixed with profiles")
		}
	}
	return out, nil
}

func runSimulate(ctx context.Context, f *simulateFlags, changed func(string) bool, stdout, stderr io.Writer) error {
	cfg, err := f.config(changed)
	if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	if f.plot != "" {
		if !plotExts[strings.ToLower(filepath.Ext(f.plot))] {
			return fmt.Errorf("simulate: --plot %s: unknown extension %q (want .png, .svg or .pdf)", f.plot, filepath.Ext(f.plot))
		}
	}
	var outs []outfile.Path
	if f.plot != "" {
		outs = append(outs, outfile.Path{Flag: "plot", Name: f.plot})
	}
	if f.dump != "" {
		outs = append(outs, outfile.Path{Flag: "dump-batches", Name: f.dump})
	}
	var ins []outfile.Path
	if _, err := os.Stat(f.dist); err == nil {
		ins = append(ins, outfile.Path{Flag: "dist", Name: f.dist})
	}
	if err := outfile.Check(ins, outs); err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	lens, err := doclens.Load(f.dist)
	if err != nil {
		return fmt.Errorf("simulate: --dist: %w", err)
	}
	start := time.Now()
	cfg.Progress = func(done, total int) {
		fmt.Fprintf(stderr, "simulate: step %d/%d done (%.1fs)\n", done, total, time.Since(start).Seconds())
	}
	var dump []dumpStep
	if f.dump != "" {
		cfg.Dump = func(step int, batches [][]int) error {
			dump = append(dump, dumpStep{Step: step, Ranks: perRank(batches, cfg.Cluster.Servers())})
			return nil
		}
	}
	res, err := sim.Run(ctx, lens, cfg)
	if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	for _, r := range res {
		if !finiteResult(r) {
			return fmt.Errorf("simulate: %s: a figure is not finite (check --profile and the bandwidth and throughput flags)", r.Strategy)
		}
	}
	label := fmt.Sprintf("%s, %s, context %d, %d GPUs (TP %d, PP %d), batch %d", f.dist, cfg.Arch.Name, f.context, cfg.Cluster.GPUs, cfg.Cluster.TP, cfg.Cluster.PP, cfg.Batch)
	if cfg.Stress != nil {
		label = fmt.Sprintf("STRESS TEST outside the paper's regime: %s, %d servers × %d tokens, documents not cut, %s", f.dist, cfg.Stress.Servers, cfg.Stress.TokensPerServer, cfg.Arch.Name)
	}
	if f.jsonOut {
		enc := json.NewEncoder(stdout)
		for _, r := range res {
			if err := enc.Encode(jsonRow{Dist: f.dist, Recipe: f.recipe, Context: f.context, Speedup: speedup(res, r), Result: r}); err != nil {
				return fmt.Errorf("simulate: %w", err)
			}
		}
	} else if err := writeTable(stdout, label, res); err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	var files []outfile.Output
	if f.dump != "" {
		files = append(files, outfile.Output{Path: outfile.Path{Flag: "dump-batches", Name: f.dump}, Write: func(w io.Writer) error {
			enc := json.NewEncoder(w)
			enc.SetIndent("", " ")
			return enc.Encode(dumpFile{Dist: f.dist, Recipe: cfg.Recipe, Context: f.context, Servers: cfg.Cluster.Servers(), Steps: dump})
		}})
	}
	if f.plot != "" {
		files = append(files, outfile.Output{Path: outfile.Path{Flag: "plot", Name: f.plot}, Write: func(w io.Writer) error {
			return plotResults(w, filepath.Ext(f.plot), label, res)
		}})
	}
	if err := outfile.WriteAll(files); err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	return nil
}

func finiteResult(r sim.Result) bool {
	for _, x := range []float64{r.StepTimeS, r.AttentionS, r.LinearS, r.CommExposedS, r.IdleFrac, r.Imbalance, r.MemoryGB, r.MemoryImbalance, r.BytesPerStep, r.BufferGB} {
		if math.IsNaN(x) || math.IsInf(x, 0) || x < 0 {
			return false
		}
	}
	return true
}

// dumpFile is --dump-batches' JSON: per step, per server (rank) the document
// lengths it holds, a document cut between ranks appearing on each.
type dumpFile struct {
	Dist    string     `json:"dist"`
	Recipe  sim.Recipe `json:"recipe"`
	Context int        `json:"context"`
	Servers int        `json:"servers"`
	Steps   []dumpStep `json:"steps"`
}

type dumpStep struct {
	Step  int     `json:"step"`
	Ranks [][]int `json:"ranks"`
}

// perRank lays a step's documents over n ranks of equal token budgets.
func perRank(batches [][]int, n int) [][]int {
	var total int64
	for _, b := range batches {
		for _, d := range b {
			total += int64(d)
		}
	}
	per := max(1, (total+int64(n)-1)/int64(n))
	out := make([][]int, n)
	r, left := 0, per
	for _, b := range batches {
		for _, d := range b {
			for d > 0 && r < n {
				piece := int(min(int64(d), left))
				out[r] = append(out[r], piece)
				d -= piece
				if left -= int64(piece); left == 0 {
					r, left = r+1, per
				}
			}
		}
	}
	return out
}

// jsonRow is one line of --json.
type jsonRow struct {
	Dist    string  `json:"dist"`
	Recipe  string  `json:"recipe"`
	Context int     `json:"context"`
	Speedup float64 `json:"speedup_vs_wlbllm,omitempty"`
	sim.Result
}

// speedup is wlbllm's step time over r's (0 when either is missing or out
// of memory).
func speedup(res []sim.Result, r sim.Result) float64 {
	for _, w := range res {
		if w.Strategy == sim.StrategyWLBLLM && !w.OOM && !r.OOM && r.StepTimeS > 0 {
			return w.StepTimeS / r.StepTimeS
		}
	}
	return 0
}

// label names a result row: the strategy, with ε for cad.
func label(r sim.Result) string {
	if r.Epsilon == nil {
		return r.Strategy
	}
	return fmt.Sprintf("%s ε=%g", r.Strategy, *r.Epsilon)
}

func writeTable(w io.Writer, title string, res []sim.Result) error {
	fmt.Fprintf(w, "%s; %d step(s) averaged; speedup = wlbllm's step / the row's\n\n", title, res[0].Batches)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "strategy\tstep (s)\tspeedup\tattn (s)\tlinear (s)\tcomm exp (s)\tidle\timbalance\tmem GB\tmem imb\tbytes/step\tbuffer GB\tε or CP\t\n")
	for _, r := range res {
		step, sp, attn, lin, comm, idle := "OOM", "-", "-", "-", "-", "-"
		if !r.OOM {
			step = fmt.Sprintf("%.3f", r.StepTimeS)
			if s := speedup(res, r); s > 0 {
				sp = fmt.Sprintf("%.3f", s)
			}
			attn, lin, comm = fmt.Sprintf("%.3f", r.AttentionS), fmt.Sprintf("%.3f", r.LinearS), fmt.Sprintf("%.3f", r.CommExposedS)
			idle = fmt.Sprintf("%.1f%%", 100*r.IdleFrac)
		}
		buf, extra := "-", "-"
		if r.Strategy == sim.StrategyCAD || r.Strategy == sim.StrategyDistCA {
			buf = fmt.Sprintf("%.3f", r.BufferGB)
		}
		switch {
		case r.EpsilonPerBatch != nil:
			extra = "ε " + strings.Trim(strings.ReplaceAll(fmt.Sprint(r.EpsilonPerBatch), " ", ","), "[]")
			if r.BufferOverflow {
				extra += " (overflow)"
			}
		case r.CPPerBatch != nil:
			extra = "CP " + strings.Trim(strings.ReplaceAll(fmt.Sprint(r.CPPerBatch), " ", ","), "[]")
		case r.CP > 0:
			extra = fmt.Sprintf("CP %d", r.CP)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.3f\t%.1f\t%.3f\t%s\t%s\t%s\t\n",
			label(r), step, sp, attn, lin, comm, idle, r.Imbalance, r.MemoryGB, r.MemoryImbalance, humanBytes(r.BytesPerStep), buf, extra)
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

// plotResults draws step time per strategy as bars, labelled with the
// imbalance, in the format of ext.
func plotResults(w io.Writer, ext, title string, res []sim.Result) error {
	p := plot.New()
	p.Title.Text = "Step time per strategy (label: attention imbalance)\n" + title
	p.Y.Label.Text = "step time (s)"
	var vals plotter.Values
	var names, labels []string
	var xys plotter.XYs
	for i, r := range res {
		v := r.StepTimeS
		lb := fmt.Sprintf("%.2f", r.Imbalance)
		if r.OOM {
			v, lb = 0, "OOM"
		}
		vals = append(vals, v)
		names = append(names, label(r))
		labels = append(labels, lb)
		xys = append(xys, plotter.XY{X: float64(i), Y: v})
	}
	bars, err := plotter.NewBarChart(vals, vg.Points(18))
	if err != nil {
		return err
	}
	bars.Color = color.RGBA{R: 0x4c, G: 0x72, B: 0xb0, A: 0xff}
	lbl, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
	if err != nil {
		return err
	}
	for i := range lbl.TextStyle {
		lbl.TextStyle[i].XAlign = draw.XCenter
		lbl.TextStyle[i].YAlign = draw.YBottom
	}
	p.Add(plotter.NewGrid(), bars, lbl)
	p.NominalX(names...)
	wt, err := p.WriterTo(vg.Length(max(16, 2.4*float64(len(res))))*vg.Centimeter, 11*vg.Centimeter, strings.TrimPrefix(strings.ToLower(ext), "."))
	if err != nil {
		return err
	}
	_, err = wt.WriteTo(w)
	return err
}
