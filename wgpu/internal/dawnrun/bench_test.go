//go:build linux && cgo

package dawnrun

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/attention/tc"
	"github.com/coreattn/coreattn/shaders"
)

var (
	benchReps   = flag.Int("tc.reps", 5, "runs submitted back to back per timed round")
	benchRounds = flag.Int("tc.rounds", 3, "timed rounds per measurement (the median round is reported)")
	benchJSON   = flag.String("tc.json", "", "append one JSON line per measurement to this file")
	benchShape  = flag.String("tc.shapes", "", "comma-separated shape labels to run, e.g. S8192_D128_H32 (empty: all)")
	benchDType  = flag.String("tc.dtype", "f16", "storage of the tensors: f16, or f32 (adds the cast passes)")
)

// benchShapes are the standard shapes of `coreattn bench`: causal, one
// segment per batch, as many query as KV heads; cpuShapes are sized for
// lavapipe, to try the benchmark there.
var (
	benchShapes = []struct{ s, d, h int }{{4096, 64, 32}, {8192, 128, 32}, {16384, 128, 16}}
	cpuShapes   = []struct{ s, d, h int }{{512, 64, 2}, {256, 128, 2}}
)

// benchResult is one measurement, as -tc.json writes it.
type benchResult struct {
	Adapter    string    `json:"adapter"`
	Shape      string    `json:"shape"`
	DType      string    `json:"dtype"`
	Pass       string    `json:"pass"` // fwd, bwd, fwd+bwd
	Tiling     string    `json:"tiling"`
	MS         float64   `json:"ms"`          // GPU time per run, median round (timestamp queries)
	TFLOPS     float64   `json:"tflops"`      // FLOPs as `coreattn bench` counts them: fwd 4·D·Hq·pairs, bwd 2.5x, fwd+bwd 3.5x
	WallMS     float64   `json:"wall_ms"`     // host wall time per run of the same round
	WallTFLOPS float64   `json:"wall_tflops"` // the same FLOPs over it
	Passes     []float64 `json:"passes"`      // each pass's mean time in that round, ms
}

// BenchmarkTC measures the tensor-core forward and backward at the
// standard shapes with robustness off, on GPU timestamps, for the swept
// tilings (see -tc.sweep): the forward tilings alone, then the backward
// tilings after the chosen forward (bwd, and fwd+bwd as the sum). Each
// sub-benchmark reports TFLOP/s; -test.v logs every line. Run it with
// -test.benchtime 1x: each sub-benchmark times -tc.reps runs itself.
func BenchmarkTC(b *testing.B) {
	r, dev := matrixDevice(b, false)
	if !r.Device().Features().Timestamps {
		b.Skip("the adapter has no timestamp queries")
	}
	dt, err := attention.ParseDType(*benchDType)
	require.NoError(b, err)
	shapes := benchShapes
	if dev.CPU {
		shapes = cpuShapes
	}
	for _, sh := range shapes {
		label := fmt.Sprintf("S%d_D%d_H%d", sh.s, sh.d, sh.h)
		if *benchShape != "" && !slices.Contains(splitList(*benchShape), label) {
			continue
		}
		a := &attention.Args{CuSeqlensQ: []int32{0, int32(sh.s)}, CuSeqlensK: []int32{0, int32(sh.s)}, NumHeadsQ: sh.h, NumHeadsKV: sh.h, HeadDim: sh.d, Causal: true, DType: dt}
		fwds, err := shaders.TCFwdTilings(sh.d, dt, dev.Target)
		require.NoError(b, err)
		bwds, err := shaders.TCBwdTilings(sh.d, dt, dev.Target)
		require.NoError(b, err)
		fwds, bwds = sweep(fwds, fwdShape, *sweepN), sweep(bwds, bwdShape, *sweepN)
		ts := benchTensors(b, r, a)
		for i, ft := range fwds {
			b.Run(label+"/fwd/"+ft.String(), func(b *testing.B) {
				measure(b, r, tc.New(dev, tc.Options{Forward: ft}), a, ts, false, label)
			})
			if i == 0 {
				for _, bt := range bwds {
					b.Run(label+"/bwd/"+bt.String(), func(b *testing.B) {
						measure(b, r, tc.New(dev, tc.Options{Forward: ft, Backward: bt}), a, ts, true, label)
					})
				}
			}
		}
	}
}

