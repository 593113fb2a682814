package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/spf13/cobra"

	"github.com/coreattn/coreattn/corpus"
	"github.com/coreattn/coreattn/disagg"
	"github.com/coreattn/coreattn/model"
	"github.com/coreattn/coreattn/model/train"
)

// The training demo's setting: tiny on documents of at most demoMaxDoc
// bytes, so that they continue across ranks and the longer ones make
// attention unequal; the balance is measured over the last demoMeasured
// steps.
const (
	demoMaxDoc      = 640
	demoMeasured    = 3
	demoBlock       = 64
	demoRanksOneGPU = 4
)

// runDemoTrain is `coreattn demo`: a short training of tiny with CAD over
// the local adapters, then the balance of packing and CAD on the same
// batches and weights.
func runDemoTrain(ctx context.Context, g *globalFlags, f *demoFlags, cmd *cobra.Command, out, errw io.Writer) error {
	switch {
	case f.adapter < 0:
		return fmt.Errorf("demo: --adapter %d: want an index >= 0 (see `coreattn devices`)", f.adapter)
	case f.steps < demoMeasured:
		return fmt.Errorf("demo: --steps %d: want at least %d", f.steps, demoMeasured)
	case f.ranks < 0 || f.ranks > 64:
		return fmt.Errorf("demo: --ranks %d: want 1..64 (0: the default)", f.ranks)
	case f.tokensPerRank < 0 || f.tokensPerRank%2 != 0:
		return fmt.Errorf("demo: --tokens-per-rank %d: want an even number (two nano-batches per rank; 0: the default)", f.tokensPerRank)
	}
	tf := &trainFlags{adapter: f.adapter}
	tf.cluster.ranks = 64 // every adapter: the ranks are counted from them
	if f.ranks > 0 {
		tf.cluster.ranks = f.ranks
	}
	devs, err := openClusterDevices(g, cmd, tf)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer closeAll(devs)
	ranks := f.ranks
	if ranks == 0 {
		ranks = max(demoRanksOneGPU, len(devs))
	}
	perRank := f.tokensPerRank
	if perRank == 0 {
		perRank = 256
		if !devs[0].Info().IsCPU() {
			perRank = 2048
		}
	}
	c, err := model.Preset("tiny")
	if err != nil {
		return err
	}
	t0 := time.Now()
	corp, err := corpus.Load(ctx, "", corpus.Options{ValPercent: corpus.DefaultValPercent, MaxDoc: demoMaxDoc})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	share := fmt.Sprintf("%d ranks over %d adapters", ranks, len(devs))
	if len(devs) == 1 {
		share = fmt.Sprintf("%d logical ranks share it", ranks)
	}
	fmt.Fprintf(out, "coreattn demo: the tiny model trained with core attention disaggregated over %d ranks\n", ranks)
	fmt.Fprintf(out, "adapters  %s: %s\n", adapterNames(devs), share)
	fmt.Fprintf(out, "model     %s\n", c)
	fmt.Fprintf(out, "data      %s, cut at %d bytes (%d documents); %d ranks × %d tokens per step, documents continue across ranks\n",
		corp.Identity.Source, demoMaxDoc, len(corp.Train), ranks, perRank)
	fmt.Fprintf(out, "plan      CAD: CA-tasks (a query shard of a document and its key prefix) moved so that every rank's attention server\n")
	fmt.Fprintf(out, "          gets the same predicted work (ε %g, shards of %d tokens); two nano-batches per rank (ping-pong)\n", disagg.DefaultEpsilon, demoBlock)

	o := train.ClusterOptions{Ranks: ranks, TokensPerRank: perRank, Epsilon: disagg.DefaultEpsilon, BlockSize: demoBlock, Timed: true}
	cad, err := train.NewCluster(devs, c, o)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer cad.Close()
	o.Packing = true
	pack, err := train.NewCluster(devs, c, o)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer pack.Close()
	w, err := model.Init(c, f.seed)
	if err != nil {
		return err
	}
	if err := cad.SetWeights(w); err != nil {
		return err
	}
	packer, err := corpus.NewPacker(corp.Train, cad.Tokens(), f.seed)
	if err != nil {
		return err
	}
	sched := model.NewSchedule(model.DefaultLR(c), f.steps)
	sched.Warmup = min(sched.Warmup, 2)
	var packStats, cadStats []train.StepStats
	var packLoss, cadLoss []float64
	every := max(1, f.steps/8)
	for step := 1; step <= f.steps; step++ {
		cb := packer.Next()
		b := model.Batch{Tokens: cb.Tokens, CuSeqlens: cb.CuSeqlens}
		measured := step > f.steps-demoMeasured
		if measured {
			// Packing on the same batch and weights, changing nothing.
			if w, err = cad.Weights(ctx); err != nil {
				return err
			}
			if err := pack.SetWeights(w); err != nil {
				return err
			}
			res, err := pack.Gradients(ctx, b)
			if err != nil {
				return fmt.Errorf("demo: packing, step %d: %w", step, err)
			}
			packStats, packLoss = append(packStats, res.Stats), append(packLoss, res.Loss)
		}
		res, err := cad.Step(ctx, b, sched.At(step))
		if err != nil {
			return fmt.Errorf("demo: step %d: %w", step, err)
		}
		if math.IsNaN(res.Loss) {
			return fmt.Errorf("demo: step %d: the loss is NaN", step)
		}
		if measured {
			cadStats, cadLoss = append(cadStats, res.Stats), append(cadLoss, res.Loss)
		}
		if step == 1 || step%every == 0 || step == f.steps {
			fmt.Fprintf(out, "step %3d  loss %.3f  (%.2f bits per byte)\n", step, res.Loss, res.Loss/math.Ln2)
		}
	}
	printDemoBalance(out, packStats, cadStats, packLoss, cadLoss, len(devs) < ranks)
	fmt.Fprintf(out, "%d steps in %.0f s (kernels compiled on the way)\n", f.steps, time.Since(t0).Seconds())
	return nil
}

// printDemoBalance prints every rank's attention time under packing and
// under CAD, averaged over the measured steps, and the imbalance.
func printDemoBalance(out io.Writer, pack, cad []train.StepStats, packLoss, cadLoss []float64, shared bool) {
	n := len(pack[0].Ranks)
	mean := func(ss []train.StepStats) (attn, load []float64, meas, pred float64, moved int64) {
		attn, load = make([]float64, n), make([]float64, n)
		for _, s := range ss {
			m := 0.0
			for _, l := range s.PlanLoad {
				m += l / float64(n)
			}
			for r := range n {
				attn[r] += ms(s.Ranks[r].Attention) / float64(len(ss))
				load[r] += s.PlanLoad[r] / m / float64(len(ss))
			}
			pred += s.PredictedImbalance / float64(len(ss))
			moved += s.BytesMoved / int64(len(ss))
		}
		return attn, load, disagg.MaxOverMean(attn), pred, moved
	}
	pa, pl, pm, pp, _ := mean(pack)
	ca, clo, cm, cp, moved := mean(cad)
	how := "timestamp queries"
	if !cad[0].Timestamps {
		how = "host clocks"
	}
	fmt.Fprintf(out, "\nbalance of core attention over the last %d steps: the same batches and weights, packing (each rank computes\n", len(cad))
	fmt.Fprintf(out, "its own rows) and CAD; GPU ms per step by %s, and the plan's load (1 = the mean)\n", how)
	fmt.Fprintf(out, "rank   attention ms: packing    CAD     plan load: packing    CAD\n")
	for r := range n {
		fmt.Fprintf(out, "%4d   %20.1f %7.1f   %18.2f %6.2f\n", r, pa[r], ca[r], pl[r], clo[r])
	}
	fmt.Fprintf(out, "imbalance (max/mean)  packing %.2f measured, %.2f predicted;  CAD %.2f measured, %.2f predicted\n", pm, pp, cm, cp)
	worst := 0.0
	for i := range cadLoss {
		worst = max(worst, math.Abs(cadLoss[i]-packLoss[i])/math.Abs(packLoss[i]))
	}
	fmt.Fprintf(out, "same loss              packing %.5f, CAD %.5f on the last step (largest relative difference %.0e)\n",
		packLoss[len(packLoss)-1], cadLoss[len(cadLoss)-1], worst)
	where := "between adapters"
	if shared {
		where = "as device copies: the ranks share an adapter"
	}
	fmt.Fprintf(out, "moved                  %.2f MB of rows between ranks per step, %s\n", float64(moved)/1e6, where)
}
