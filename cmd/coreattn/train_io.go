package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"io/fs"
	"math"
	"os"
	"time"

	"github.com/spf13/cobra"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/coreattn/coreattn/checkpoint"
	"github.com/coreattn/coreattn/corpus"
	"github.com/coreattn/coreattn/model"
	"github.com/coreattn/coreattn/model/train"
)

// trainFormat names the layout of config.json.
const trainFormat = "coreattn-train/1"

// trainConfig is a checkpoint's config.json: everything a resumed run, a
// sampler or scripts/twin.py needs.
type trainConfig struct {
	Format     string          `json:"format"`
	Preset     string          `json:"preset,omitempty"` // empty when dimensions were changed
	Model      model.Config    `json:"model"`
	Optimizer  model.Optimizer `json:"optimizer"`
	Schedule   model.Schedule  `json:"schedule"`
	Tokens     int             `json:"tokens_per_step"`
	Seed       uint64          `json:"seed"`
	Step       int             `json:"step"`
	Position   corpus.Position `json:"data_position"`
	Corpus     corpus.Identity `json:"corpus"`
	TokensSeen int64           `json:"tokens_seen"`
	ElapsedS   float64         `json:"elapsed_s"`
	// A run of several ranks (--ranks): tokens_per_step is ranks ×
	// tokens_per_rank.
	Ranks         int  `json:"ranks,omitempty"`
	TokensPerRank int  `json:"tokens_per_rank,omitempty"`
	Packing       bool `json:"packing,omitempty"`
	NoPingPong    bool `json:"no_pingpong,omitempty"`
	// Kernels is "tensor-core" for f16 operands on tensor cores (empty:
	// f32 on FMA); LossScale is --loss-scale (0: the default).
	Kernels   string  `json:"kernels,omitempty"`
	LossScale float64 `json:"loss_scale,omitempty"`
}

// kernels is --kernels of c's run: "ffma" or "tensor-core".
func (c *trainConfig) kernels() string { return cmp.Or(c.Kernels, "ffma") }

// precision is the trainer's precision setting for c.
func (c *trainConfig) precision() train.Precision {
	return train.Precision{TensorCores: c.kernels() == "tensor-core", LossScale: c.LossScale}
}

// readTrainConfig reads and checks dir's config.json.
func readTrainConfig(dir string) (*trainConfig, error) {
	var c trainConfig
	if err := checkpoint.ReadConfig(dir, &c); err != nil {
		return nil, err
	}
	if c.Format != trainFormat {
		return nil, fmt.Errorf("checkpoint: %s: config.json has format %q, want %q", dir, c.Format, trainFormat)
	}
	if err := c.Model.Validate(); err != nil {
		return nil, fmt.Errorf("checkpoint: %s: config.json: %w", dir, err)
	}
	if c.Tokens < 1 || c.Step < 0 {
		return nil, fmt.Errorf("checkpoint: %s: config.json: tokens_per_step %d, step %d", dir, c.Tokens, c.Step)
	}
	return &c, nil
}

// conflicts reports a flag set on the command line that disagrees with the
// checkpoint being resumed.
func (c *trainConfig) conflicts(cmd *cobra.Command, f *trainFlags) error {
	changed := cmd.Flags().Changed
	type check struct {
		flag      string
		same      bool
		have, ask any
	}
	checks := []check{
		{"tokens", f.tokens == c.Tokens, c.Tokens, f.tokens},
		{"steps", f.steps == c.Schedule.Steps, c.Schedule.Steps, f.steps},
		{"seed", f.seed == c.Seed, c.Seed, f.seed},
		{"lr", f.lr == c.Schedule.LR, c.Schedule.LR, f.lr},
		{"min-lr", f.minLR == c.Schedule.MinLR, c.Schedule.MinLR, f.minLR},
		{"warmup", f.warmup == c.Schedule.Warmup, c.Schedule.Warmup, f.warmup},
		{"weight-decay", f.wd == c.Optimizer.WeightDecay, c.Optimizer.WeightDecay, f.wd},
		{"clip", f.clip == c.Optimizer.MaxGradNorm, c.Optimizer.MaxGradNorm, f.clip},
		{"dim", f.dims.Dim == c.Model.Dim, c.Model.Dim, f.dims.Dim},
		{"layers", f.dims.Layers == c.Model.Layers, c.Model.Layers, f.dims.Layers},
		{"heads-q", f.dims.HeadsQ == c.Model.HeadsQ, c.Model.HeadsQ, f.dims.HeadsQ},
		{"heads-kv", f.dims.HeadsKV == c.Model.HeadsKV, c.Model.HeadsKV, f.dims.HeadsKV},
		{"head-dim", f.dims.HeadDim == c.Model.HeadDim, c.Model.HeadDim, f.dims.HeadDim},
		{"ffn", f.dims.FFN == c.Model.FFN, c.Model.FFN, f.dims.FFN},
		{"preset", f.preset == c.Preset, c.Preset, f.preset},
		{"ranks", f.cluster.ranks == max(c.Ranks, 1), max(c.Ranks, 1), f.cluster.ranks},
		{"tokens-per-rank", f.cluster.tokensPerRank == c.TokensPerRank, c.TokensPerRank, f.cluster.tokensPerRank},
		{"packing", f.cluster.packing == c.Packing, c.Packing, f.cluster.packing},
		{"no-pingpong", f.cluster.noPingPong == c.NoPingPong, c.NoPingPong, f.cluster.noPingPong},
		{"kernels", f.kernels == c.kernels(), c.kernels(), f.kernels},
		{"loss-scale", f.lossScale == c.LossScale, c.LossScale, f.lossScale},
	}
	for _, k := range checks {
		if changed(k.flag) && !k.same {
			return fmt.Errorf("--%s %v: the checkpoint's run has %v (a resumed run keeps its settings)", k.flag, k.ask, k.have)
		}
	}
	return nil
}

