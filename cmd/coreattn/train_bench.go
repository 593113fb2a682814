package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/coreattn/coreattn/model"
	"github.com/coreattn/coreattn/model/train"
)

// benchResult is what `coreattn train --bench` measures.
type benchTrainResult struct {
	Adapter    string             `json:"adapter"`
	Model      string             `json:"model"`
	Preset     string             `json:"preset,omitempty"`
	Params     int                `json:"params"`
	Tokens     int                `json:"tokens_per_step"`
	Steps      int                `json:"steps"`
	StepMS     float64            `json:"step_ms"`
	HostMS     float64            `json:"host_ms"`
	SyncStepMS float64            `json:"sync_step_ms"`
	TokensPerS float64            `json:"tokens_per_s"`
	TFLOP      float64            `json:"model_tflop_per_step"`
	TFLOPS     float64            `json:"model_tflops"`
	PeakTFLOPS float64            `json:"fma_peak_tflops"`
	PeakSource string             `json:"fma_peak_source"`
	MFU        float64            `json:"mfu"`
	GPUMS      map[string]float64 `json:"gpu_ms,omitempty"`
	Kernels    string             `json:"kernels"` // ffma or tensor-core
}

// bench trains two warm-up steps, then times --bench-steps steps as
// training runs them, each submitted before the previous one's results are
// read (the host's clock: tokens/s; the host's own time per step, less its
// waits for the GPU), then three steps one at a time (the step without
// that overlap), then three with timestamp queries (the breakdown), on the
// corpus's real batches.
func (s *session) bench(ctx context.Context) error {
	c, T := s.cfg.Model, s.cfg.Tokens
	lr := s.cfg.Schedule.LR / 10
	next := func() model.Batch {
		b := s.packer.Next()
		return model.Batch{Tokens: b.Tokens, CuSeqlens: b.CuSeqlens}
	}
	s.tr.SetTimed(false)
	for range 2 {
		if _, err := s.single.Step(ctx, next(), lr); err != nil {
			return err
		}
	}
	var flops float64
	wait0, t0 := s.dev.WaitTime(), time.Now()
	var prev *train.Pending
	for range s.f.benchSteps {
		b := next()
		flops += c.TrainFLOPs(b)
		p, err := s.single.Submit(ctx, b, lr)
		if err != nil {
			return err
		}
		if prev != nil {
			if _, err := prev.Wait(ctx); err != nil {
				return err
			}
		}
		prev = p
	}
	if _, err := prev.Wait(ctx); err != nil {
		return err
	}
	wall := time.Since(t0)
	host := wall - (s.dev.WaitTime() - wait0)
	n := float64(s.f.benchSteps)
	r := benchTrainResult{Adapter: s.dev.Info().String(), Model: c.String(), Preset: s.cfg.Preset, Params: c.NumParams(), Tokens: T, Steps: s.f.benchSteps,
		Kernels: s.cfg.kernels(),
		StepMS:  ms(wall) / n, HostMS: ms(host) / n, TokensPerS: float64(T) * n / wall.Seconds(), TFLOP: flops / n / 1e12, TFLOPS: flops / wall.Seconds() / 1e12}
	const sync = 3
	for range sync {
		t0 := time.Now()
		if _, err := s.single.Step(ctx, next(), lr); err != nil {
			return err
		}
		r.SyncStepMS += ms(time.Since(t0)) / sync
	}
	if s.dev.Info().Timestamps {
		s.tr.SetTimed(true)
		r.GPUMS = map[string]float64{}
		const timed = 3
		for range timed {
			res, err := s.single.Step(ctx, next(), lr)
			if err != nil {
				return err
			}
			for k := train.ClassGEMM; k <= train.ClassOther; k++ {
				r.GPUMS[k.String()] += ms(res.Timing.Class[k]) / timed
			}
		}
	}
	r.PeakTFLOPS, r.PeakSource = s.f.peakTFLOPS, "--peak-tflops"
	if r.PeakTFLOPS == 0 {
		peak, err := train.FMAPeak(ctx, s.dev)
		if err != nil {
			return err
		}
		r.PeakTFLOPS, r.PeakSource = peak/1e12, "measured"
	}
	r.MFU = r.TFLOPS / r.PeakTFLOPS
	if s.f.jsonOut {
		return json.NewEncoder(s.stdout).Encode(r)
	}
	out := s.stdout
	fmt.Fprintf(out, "adapter: %s\nmodel: %s, %d tokens per step\n", r.Adapter, r.Model, T)
	fmt.Fprintf(out, "step %.2f ms (mean of %d, each submitted before the previous one's results are read)  %s tokens/s\n", r.StepMS, r.Steps, humanRate(r.TokensPerS))
	fmt.Fprintf(out, "host %.2f ms per step (recording, submitting, reading: the rest waits for the GPU); one step at a time %.2f ms\n", r.HostMS, r.SyncStepMS)
	fmt.Fprintf(out, "model FLOPs %.4g TFLOP per step: %.4g TFLOP/s, MFU %.1f%% of the FMA peak (%.4g TFLOP/s, %s)\n",
		r.TFLOP, r.TFLOPS, 100*r.MFU, r.PeakTFLOPS, r.PeakSource)
	if r.GPUMS != nil {
		total := 0.0
		for _, v := range r.GPUMS {
			total += v
		}
		fmt.Fprintf(out, "GPU time per step (timestamps, mean of 3): %.2f ms:", total)
		for k := train.ClassGEMM; k <= train.ClassOther; k++ {
			v := r.GPUMS[k.String()]
			fmt.Fprintf(out, "  %s %.2f ms (%.0f%%)", k, v, 100*v/total)
		}
		fmt.Fprintln(out)
	}
	return nil
}
