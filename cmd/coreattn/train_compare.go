package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/coreattn/coreattn/corpus"
	"github.com/coreattn/coreattn/model"
)

// compareMode is one side of `coreattn train --compare`.
type compareMode struct {
	Mode               string       `json:"mode"`
	Steps              int          `json:"steps"`
	Measured           int          `json:"measured_steps"`
	FirstLoss          float64      `json:"first_loss"`
	LastLoss           float64      `json:"last_loss"`
	Ranks              []rankRecord `json:"ranks"`
	ImbalancePredicted float64      `json:"imbalance_predicted"`
	ImbalanceMeasured  float64      `json:"imbalance_measured"`
	StepMS             float64      `json:"step_ms"`
	ProjectedMS        float64      `json:"projected_parallel_ms"`
	MaxWaitShare       float64      `json:"max_wait_share"`
	BytesMoved         int64        `json:"bytes_moved_per_step"`
	Log                string       `json:"log"`
}

// compareResult is what --compare prints with --json.
type compareResult struct {
	Adapters      string        `json:"adapters"`
	Model         string        `json:"model"`
	Preset        string        `json:"preset,omitempty"`
	Ranks         int           `json:"ranks"`
	TokensPerRank int           `json:"tokens_per_rank"`
	PingPong      bool          `json:"pingpong"`
	Seed          uint64        `json:"seed"`
	LinkGBps      float64       `json:"link_gbps"`
	WaitProjected bool          `json:"wait_projected"`
	Modes         []compareMode `json:"modes"`
	// LossMaxRelDiff is the largest relative difference between the two
	// runs' losses at the same step (the same batches and seed).
	LossMaxRelDiff float64 `json:"loss_max_rel_diff"`
	// ProjectedSpeedup is packing's projected parallel step time over
	// CAD's: a projection from the measured per-rank figures.
	ProjectedSpeedup float64 `json:"projected_speedup"`
	Plot             string  `json:"plot,omitempty"`
}

// compare trains --steps steps with packing and with CAD from the same
// initial weights and batches, logging each under out/packing and out/cad,
// and reports the balance of both.
func (s *session) compare(ctx context.Context) error {
	steps := s.f.steps
	if steps == 0 {
		steps = 20
	}
	if err := s.schedule(steps); err != nil {
		return err
	}
	res := compareResult{Adapters: adapterNames(s.devs), Model: s.cfg.Model.String(), Preset: s.cfg.Preset, Ranks: s.cfg.Ranks,
		TokensPerRank: s.cfg.TokensPerRank, PingPong: !s.cfg.NoPingPong, Seed: s.cfg.Seed, LinkGBps: s.f.cluster.linkGBps,
		WaitProjected: len(s.devs) < s.cfg.Ranks}
	var losses [2][]float64
	var recs [2][]stepRecord
	for i, packing := range []bool{true, false} {
		r, err := s.compareRun(ctx, packing, steps)
		if err != nil {
			return err
		}
		recs[i] = r
		for _, x := range r {
			losses[i] = append(losses[i], x.Loss)
		}
		m := summarize(r)
		m.Log = filepath.Join(s.out, m.Mode, "log.jsonl")
		res.Modes = append(res.Modes, m)
	}
	for i := range losses[0] {
		res.LossMaxRelDiff = max(res.LossMaxRelDiff, math.Abs(losses[1][i]-losses[0][i])/math.Abs(losses[0][i]))
	}
	if res.Modes[1].ProjectedMS > 0 {
		res.ProjectedSpeedup = res.Modes[0].ProjectedMS / res.Modes[1].ProjectedMS
	}
	path := s.f.cluster.plot
	if path == "" {
		path = filepath.Join(s.out, "balance.png")
	}
	if err := plotBalance(path, res.Modes[0], res.Modes[1], res.Ranks); err != nil {
		return err
	}
	res.Plot = path
	if s.f.jsonOut {
		enc := json.NewEncoder(s.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	printCompare(s.stdout, res)
	return nil
}

// compareRun trains one side of --compare and returns its records.
func (s *session) compareRun(ctx context.Context, packing bool, steps int) ([]stepRecord, error) {
	mode := "cad"
	if packing {
		mode = "packing"
	}
	cl, err := s.newCluster(packing, true)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	s.cl, s.tr = cl, cl
	defer func() { s.cl, s.tr = nil, nil }()
	s.cfg.Packing = packing
	w, err := model.Init(s.cfg.Model, s.cfg.Seed)
	if err != nil {
		return nil, err
	}
	if err := cl.SetWeights(w); err != nil {
		return nil, err
	}
	if s.packer, err = corpus.NewPacker(s.corp.Train, s.cfg.Tokens, s.cfg.Seed); err != nil {
		return nil, err
	}
	dir := filepath.Join(s.out, mode)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("--out: %w", err)
	}
	log, err := openRunLog(filepath.Join(dir, "log.jsonl"), 0)
	if err != nil {
		return nil, err
	}
	defer log.Close()
	start := time.Now()
	every := max(1, steps/5)
	for range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rec, err := s.step(ctx, start, 0)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", mode, err)
		}
		if err := log.Write(rec); err != nil {
			return nil, err
		}
		if s.f.progress && (rec.Step == 1 || rec.Step%every == 0) {
			fmt.Fprintf(s.stderr, "%-7s step %d/%d  loss %.4f  %.0f ms\n", mode, rec.Step, steps, rec.Loss, rec.StepMS)
		}
	}
	return log.recs, nil
}

// summarize averages a run's timed records after the warm-up.
func summarize(recs []stepRecord) compareMode {
	m := compareMode{Steps: len(recs)}
	if len(recs) == 0 {
		return m
	}
	m.Mode = recs[0].Mode
	m.FirstLoss, m.LastLoss = recs[0].Loss, recs[len(recs)-1].Loss
	meas := skipWarmup(recs)
	m.Measured = len(meas)
	m.Ranks, m.ImbalanceMeasured, m.ImbalancePredicted, m.ProjectedMS, m.StepMS, m.BytesMoved = meanRanks(meas)
	if m.ProjectedMS > 0 {
		for _, r := range m.Ranks {
			m.MaxWaitShare = max(m.MaxWaitShare, *r.WaitMS/m.ProjectedMS)
		}
	}
	return m
}

// printCompare prints --compare's table.
func printCompare(w io.Writer, r compareResult) {
	fmt.Fprintf(w, "%s, %d ranks × %d tokens on %s (ping-pong %v)\n", r.Model, r.Ranks, r.TokensPerRank, r.Adapters, r.PingPong)
	waits := "measured"
	if r.WaitProjected {
		waits = "projected: the ranks share an adapter and ran one after another"
	}
	fmt.Fprintf(w, "per rank, ms per step after the warm-up (wait: %s)\n", waits)
	fmt.Fprintf(w, "%-8s %4s %9s %9s %9s %9s %9s\n", "mode", "rank", "linear", "attention", "transfer", "wait", "plan load")
	for _, m := range r.Modes {
		for i, rr := range m.Ranks {
			fmt.Fprintf(w, "%-8s %4d %9.1f %9.1f %9.1f %9.1f %9.2f\n", m.Mode, i, *rr.LinearMS, *rr.AttentionMS, *rr.TransferMS, *rr.WaitMS, rr.PredictedLoad)
		}
	}
	fmt.Fprintf(w, "%-8s %10s %10s %12s %14s %10s\n", "mode", "imbalance", "predicted", "moved MB", "projected ms", "max wait")
	for _, m := range r.Modes {
		fmt.Fprintf(w, "%-8s %10.3f %10.3f %12.2f %14.1f %9.1f%%\n", m.Mode, m.ImbalanceMeasured, m.ImbalancePredicted, float64(m.BytesMoved)/1e6, m.ProjectedMS, 100*m.MaxWaitShare)
	}
	fmt.Fprintf(w, "loss: packing %.4f -> %.4f, CAD %.4f -> %.4f (largest relative difference at one step %.1e)\n",
		r.Modes[0].FirstLoss, r.Modes[0].LastLoss, r.Modes[1].FirstLoss, r.Modes[1].LastLoss, r.LossMaxRelDiff)
	fmt.Fprintf(w, "projected parallel step (ranks on separate adapters, link %g GB/s): packing %.1f ms, CAD %.1f ms: %.2fx (a projection from the measured per-rank figures)\n",
		r.LinkGBps, r.Modes[0].ProjectedMS, r.Modes[1].ProjectedMS, r.ProjectedSpeedup)
	fmt.Fprintf(w, "plot: %s\n", r.Plot)
}