// specs are the checkpoint names and shapes of c's parameters.
func specs(c model.Config) []checkpoint.Spec {
	ps := c.Params()
	out := make([]checkpoint.Spec, len(ps))
	for i, p := range ps {
		out[i] = checkpoint.Spec{Name: p.Name, Shape: p.Shape}
	}
	return out
}

func tensors(c model.Config, prefix string, data [][]float32) []checkpoint.Tensor {
	ps := c.Params()
	out := make([]checkpoint.Tensor, len(ps))
	for i, p := range ps {
		out[i] = checkpoint.Tensor{Name: prefix + p.Name, Shape: p.Shape, Data: data[i]}
	}
	return out
}

func tensorData(ts []checkpoint.Tensor) [][]float32 {
	out := make([][]float32, len(ts))
	for i, t := range ts {
		out[i] = t.Data
	}
	return out
}

// readCheckpoint reads the weights and, with optim, the optimizer state
// (none is fine at step 0: an initial checkpoint).
func readCheckpoint(dir string, c *trainConfig, optim bool) (*model.Weights, *train.OptimizerState, error) {
	sp := specs(c.Model)
	mt, err := checkpoint.ReadModel(dir, sp)
	if err != nil {
		return nil, nil, err
	}
	w := &model.Weights{Config: c.Model, Tensors: tensorData(mt)}
	if !optim {
		return w, nil, nil
	}
	ot, err := checkpoint.ReadOptim(dir, checkpoint.MomentSpecs(sp))
	if errors.Is(err, checkpoint.ErrNoOptim) && c.Step == 0 {
		return w, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	n := len(sp)
	return w, &train.OptimizerState{Step: c.Step, M: tensorData(ot[:n]), V: tensorData(ot[n:])}, nil
}

// save writes the trainer's state to dir, with the optimizer's if optim.
func (s *session) save(ctx context.Context, dir string, optim bool) error {
	w, err := s.tr.Weights(ctx)
	if err != nil {
		return err
	}
	cfg := s.cfg
	cfg.Step, cfg.Position = s.tr.Steps(), s.packer.Position()
	cfg.TokensSeen = int64(cfg.Step) * int64(cfg.Tokens)
	var ot []checkpoint.Tensor
	if optim {
		st, err := s.tr.OptimizerState(ctx)
		if err != nil {
			return err
		}
		ot = append(tensors(cfg.Model, "m.", st.M), tensors(cfg.Model, "v.", st.V)...)
	}
	return checkpoint.Save(dir, cfg, tensors(cfg.Model, "", w.Tensors), ot)
}

// checkpoint saves the run to out/checkpoint (and flushes batches.bin, so
// that it matches).
func (s *session) checkpoint(ctx context.Context, start time.Time, elapsed0 float64) error {
	s.cfg.ElapsedS = elapsed0 + time.Since(start).Seconds()
	if s.batches != nil {
		if err := s.batches.Flush(); err != nil {
			return err
		}
	}
	return s.save(ctx, s.ckptDir(), true)
}

// batchDump writes batches.bin.
type batchDump struct {
	f *os.File
	w *corpus.BatchWriter
}

// openBatchDump creates path holding the batches of the first step steps
// (replayed from the start of the packer's order), to be continued.
func openBatchDump(path string, docs []corpus.Doc, c trainConfig, step int) (*batchDump, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--dump-batches: %w", err)
	}
	d := &batchDump{f: f, w: corpus.NewBatchWriter(f)}
	if step > 0 {
		p, err := corpus.NewPacker(docs, c.Tokens, c.Seed)
		if err != nil {
			f.Close()
			return nil, err
		}
		for range step {
			if err := d.Write(p.Next()); err != nil {
				f.Close()
				return nil, err
			}
		}
	}
	return d, nil
}

func (d *batchDump) Write(b corpus.Batch) error {
	if err := d.w.Write(b); err != nil {
		return fmt.Errorf("--dump-batches: %w", err)
	}
	return nil
}

func (d *batchDump) Flush() error {
	if err := d.w.Flush(); err != nil {
		return fmt.Errorf("--dump-batches: %w", err)
	}
	return nil
}

func (d *batchDump) Close() error {
	err := d.Flush()
	if cerr := d.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// runLog is log.jsonl and the records the plot draws.
type runLog struct {
	path string
	f    *os.File
	recs []stepRecord
}

// openRunLog opens path, keeping the records of the first step steps of a
// previous run (a resumed one's; later lines came after its checkpoint).
func openRunLog(path string, step int) (*runLog, error) {
	l := &runLog{path: path}
	if step > 0 {
		data, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var r stepRecord
			if json.Unmarshal(sc.Bytes(), &r) == nil && r.Step >= 1 && r.Step <= step {
				l.recs = append(l.recs, r)
			}
		}
	}
	if err := l.rewrite(); err != nil {
		return nil, err
	}
	return l, nil
}

// rewrite writes every record to a new file at path.
func (l *runLog) rewrite() error {
	if l.f != nil {
		l.f.Close()
	}
	f, err := os.Create(l.path)
	if err != nil {
		return fmt.Errorf("log: %w", err)
	}
	l.f = f
	for _, r := range l.recs {
		if err := l.writeLine(r); err != nil {
			return err
		}
	}
	return nil
}

func (l *runLog) writeLine(r stepRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("log: %w", err)
	}
	return nil
}

// Write appends a step's record.
func (l *runLog) Write(r stepRecord) error {
	l.recs = append(l.recs, r)
	return l.writeLine(r)
}

// Last is the last record (the zero record before any step).
func (l *runLog) Last() stepRecord {
	if len(l.recs) == 0 {
		return stepRecord{}
	}
	return l.recs[len(l.recs)-1]
}

// Rewrite replaces the last record by r (the final validation's).
func (l *runLog) Rewrite(r stepRecord) error {
	if len(l.recs) == 0 {
		return nil
	}
	l.recs[len(l.recs)-1] = r
	return l.rewrite()
}

func (l *runLog) Close() error {
	if l.f == nil {
		return nil
	}
	return l.f.Close()
}

// Plot draws the training loss and the validation points, in bits per
// byte, with the xz bar where bar > 0.
func (l *runLog) Plot(path string, bar float64) error {
	if len(l.recs) == 0 {
		return nil
	}
	p := plot.New()
	p.Title.Text = "coreattn train"
	p.X.Label.Text = "step"
	p.Y.Label.Text = "bits per byte"
	p.Add(plotter.NewGrid())
	// The moving average is debiased (divided by 1 - 0.95^n) so that it
	// does not start from zero.
	var tr, ema plotter.XYs
	avg, weight := 0.0, 0.0
	for _, r := range l.recs {
		y := r.Loss / math.Ln2
		tr = append(tr, plotter.XY{X: float64(r.Step), Y: y})
		avg, weight = 0.95*avg+0.05*y, 0.95*weight+0.05
		ema = append(ema, plotter.XY{X: float64(r.Step), Y: avg / weight})
	}
	raw, err := plotter.NewLine(tr)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	raw.Color = color.RGBA{R: 160, G: 190, B: 230, A: 255}
	smooth, err := plotter.NewLine(ema)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	smooth.Color, smooth.Width = color.RGBA{B: 200, A: 255}, vg.Points(1.5)
	p.Add(raw, smooth)
	p.Legend.Add("train (loss / ln 2, per predicted byte)", raw)
	p.Legend.Add("train, moving average", smooth)
	var val plotter.XYs
	for _, r := range l.recs {
		if r.ValBPB != nil {
			val = append(val, plotter.XY{X: float64(r.Step), Y: *r.ValBPB})
		}
	}
	if len(val) > 0 {
		line, pts, err := plotter.NewLinePoints(val)
		if err != nil {
			return fmt.Errorf("plot: %w", err)
		}
		line.Color, pts.Color = color.RGBA{R: 220, A: 255}, color.RGBA{R: 220, A: 255}
		p.Add(line, pts)
		p.Legend.Add("validation (bits per byte)", line, pts)
	}
	if bar > 0 {
		last := float64(l.recs[len(l.recs)-1].Step)
		line, err := plotter.NewLine(plotter.XYs{{X: 1, Y: bar}, {X: last, Y: bar}})
		if err != nil {
			return fmt.Errorf("plot: %w", err)
		}
		line.Color, line.Dashes = color.Black, []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(line)
		p.Legend.Add(fmt.Sprintf("xz -9 (%.3f)", bar), line)
	}
	p.Legend.Top = true
	if err := p.Save(8*vg.Inch, 5*vg.Inch, path); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}
