package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/coreattn/coreattn/corpus"
	"github.com/coreattn/coreattn/model"
	"github.com/coreattn/coreattn/model/train"
	"github.com/coreattn/coreattn/wgpu"
)

// trainFlags are the flags of `coreattn train`.
type trainFlags struct {
	preset                string
	dims                  model.Config // overrides of the preset; 0 keeps its value
	data                  string
	valPercent, maxDoc    int
	tokens, steps         int
	duration              time.Duration
	lr, minLR, wd, clip   float64
	warmup                int
	seed                  uint64
	adapter               int
	out                   string
	resume                bool
	valEvery, valBatches  int
	ckptEvery, stopAfter  int
	dumpInit, dumpBatches bool
	timing, progress      bool
	xzBPB                 float64
	bench                 bool
	benchSteps            int
	peakTFLOPS            float64
	jsonOut               bool
	kernels               string
	lossScale             float64
	unsafe                bool
	cluster               clusterFlags
}

func newTrainCmd(g *globalFlags) *cobra.Command {
	f := &trainFlags{}
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Train the byte-level model on text, every operation on the WebGPU adapter",
		Long: `Trains coreattn's Llama-style byte-level decoder (package model) on a corpus:
the .go files of the Go distribution by default, or --data (a directory of text
files, one document each, or a JSONL file with a "text" field). Documents are
packed into steps of exactly --tokens tokens; a deterministic split by path
holds out --val-percent of them for validation, reported in bits per byte.

Everything lands in --out: checkpoint/ (model.safetensors, optim.safetensors,
config.json; written every --ckpt-every steps, at the end and on Ctrl-C),
log.jsonl (one line per step), loss.png, and on request init/ (the initial
weights) and batches.bin (the token order, for scripts/twin.py). --resume
continues from out/checkpoint with bit-identical losses.

--bench measures instead of training for real: tokens/s, model FLOP
utilisation against the adapter's FMA peak, and the GPU time of the GEMMs,
attention and the rest.`,
		Example: `  coreattn train --preset tiny --steps 200
  coreattn train --preset base --time 8m --out runs/base --xz-bpb 1.831
  coreattn train --preset small --steps 200 --dump-init --dump-batches --out runs/twin
  coreattn train --bench --preset small`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTrain(contextOf(cmd.Context()), g, f, cmd, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.preset, "preset", "small", "model preset: tiny, small or base")
	fl.IntVar(&f.dims.Dim, "dim", 0, "width of the residual stream (0: the preset's)")
	fl.IntVar(&f.dims.Layers, "layers", 0, "layers (0: the preset's)")
	fl.IntVar(&f.dims.HeadsQ, "heads-q", 0, "query heads (0: the preset's)")
	fl.IntVar(&f.dims.HeadsKV, "heads-kv", 0, "key/value heads (0: the preset's)")
	fl.IntVar(&f.dims.HeadDim, "head-dim", 0, "head dimension (0: the preset's)")
	fl.IntVar(&f.dims.FFN, "ffn", 0, "SwiGLU hidden width (0: the preset's)")
	fl.StringVar(&f.data, "data", "", "directory of text files or JSONL file (default: the Go distribution's .go files)")
	fl.IntVar(&f.valPercent, "val-percent", corpus.DefaultValPercent, "percent of documents, by path hash, held out for validation")
	fl.IntVar(&f.maxDoc, "max-doc", 0, "cut documents longer than this many bytes into independent pieces (0: never)")
	fl.IntVar(&f.tokens, "tokens", 0, "tokens per step (0: 2048 for tiny, 16384 otherwise)")
	fl.IntVar(&f.steps, "steps", 0, "optimizer steps (default 1000, or as many as --time allows)")
	fl.DurationVar(&f.duration, "time", 0, "train for this long (e.g. 8m): the step count is fixed from the first steps' speed")
	fl.Float64Var(&f.lr, "lr", 0, "peak learning rate (0: 3e-3 tiny, 1e-3 small, 6e-4 base)")
	fl.Float64Var(&f.minLR, "min-lr", -1, "final learning rate of the cosine (default lr/10)")
	fl.IntVar(&f.warmup, "warmup", -1, "linear warm-up steps (default min(100, steps/10))")
	fl.Float64Var(&f.wd, "weight-decay", model.DefaultOptimizer().WeightDecay, "AdamW weight decay of matrices and the embedding")
	fl.Float64Var(&f.clip, "clip", model.DefaultOptimizer().MaxGradNorm, "clip gradients to this global L2 norm (0: no clipping)")
	fl.Uint64Var(&f.seed, "seed", 1, "seed of the initial weights and of the data order")
	fl.IntVar(&f.adapter, "adapter", 0, "adapter index (see coreattn devices)")
	fl.StringVar(&f.out, "out", "", "output directory (default runs/PRESET)")
	fl.BoolVar(&f.resume, "resume", false, "continue the run checkpointed in --out")
	fl.IntVar(&f.valEvery, "val-every", 100, "validate every this many steps (0: only at the end)")
	fl.IntVar(&f.valBatches, "val-batches", 16, "batches of the periodic validations (0: the whole split; the final one always reads it all)")
	fl.IntVar(&f.ckptEvery, "ckpt-every", 1000, "checkpoint every this many steps (0: only at the end and on Ctrl-C)")
	fl.IntVar(&f.stopAfter, "stop-after", 0, "stop after this many steps of this invocation, checkpointing as on Ctrl-C (continue with --resume)")
	fl.BoolVar(&f.dumpInit, "dump-init", false, "write the initial weights to out/init (a checkpoint for scripts/twin.py)")
	fl.BoolVar(&f.dumpBatches, "dump-batches", false, "write every step's batch to out/batches.bin (for scripts/twin.py)")
	fl.BoolVar(&f.timing, "timing", true, "log each step's GPU time per kernel class (where the adapter has timestamp queries)")
	fl.BoolVar(&f.progress, "progress", true, "show progress on stderr: a bar on a terminal, else a line per validation")
	fl.Float64Var(&f.xzBPB, "xz-bpb", 0, "draw this bits-per-byte bar in loss.png (scripts/xz_bpb.py prints xz -9's)")
	fl.BoolVar(&f.bench, "bench", false, "measure tokens/s, MFU and the per-kernel breakdown instead of training")
	fl.IntVar(&f.benchSteps, "bench-steps", 10, "timed steps of --bench (after two warm-up steps)")
	fl.Float64Var(&f.peakTFLOPS, "peak-tflops", 0, "FMA peak for --bench's MFU, TFLOP/s (0: measure it)")
	fl.BoolVar(&f.jsonOut, "json", false, "--bench, --compare: print one JSON object")
	fl.StringVar(&f.kernels, "kernels", "ffma", "GEMM and attention kernels: ffma (f32), or tensor-core (f16 operands, f32 accumulation, like PyTorch's float16 autocast; needs an adapter with f16->f32 subgroup matrices, through --runtime dawn)")
	fl.BoolVar(&f.unsafe, "no-robustness", false, "Dawn: turn off its bounds checks on buffer accesses and its zeroing of workgroup memory (faster); go-webgpu ignores it")
	fl.Float64Var(&f.lossScale, "loss-scale", 0, "multiply the loss gradient by this and divide it out before clipping and the update (0: 1 with ffma, with tensor-core the largest power of two <= tokens per step)")
	f.cluster.register(fl)
	return cmd
}