func splitList(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

// benchTensors creates a's tensors with random inputs.
func benchTensors(b *testing.B, r *Runner, a *attention.Args) *tensors {
	rng := rand.New(rand.NewPCG(1, 2))
	nq := a.TotalQ() * a.NumHeadsQ * a.HeadDim
	nk := a.TotalK() * a.NumHeadsKV * a.HeadDim
	ts := newTensors(b, r.Device())
	for _, x := range []struct {
		name string
		n    int
	}{{"q", nq}, {"k", nk}, {"v", nk}, {"do", nq}, {"o", nq}, {"dq", nq}, {"dk", nk}, {"dv", nk}} {
		ts.put(b, x.name, a.DType, randomF32(rng, x.n))
	}
	ts.put(b, "lse", attention.Float32, make([]float32, a.NumHeadsQ*a.TotalQ()))
	return ts
}

// measure times the forward of a or, with bwd, the backward (after one
// forward, whose O and LSE it reads) and fwd+bwd (the sum of the two
// medians), and reports and records the results.
func measure(b *testing.B, r *Runner, p *tc.Planner, a *attention.Args, ts *tensors, bwd bool, label string) {
	ctx := context.Background()
	fl, err := p.Forward(a)
	require.NoError(b, err)
	fwd, err := r.Prepare(ctx, fl, ts.bufs)
	require.NoError(b, err)
	defer fwd.Release()
	fms, fwall, fpasses := median(b, fwd)
	if !bwd {
		record(b, r, a, label, "fwd", fl.Tiling, a.FLOPs(), fms, fwall, fpasses)
		return
	}
	bl, err := p.Backward(a)
	require.NoError(b, err)
	back, err := r.Prepare(ctx, bl, ts.bufs)
	require.NoError(b, err)
	defer back.Release()
	bms, bwall, bpasses := median(b, back)
	record(b, r, a, label, "bwd", bl.Tiling, 2.5*a.FLOPs(), bms, bwall, bpasses)
	record(b, r, a, label, "fwd+bwd", fl.Tiling+"; "+bl.Tiling, 3.5*a.FLOPs(), fms+bms, fwall+bwall, append(fpasses, bpasses...))
}

// median runs p back to back for about half a second to warm up (drivers
// compile on first use, and a GPU that idled meanwhile must clock up),
// then times -tc.rounds rounds of -tc.reps runs submitted back to back, and
// returns the median round's GPU time per run (timestamp queries), its
// wall time per run, and its passes' mean times, in ms.
func median(b *testing.B, p *Prepared) (gpu, wall float64, passes []float64) {
	ctx := context.Background()
	for start, n := time.Now(), 0; n < 3 || time.Since(start) < 500*time.Millisecond; n++ {
		_, err := p.Run(ctx, false)
		require.NoError(b, err)
	}
	reps := max(1, *benchReps)
	type round struct {
		gpu, wall time.Duration
		passes    []time.Duration
	}
	var rounds []round
	for range max(1, *benchRounds) {
		start := time.Now()
		times, err := p.Repeat(ctx, reps, true)
		require.NoError(b, err)
		r := round{wall: time.Since(start) / time.Duration(reps), passes: make([]time.Duration, len(p.passes))}
		for i, t := range times {
			r.gpu += t
			r.passes[i%len(p.passes)] += t
		}
		r.gpu /= time.Duration(reps)
		rounds = append(rounds, r)
	}
	slices.SortFunc(rounds, func(x, y round) int { return int(x.gpu - y.gpu) })
	med := rounds[len(rounds)/2]
	for _, t := range med.passes {
		passes = append(passes, round4(float64(t)/float64(reps)/1e6))
	}
	return float64(med.gpu) / 1e6, float64(med.wall) / 1e6, passes
}

// record reports one measurement as metrics and a log line, and appends
// it to -tc.json.
func record(b *testing.B, r *Runner, a *attention.Args, label, pass, tiling string, flops, ms, wall float64, passes []float64) {
	res := benchResult{
		Adapter: r.Device().Info().Name, Shape: label, DType: shortName(a.DType), Pass: pass, Tiling: tiling,
		MS: round4(ms), TFLOPS: round4(flops / ms / 1e9), WallMS: round4(wall), WallTFLOPS: round4(flops / wall / 1e9), Passes: passes,
	}
	b.ReportMetric(res.TFLOPS, pass+"-TFLOP/s")
	b.Logf("%-16s %-4s %-7s %9.3f ms %8.2f TFLOP/s (wall %.3f ms, %.2f)  %s  passes %v", label, res.DType, pass, res.MS, res.TFLOPS, res.WallMS, res.WallTFLOPS, tiling, res.Passes)
	if *benchJSON != "" {
		f, err := os.OpenFile(*benchJSON, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		require.NoError(b, err)
		defer f.Close()
		require.NoError(b, json.NewEncoder(f).Encode(res))
	}
}

func shortName(dt attention.DType) string {
	if dt == attention.Float16 {
		return "f16"
	}
	return "f32"
}

func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }
