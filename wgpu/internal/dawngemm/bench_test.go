//go:build linux && cgo

package dawngemm

import (
	"context"
	"encoding/json"
	"flag"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/gemm"
)

var (
	flagJSON   = flag.String("gemm.json", "", "append BenchmarkGemm's results to this file as JSON lines")
	flagShapes = flag.String("gemm.shapes", "", "BenchmarkGemm: only shapes whose label contains one of these comma-separated texts")
	flagTokens = flag.Int("gemm.tokens", 16384, "BenchmarkGemm: tokens T of the model shapes")
	flagCube   = flag.Int("gemm.cube", 4096, "BenchmarkGemm: edge of the cube shapes")
	flagRobust = flag.Bool("gemm.robust", false, "BenchmarkGemm: keep Dawn's bounds checks on")
)

// result is one JSON line, with the keys of coreattn bench gemm --json.
type result struct {
	Impl    string  `json:"impl"`
	Adapter string  `json:"adapter"`
	DType   string  `json:"dtype"`
	Case    string  `json:"case"`
	Shape   string  `json:"shape"`
	M       int     `json:"m"`
	N       int     `json:"n"`
	K       int     `json:"k"`
	MS      float64 `json:"ms"`
	TFLOPS  float64 `json:"tflops"`
	Tiling  string  `json:"tiling"`
}

// BenchmarkGemm measures the subgroup-matrix engine at gemm.CubeShapes and
// gemm.ModelShapes with the chooser's tiling and split: GPU timestamps of
// five runs submitted together, the median of three rounds, after half a
// second of warm-up. FLOPs are 2·M·N·K.
func BenchmarkGemm(b *testing.B) {
	d, tg := openDevice(b, *flagRobust)
	r := newRunner(b, d, tg)
	ctx := context.Background()
	tl := tg.chosen(b)
	var out *json.Encoder
	if *flagJSON != "" {
		f, err := os.OpenFile(*flagJSON, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		require.NoError(b, err)
		defer f.Close()
		out = json.NewEncoder(f)
	}
	rng := rand.New(rand.NewPCG(11, 11))
	for _, s := range append(gemm.CubeShapes(*flagCube), gemm.ModelShapes(*flagTokens)...) {
		if !matchesAny(s.Label, *flagShapes) {
			continue
		}
		a, err := upload(ctx, d, "a", randn(rng, s.M*s.K))
		require.NoError(b, err)
		bb, err := upload(ctx, d, "b", randn(rng, s.K*s.N))
		require.NoError(b, err)
		c, err := upload(ctx, d, "c", randn(rng, s.M*s.N))
		require.NoError(b, err)
		p, err := r.prepare(ctx, tl, s, 0, a, bb, c)
		require.NoError(b, err, "%s", s.Label)
		batch := slices.Repeat(p.passes, 5)
		for start := time.Now(); time.Since(start) < 500*time.Millisecond; {
			_, err := d.Run(ctx, false, batch...)
			require.NoError(b, err)
		}
		var rounds []time.Duration
		for range 3 {
			times, err := d.Run(ctx, true, batch...)
			require.NoError(b, err)
			var sum time.Duration
			for _, t := range times {
				sum += t
			}
			rounds = append(rounds, sum/5)
		}
		slices.Sort(rounds)
		ms := float64(rounds[1]) / float64(time.Millisecond)
		res := result{Impl: "coreattn-sgmat-f16", Adapter: d.Info().Name, DType: "float16", Case: s.Case(), Shape: s.Label,
			M: s.M, N: s.N, K: s.K, MS: ms, TFLOPS: 2 * float64(s.M) * float64(s.N) * float64(s.K) / ms / 1e9, Tiling: p.tiling}
		b.Logf("%-44s %9.3f ms %8.2f TFLOP/s  %s", res.Shape, res.MS, res.TFLOPS, res.Tiling)
		if out != nil {
			require.NoError(b, out.Encode(res))
		}
		p.release()
		a.Release()
		bb.Release()
		c.Release()
	}
}

// matchesAny reports whether label contains one of the comma-separated
// texts of filter (an empty filter matches everything).
func matchesAny(label, filter string) bool {
	if filter == "" {
		return true
	}
	for _, f := range strings.Split(filter, ",") {
		if strings.Contains(label, strings.TrimSpace(f)) {
			return true
		}
	}
	return false
}