// deviceOptions are the runtime options of the adapters train opens.
func (f *trainFlags) deviceOptions(g *globalFlags) wgpu.Options {
	o := g.options()
	o.DisableRobustness = f.unsafe
	return o
}

// defaultTokens is the tokens per step of a preset.
func defaultTokens(preset string) int {
	if preset == "tiny" {
		return 2048
	}
	return 16384
}

// modelConfig resolves the preset and the dimension flags.
func (f *trainFlags) modelConfig() (model.Config, error) {
	c, err := model.Preset(f.preset)
	if err != nil {
		return c, fmt.Errorf("--preset: %w", err)
	}
	for _, o := range []struct {
		flag string
		dst  *int
		v    int
	}{{"dim", &c.Dim, f.dims.Dim}, {"layers", &c.Layers, f.dims.Layers}, {"heads-q", &c.HeadsQ, f.dims.HeadsQ},
		{"heads-kv", &c.HeadsKV, f.dims.HeadsKV}, {"head-dim", &c.HeadDim, f.dims.HeadDim}, {"ffn", &c.FFN, f.dims.FFN}} {
		switch {
		case o.v < 0:
			return c, fmt.Errorf("--%s %d: want a positive size (0 keeps the preset's)", o.flag, o.v)
		case o.v > 0:
			*o.dst = o.v
		}
	}
	if err := c.Validate(); err != nil {
		return c, err
	}
	return c, nil
}