// readRunLog reads a log.jsonl of a run of several ranks.
func readRunLog(path string) ([]stepRecord, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--from: %w", err)
	}
	defer f.Close()
	var recs []stepRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for n := 1; sc.Scan(); n++ {
		var r stepRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("--from %s:%d: %w", path, n, err)
		}
		if r.RanksRecord == nil || r.Mode == "" {
			return nil, fmt.Errorf("--from %s:%d: not a step of several ranks (train --ranks)", path, n)
		}
		recs = append(recs, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--from %s: %w", path, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("--from %s: no steps", path)
	}
	return recs, nil
}

// plotFromLogs draws the balance plot from a packing log and a CAD log.
func plotFromLogs(paths []string, out string, w io.Writer) error {
	var modes []compareMode
	for _, p := range paths {
		recs, err := readRunLog(p)
		if err != nil {
			return err
		}
		m := summarize(recs)
		if m.Ranks == nil {
			return fmt.Errorf("--from %s: no timed steps to draw (run with --timing)", p)
		}
		modes = append(modes, m)
	}
	if modes[0].Mode == "cad" {
		modes[0], modes[1] = modes[1], modes[0]
	}
	if modes[0].Mode != "packing" || modes[1].Mode != "cad" {
		return fmt.Errorf("--from: want one packing log and one CAD log, got %s and %s", modes[0].Mode, modes[1].Mode)
	}
	if err := plotBalance(out, modes[0], modes[1], len(modes[0].Ranks)); err != nil {
		return err
	}
	fmt.Fprintf(w, "plot: %s\n", out)
	return nil
}

// plotBalance draws each rank's mean step time as a stacked bar (linear,
// attention, transfer, waiting), packing's ranks on the left and CAD's on
// the right.
func plotBalance(path string, packing, cad compareMode, ranks int) error {
	if len(packing.Ranks) == 0 || len(cad.Ranks) == 0 {
		return fmt.Errorf("plot: no timed steps to draw")
	}
	n := len(packing.Ranks) + 1 + len(cad.Ranks)
	parts := []struct {
		name string
		get  func(rankRecord) float64
		c    color.RGBA
	}{
		{"linear", func(r rankRecord) float64 { return *r.LinearMS }, color.RGBA{R: 120, G: 160, B: 210, A: 255}},
		{"attention", func(r rankRecord) float64 { return *r.AttentionMS }, color.RGBA{R: 230, G: 140, B: 60, A: 255}},
		{"transfer", func(r rankRecord) float64 { return *r.TransferMS }, color.RGBA{R: 110, G: 180, B: 110, A: 255}},
		{"waiting", func(r rankRecord) float64 { return *r.WaitMS }, color.RGBA{R: 200, G: 200, B: 200, A: 255}},
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("per-rank step time: packing (imbalance %.2f) | CAD (imbalance %.2f)", packing.ImbalanceMeasured, cad.ImbalanceMeasured)
	p.Y.Label.Text = "ms per step"
	var below *plotter.BarChart
	for _, part := range parts {
		vals := make(plotter.Values, n)
		for i, r := range packing.Ranks {
			vals[i] = part.get(r)
		}
		for i, r := range cad.Ranks {
			vals[len(packing.Ranks)+1+i] = part.get(r)
		}
		bars, err := plotter.NewBarChart(vals, vg.Points(22))
		if err != nil {
			return fmt.Errorf("plot: %w", err)
		}
		bars.Color, bars.LineStyle.Width = part.c, 0
		if below != nil {
			bars.StackOn(below)
		}
		below = bars
		p.Add(bars)
		p.Legend.Add(part.name, bars)
	}
	names := make([]string, n)
	for i := range packing.Ranks {
		names[i] = fmt.Sprintf("P%d", i)
	}
	for i := range cad.Ranks {
		names[len(packing.Ranks)+1+i] = fmt.Sprintf("C%d", i)
	}
	p.NominalX(names...)
	p.X.Label.Text = fmt.Sprintf("rank (P: packing, C: CAD; %d ranks)", ranks)
	p.Legend.Top, p.Legend.Left = true, true
	if err := p.Save(8*vg.Inch, 5*vg.Inch, path); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}