// check validates the flags that need no device.
func (f *trainFlags) check() error {
	switch {
	case f.tokens < 0:
		return fmt.Errorf("--tokens %d: want a positive number of tokens per step", f.tokens)
	case f.steps < 0:
		return fmt.Errorf("--steps %d: want a positive number", f.steps)
	case f.duration < 0:
		return fmt.Errorf("--time %s: want a positive duration", f.duration)
	case f.lr < 0 || math.IsNaN(f.lr) || math.IsInf(f.lr, 0):
		return fmt.Errorf("--lr %v: want a positive learning rate", f.lr)
	case f.valEvery < 0 || f.valBatches < 0 || f.ckptEvery < 0 || f.stopAfter < 0:
		return fmt.Errorf("--val-every %d, --val-batches %d, --ckpt-every %d, --stop-after %d: want counts >= 0", f.valEvery, f.valBatches, f.ckptEvery, f.stopAfter)
	case f.benchSteps < 1:
		return fmt.Errorf("--bench-steps %d: want >= 1", f.benchSteps)
	case f.adapter < 0:
		return fmt.Errorf("--adapter %d: want an index >= 0 (see `coreattn devices`)", f.adapter)
	case f.xzBPB < 0 || f.peakTFLOPS < 0:
		return fmt.Errorf("--xz-bpb %v, --peak-tflops %v: want values >= 0", f.xzBPB, f.peakTFLOPS)
	case f.kernels != "ffma" && f.kernels != "tensor-core":
		return flagError("kernels", fmt.Sprintf("%q", f.kernels), "want ffma or tensor-core")
	case f.lossScale < 0 || math.IsNaN(f.lossScale) || math.IsInf(f.lossScale, 0):
		return flagError("loss-scale", f.lossScale, "want a positive finite number, or 0 to choose one")
	}
	return nil
}

// session is one run of `coreattn train`: what the steps need.
type session struct {
	f       *trainFlags
	cfg     trainConfig
	dev     *wgpu.Device   // the first adapter
	devs    []*wgpu.Device // every adapter of a cluster
	corp    *corpus.Corpus
	tr      trainer        // one of:
	single  *train.Trainer // one rank on one adapter
	cl      *train.Cluster // --ranks
	packer  *corpus.Packer
	out     string
	stdout  io.Writer
	stderr  io.Writer
	batches *batchDump
	log     *runLog
}

func runTrain(ctx context.Context, g *globalFlags, f *trainFlags, cmd *cobra.Command, stdout, stderr io.Writer) error {
	if err := f.check(); err != nil {
		return err
	}
	if err := f.cluster.check(cmd, f); err != nil {
		return err
	}
	if len(f.cluster.from) > 0 {
		return plotFromLogs(f.cluster.from, f.cluster.plot, stdout)
	}
	if f.out == "" {
		f.out = filepath.Join("runs", f.preset)
	}
	s := &session{f: f, out: f.out, stdout: stdout, stderr: stderr}
	resumed, err := s.resolveConfig(cmd)
	if err != nil {
		return err
	}
	if s.clustered() {
		if s.devs, err = openClusterDevices(g, cmd, f); err != nil {
			return err
		}
		defer closeAll(s.devs)
		s.dev = s.devs[0]
		if err := train.CheckLimits(s.cfg.Model, s.cfg.TokensPerRank, s.dev.Info()); err != nil {
			return err
		}
		for _, d := range s.devs {
			if err := s.cfg.precision().Check(d.Info()); err != nil {
				return fmt.Errorf("--kernels %s: %w", s.cfg.Kernels, err)
			}
		}
		fmt.Fprintf(stderr, "adapters: %s\nmodel: %s, %d ranks × %d tokens per step\n", adapterNames(s.devs), s.cfg.Model, s.cfg.Ranks, s.cfg.TokensPerRank)
	} else {
		dev, err := openAdapterWith(f.deviceOptions(g), "train", f.adapter)
		if err != nil {
			return err
		}
		defer dev.Close()
		s.dev = dev
		if err := train.CheckLimits(s.cfg.Model, s.cfg.Tokens, dev.Info()); err != nil {
			return err
		}
		if err := s.cfg.precision().Check(dev.Info()); err != nil {
			return fmt.Errorf("--kernels %s: %w", s.cfg.Kernels, err)
		}
		fmt.Fprintf(stderr, "adapter: %s\nmodel: %s, %d tokens per step\n", dev.Info(), s.cfg.Model, s.cfg.Tokens)
	}
	if err := s.loadCorpus(ctx); err != nil {
		return err
	}
	if f.cluster.compare {
		return s.compare(ctx)
	}
	if err := s.newTrainer(resumed); err != nil {
		return err
	}
	defer s.tr.Close()
	if f.bench {
		return s.bench(ctx)
	}
	return s.train(ctx, resumed)
}

// resolveConfig builds the run's config from the flags, or reads the
// checkpoint's with --resume (flags that contradict it are errors).
func (s *session) resolveConfig(cmd *cobra.Command) (resumed *trainConfig, err error) {
	f := s.f
	if f.resume {
		ck, err := readTrainConfig(s.ckptDir())
		if err != nil {
			return nil, fmt.Errorf("--resume: %w", err)
		}
		if err := ck.conflicts(cmd, f); err != nil {
			return nil, fmt.Errorf("--resume: %w", err)
		}
		s.cfg = *ck
		return ck, nil
	}
	c, err := f.modelConfig()
	if err != nil {
		return nil, err
	}
	tokens := f.tokens
	if tokens == 0 {
		tokens = defaultTokens(f.preset)
	}
	ranks, perRank := 0, 0
	if f.cluster.on(cmd) {
		if ranks, perRank, err = f.cluster.shape(cmd, f.tokens, defaultTokens(f.preset)); err != nil {
			return nil, err
		}
		tokens = ranks * perRank
	}
	opt := model.DefaultOptimizer()
	opt.WeightDecay, opt.MaxGradNorm = f.wd, f.clip
	if err := opt.Validate(); err != nil {
		return nil, fmt.Errorf("--weight-decay %v / --clip %v: %w", f.wd, f.clip, err)
	}
	lr := f.lr
	if lr == 0 {
		lr = model.DefaultLR(c)
	}
	preset := f.preset
	if c != mustPreset(f.preset) {
		preset = "" // the dimensions were changed
	}
	s.cfg = trainConfig{Format: trainFormat, Preset: preset, Model: c, Optimizer: opt, Tokens: tokens, Seed: f.seed,
		Schedule: model.Schedule{LR: lr}, Ranks: ranks, TokensPerRank: perRank}
	s.cfg.LossScale = f.lossScale
	if f.kernels == "tensor-core" {
		s.cfg.Kernels = f.kernels
	}
	if ranks > 0 {
		s.cfg.Packing, s.cfg.NoPingPong = f.cluster.packing, f.cluster.noPingPong
	}
	return nil, nil
}

func mustPreset(name string) model.Config {
	c, _ := model.Preset(name)
	return c
}

// schedule fixes the learning-rate schedule for steps steps.
func (s *session) schedule(steps int) error {
	f := s.f
	sc := model.NewSchedule(s.cfg.Schedule.LR, steps)
	if f.minLR >= 0 {
		sc.MinLR = f.minLR
	}
	if f.warmup >= 0 {
		sc.Warmup = f.warmup
	}
	if err := sc.Validate(); err != nil {
		return fmt.Errorf("--lr %v, --min-lr %v, --warmup %d, --steps %d: %w", sc.LR, sc.MinLR, sc.Warmup, steps, err)
	}
	s.cfg.Schedule = sc
	return nil
}

func (s *session) ckptDir() string { return filepath.Join(s.out, "checkpoint") }

// loadCorpus reads and splits the documents.
func (s *session) loadCorpus(ctx context.Context) error {
	c, err := corpus.Load(ctx, s.f.data, corpus.Options{ValPercent: s.f.valPercent, MaxDoc: s.f.maxDoc})
	if err != nil {
		return fmt.Errorf("--data: %w", err)
	}
	if s.f.resume && c.Identity != s.cfg.Corpus {
		return fmt.Errorf("--resume: the checkpoint was trained on %+v; --data, --val-percent and --max-doc give %+v", s.cfg.Corpus, c.Identity)
	}
	s.cfg.Corpus, s.corp = c.Identity, c
	fmt.Fprintf(s.stderr, "data: %s (%s)\ntrain: %s\nvalidation: %s\n", c.Identity.Source, c.Stats, corpus.Lengths(c.Train), corpus.Lengths(c.Val))
	return nil
}

// newTrainer builds the trainer and sets its weights: the initial ones
// for the seed, or the checkpoint's.
func (s *session) newTrainer(resumed *trainConfig) error {
	timed := s.f.timing && s.dev.Info().Timestamps
	var err error
	if s.clustered() {
		// Host clocks time the ranks where the adapter has no timestamps.
		if s.cl, err = s.newCluster(s.cfg.Packing, s.f.timing); err != nil {
			return err
		}
		s.tr = s.cl
		fmt.Fprintf(s.stderr, "ranks: %d over %d adapters, %.2f GB of device buffers\n", s.cl.Ranks(), s.cl.Devices(), float64(s.cl.DeviceBytes())/1e9)
	} else {
		if s.single, err = train.New(s.dev, s.cfg.Model, train.Options{Tokens: s.cfg.Tokens, Optimizer: s.cfg.Optimizer, Timed: timed, Precision: s.cfg.precision()}); err != nil {
			return err
		}
		s.tr = s.single
	}
	if p := s.cfg.precision(); p.TensorCores || p.LossScale != 0 {
		fmt.Fprintf(s.stderr, "precision: %s\n", p)
	}
	tr := s.tr
	if s.packer, err = corpus.NewPacker(s.corp.Train, s.cfg.Tokens, s.cfg.Seed); err != nil {
		return err
	}
	if resumed == nil {
		w, err := model.Init(s.cfg.Model, s.cfg.Seed)
		if err != nil {
			return err
		}
		return tr.SetWeights(w)
	}
	w, st, err := readCheckpoint(s.ckptDir(), resumed, true)
	if err != nil {
		return fmt.Errorf("--resume: %w", err)
	}
	if err := tr.SetWeights(w); err != nil {
		return err
	}
	if st != nil {
		if err := tr.SetOptimizerState(st); err != nil {
			return err
		}
	}
	if err := s.packer.SetPosition(resumed.Position); err != nil {
		return fmt.Errorf("--resume: %w", err)
	}
	return nil
}

// stepRecord is one line of log.jsonl.
type stepRecord struct {
	Step       int                `json:"step"`
	Loss       float64            `json:"loss"`
	GradNorm   float64            `json:"grad_norm"`
	Clip       float64            `json:"clip"`
	LR         float64            `json:"lr"`
	Tokens     int                `json:"tokens"`
	TokensPerS float64            `json:"tokens_per_s"`
	StepMS     float64            `json:"step_ms"`
	ElapsedS   float64            `json:"elapsed_s"`
	GPUMS      map[string]float64 `json:"gpu_ms,omitempty"`
	ValLoss    *float64           `json:"val_loss,omitempty"`
	ValBPB     *float64           `json:"val_bpb,omitempty"`
	*RanksRecord
}

// train runs the steps, validating, logging and checkpointing.
func (s *session) train(ctx context.Context, resumed *trainConfig) error {
	f := s.f
	start := time.Now()
	if resumed == nil {
		steps := f.steps
		if steps == 0 && f.duration > 0 {
			var err error
			if steps, err = s.stepsFor(ctx, f.duration, start); err != nil {
				return err
			}
		}
		if steps == 0 {
			steps = 1000
		}
		if err := s.schedule(steps); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(s.out, 0o755); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	if f.dumpInit && resumed == nil {
		if err := s.save(ctx, filepath.Join(s.out, "init"), false); err != nil {
			return err
		}
	}
	var err error
	if s.log, err = openRunLog(filepath.Join(s.out, "log.jsonl"), s.tr.Steps()); err != nil {
		return err
	}
	defer s.log.Close()
	if f.dumpBatches {
		if s.batches, err = openBatchDump(filepath.Join(s.out, "batches.bin"), s.corp.Train, s.cfg, s.tr.Steps()); err != nil {
			return err
		}
		defer s.batches.Close()
	}

	// Ctrl-C (or SIGTERM) stops after the step in flight, which runs on
	// ctx: a checkpoint is written and the command returns normally.
	stop, cancel := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer cancel()
	total := s.cfg.Schedule.Steps
	var bar *progressbar.ProgressBar
	if f.progress && isTerminal(s.stderr) {
		bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(s.stderr), progressbar.OptionSetItsString("step"),
			progressbar.OptionShowIts(), progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionSetWidth(24), progressbar.OptionFullWidth())
		bar.Set(s.tr.Steps())
	}
	lineEvery := max(1, total/20) // without a bar: about 20 lines
	deadline := time.Time{}
	if f.duration > 0 {
		deadline = start.Add(f.duration)
	}
	interrupted, timeUp := false, false
	elapsed0, first := s.cfg.ElapsedS, s.tr.Steps()
	// One step runs ahead: step n+1 is submitted before step n's results
	// are read, so that the GPU never waits for the host in between. A
	// step that validates or checkpoints is read first, on the weights it
	// left; stopping (Ctrl-C, --stop-after, --time) submits nothing more
	// and reads the step in flight.
	var inflight *stepInFlight
	lastRead := time.Now() // when the host last had a step's results
	for {
		var next *stepInFlight
		if s.tr.Steps() < total && !interrupted && !timeUp && (inflight == nil || !s.settles(inflight.step, total)) {
			switch {
			case stop.Err() != nil || (f.stopAfter > 0 && s.tr.Steps()-first == f.stopAfter):
				interrupted = true
			case !deadline.IsZero() && time.Now().After(deadline):
				timeUp = true
				fmt.Fprintf(s.stderr, "\n--time %s reached at step %d of %d\n", f.duration, s.tr.Steps(), total)
			default:
				var err error
				if next, err = s.submitStep(ctx, start, elapsed0); err != nil {
					return err
				}
			}
		}
		if inflight == nil && next == nil {
			break
		}
		if inflight != nil {
			rec, err := s.finishStep(ctx, inflight, lastRead, start, elapsed0)
			if err != nil {
				return err
			}
			lastRead = time.Now()
			if err := s.record(ctx, rec, total, bar, lineEvery, start, elapsed0); err != nil {
				return err
			}
		}
		inflight = next
	}
	// A second Ctrl-C from here on stops the process at once: the
	// checkpoint is written atomically, so the previous one survives.
	cancel()
	if bar != nil {
		bar.Exit()
		fmt.Fprintln(s.stderr)
	}
	if err := s.checkpoint(ctx, start, elapsed0); err != nil {
		return err
	}
	if interrupted {
		fmt.Fprintf(s.stdout, "stopped at step %d of %d: checkpoint written to %s (continue with --resume)\n", s.tr.Steps(), total, s.ckptDir())
		return s.log.Plot(filepath.Join(s.out, "loss.png"), f.xzBPB)
	}
	// The final validation reads the whole split.
	last := s.log.Last()
	if err := s.validate(ctx, &last, 0); err != nil {
		return err
	}
	if err := s.log.Rewrite(last); err != nil {
		return err
	}
	if err := s.log.Plot(filepath.Join(s.out, "loss.png"), f.xzBPB); err != nil {
		return err
	}
	val := "no validation documents"
	if last.ValBPB != nil {
		val = fmt.Sprintf("validation %.4f nats per predicted byte, %.4f bits per byte", *last.ValLoss, *last.ValBPB)
	}
	fmt.Fprintf(s.stdout, "step %d: loss %.4f, %s\ncheckpoint: %s\nlog: %s\nplot: %s\n",
		s.tr.Steps(), last.Loss, val, s.ckptDir(), s.log.path, filepath.Join(s.out, "loss.png"))
	return nil
}

// settles reports whether step must be read before the next is submitted:
// it validates or checkpoints, which must see the weights it left.
func (s *session) settles(step, total int) bool {
	f := s.f
	if step >= total {
		return false // the end validates and checkpoints after the loop
	}
	return (f.valEvery > 0 && step%f.valEvery == 0) || (f.ckptEvery > 0 && step%f.ckptEvery == 0)
}

// record validates, logs, shows and checkpoints a finished step.
func (s *session) record(ctx context.Context, rec stepRecord, total int, bar *progressbar.ProgressBar, lineEvery int, start time.Time, elapsed0 float64) error {
	f := s.f
	step := rec.Step
	if f.valEvery > 0 && step%f.valEvery == 0 && step < total {
		if err := s.validate(ctx, &rec, f.valBatches); err != nil {
			return err
		}
	}
	if err := s.log.Write(rec); err != nil {
		return err
	}
	if bar != nil {
		bar.Describe(fmt.Sprintf("loss %.3f  %s tok/s", rec.Loss, humanRate(rec.TokensPerS)))
		bar.Set(step)
	} else if f.progress && (step == 1 || step%lineEvery == 0 || rec.ValBPB != nil) {
		line := fmt.Sprintf("step %d/%d  loss %.4f  %s tok/s", step, total, rec.Loss, humanRate(rec.TokensPerS))
		if rec.ValBPB != nil {
			line += fmt.Sprintf("  validation %.4f bits per byte", *rec.ValBPB)
		}
		fmt.Fprintln(s.stderr, line)
	}
	if f.ckptEvery > 0 && step%f.ckptEvery == 0 && step < total {
		if err := s.checkpoint(ctx, start, elapsed0); err != nil {
			return err
		}
	}
	return nil
}

// stepInFlight is a submitted step whose results are not read yet.
type stepInFlight struct {
	step    int
	lr      float64
	tokens  int
	at      time.Time      // when it was submitted
	pending *train.Pending // one adapter
	rec     *stepRecord    // ranks: read already
}

// submitStep submits a step on the packer's next batch: on one adapter
// without waiting for the GPU, with ranks to the end.
func (s *session) submitStep(ctx context.Context, start time.Time, elapsed0 float64) (*stepInFlight, error) {
	b := s.packer.Next()
	if s.batches != nil {
		if err := s.batches.Write(b); err != nil {
			return nil, err
		}
	}
	step := s.tr.Steps() + 1
	lr := s.cfg.Schedule.At(step)
	mb := model.Batch{Tokens: b.Tokens, CuSeqlens: b.CuSeqlens}
	if s.cl != nil {
		rec, err := s.clusterStep(ctx, mb, lr, start, elapsed0)
		return &stepInFlight{step: step, rec: &rec}, err
	}
	at := time.Now()
	p, err := s.single.Submit(ctx, mb, lr)
	if err != nil {
		return nil, fmt.Errorf("step %d: %w", step, err)
	}
	return &stepInFlight{step: step, lr: lr, tokens: len(b.Tokens), at: at, pending: p}, nil
}

// finishStep waits for a submitted step's results and makes its record.
// Its time runs from its submission, or from since (when the host had
// the previous step's results) if that came later: with one step running
// ahead, the time between two steps' results.
func (s *session) finishStep(ctx context.Context, f *stepInFlight, since, start time.Time, elapsed0 float64) (stepRecord, error) {
	if f.rec != nil {
		return *f.rec, nil
	}
	res, err := f.pending.Wait(ctx)
	if err != nil {
		return stepRecord{}, fmt.Errorf("step %d: %w", f.step, err)
	}
	if math.IsNaN(res.Loss) || math.IsInf(res.Loss, 0) {
		return stepRecord{}, fmt.Errorf("step %d: the loss is %v (lower --lr?)", f.step, res.Loss)
	}
	from := f.at
	if since.After(from) {
		from = since
	}
	d := time.Since(from)
	rec := stepRecord{Step: f.step, Loss: res.Loss, GradNorm: res.GradNorm, Clip: res.Clip, LR: f.lr, Tokens: f.tokens,
		TokensPerS: float64(f.tokens) / d.Seconds(), StepMS: ms(d), ElapsedS: elapsed0 + time.Since(start).Seconds()}
	if res.Timing.Timestamps {
		rec.GPUMS = map[string]float64{}
		for c := train.ClassGEMM; c <= train.ClassOther; c++ {
			rec.GPUMS[c.String()] = ms(res.Timing.Class[c])
		}
	}
	return rec, nil
}

// step trains one step on the packer's next batch and waits for it.
func (s *session) step(ctx context.Context, start time.Time, elapsed0 float64) (stepRecord, error) {
	t0 := time.Now()
	f, err := s.submitStep(ctx, start, elapsed0)
	if err != nil {
		return stepRecord{}, err
	}
	return s.finishStep(ctx, f, t0, start, elapsed0)
}

// validate evaluates the validation split (its first maxBatches batches,
// or all of it with 0) and records the loss per predicted byte (nats) and
// the bits per byte, which charge each document's first byte, predicted
// from nothing, 8 bits (the measure to compare with a compressor's).
func (s *session) validate(ctx context.Context, rec *stepRecord, maxBatches int) error {
	if len(s.corp.Val) == 0 {
		return nil
	}
	it, err := corpus.NewValIter(s.corp.Val, s.cfg.Tokens)
	if err != nil {
		return err
	}
	var lossSum float64
	var targets, bytes, docs int
	for n := 0; maxBatches == 0 || n < maxBatches; n++ {
		b, ok := it.Next()
		if !ok {
			break
		}
		l, t, err := s.tr.Evaluate(ctx, model.Batch{Tokens: b.Tokens, CuSeqlens: b.CuSeqlens})
		if err != nil {
			return fmt.Errorf("validation: %w", err)
		}
		lossSum, targets, bytes, docs = lossSum+l, targets+t, bytes+len(b.Tokens), docs+len(b.CuSeqlens)-1
	}
	if targets == 0 {
		return nil
	}
	loss := lossSum / float64(targets)
	bpb := (lossSum/math.Ln2 + 8*float64(docs)) / float64(bytes)
	rec.ValLoss, rec.ValBPB = &loss, &bpb
	return nil
}

// stepsFor estimates how many steps fit in what is left of d since start:
// it times gradient steps on the first batch (which change nothing) and a
// validation batch, then leaves room for the periodic validations, the
// final one and the last checkpoint.
func (s *session) stepsFor(ctx context.Context, d time.Duration, start time.Time) (int, error) {
	p, err := corpus.NewPacker(s.corp.Train, s.cfg.Tokens, s.cfg.Seed)
	if err != nil {
		return 0, err
	}
	b := p.Next()
	mb := model.Batch{Tokens: b.Tokens, CuSeqlens: b.CuSeqlens}
	if err := s.gradients(ctx, mb); err != nil { // compiles the attention kernels
		return 0, err
	}
	step, err := s.gradientTime(ctx, mb, 3)
	if err != nil {
		return 0, err
	}
	step = step * 21 / 20 // and the optimizer
	var val time.Duration
	if it, err := corpus.NewValIter(s.corp.Val, s.cfg.Tokens); err == nil && len(s.corp.Val) > 0 {
		vb, _ := it.Next()
		t0 := time.Now()
		if _, _, err := s.tr.Evaluate(ctx, model.Batch{Tokens: vb.Tokens, CuSeqlens: vb.CuSeqlens}); err != nil {
			return 0, err
		}
		perBatch := time.Since(t0)
		all := ceilDivInt(totalBytes(s.corp.Val), s.cfg.Tokens)
		val = perBatch * time.Duration(all) // the final validation
		if s.f.valEvery > 0 {
			per := all
			if s.f.valBatches > 0 {
				per = min(per, s.f.valBatches)
			}
			step += perBatch * time.Duration(per) / time.Duration(s.f.valEvery)
		}
	}
	budget := d - time.Since(start) - val - 10*time.Second // the final validation and checkpoint
	steps := int(float64(budget) * 0.95 / float64(step))
	if steps < 1 {
		return 0, fmt.Errorf("--time %s: a step takes %s and the final validation %s: no step fits", d, step.Round(time.Millisecond), val.Round(time.Millisecond))
	}
	fmt.Fprintf(s.stderr, "--time %s: %s per step: %d steps\n", d, step.Round(time.Millisecond), steps)
	return steps, nil
}

func totalBytes(docs []corpus.Doc) int {
	n := 0
	for _, d := range docs {
		n += len(d.Data)
	}
	return n
}

func ceilDivInt(a, b int) int { return (a + b - 1) / b }

// humanRate formats a rate as 12.3K.
func humanRate(x float64) string {
	switch {
	case x >= 1e6:
		return fmt.Sprintf("%.2fM", x/1e6)
	case x >= 1e3:
		return fmt.Sprintf("%.1fK", x/1e3)
	}
	return fmt.Sprintf("%.0f", x)
}
