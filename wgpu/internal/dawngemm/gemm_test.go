//go:build linux && cgo

package dawngemm

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/gemm"
	"github.com/coreattn/coreattn/shaders"
)

// tolHalf bounds ‖got−want‖/‖want‖: the operands are rounded to f16 (unit
// roundoff 2⁻¹¹), ~4·10⁻⁴ rms relative per product, which a sum of random
// terms keeps; 1e-3 leaves a margin of 2.5 (Mesa 26's lavapipe: 2.5-3.5·10⁻⁴).
const tolHalf = 1e-3

// check runs s on fresh standard-normal operands against float64, C
// poisoned with NaN unless accumulated into, twice (the same bits), and
// returns the relative error.
func check(t *testing.T, r *runner, tl shaders.GemmTiling, s gemm.Shape, forced int, rng *rand.Rand) float64 {
	t.Helper()
	ctx := context.Background()
	m, n, k := s.M, s.N, s.K
	a, b, c0 := randn(rng, m*k), randn(rng, k*n), randn(rng, m*n)
	if !s.Accumulate {
		for i := range c0 {
			c0[i] = float32(math.NaN())
		}
	}
	at := func(i, p int) float64 { // op(A)[i][p]
		if s.TransA {
			return float64(a[p*m+i])
		}
		return float64(a[i*k+p])
	}
	bt := func(p, j int) float64 { // op(B)[p][j]
		if s.TransB {
			return float64(b[j*k+p])
		}
		return float64(b[p*n+j])
	}
	want := make([]float64, m*n)
	var den float64
	for i := range m {
		for j := range n {
			var v float64
			for p := range k {
				v += at(i, p) * bt(p, j)
			}
			if s.Accumulate {
				v += float64(c0[i*n+j])
			}
			want[i*n+j], den = v, den+v*v
		}
	}
	ab, err := upload(ctx, r.d, "a", a)
	require.NoError(t, err)
	defer ab.Release()
	bb, err := upload(ctx, r.d, "b", b)
	require.NoError(t, err)
	defer bb.Release()
	cb, err := upload(ctx, r.d, "c", c0)
	require.NoError(t, err)
	defer cb.Release()
	p, err := r.prepare(ctx, tl, s, forced, ab, bb, cb)
	require.NoError(t, err, "%s %s", tl, s.Label)
	defer p.release()
	var rel float64
	var first []float32
	for run := range 2 {
		require.NoError(t, writeFloats(r.d, cb, c0)) // C as it was, poison included
		_, err = r.d.Run(ctx, false, p.passes...)
		require.NoError(t, err, "%s", p.tiling)
		got, err := download(ctx, r.d, cb, m*n)
		require.NoError(t, err)
		var num float64
		for i, w := range want {
			num += (float64(got[i]) - w) * (float64(got[i]) - w)
		}
		rel = math.Sqrt(num / den)
		require.False(t, math.IsNaN(rel), "%s %s: NaN in C", p.tiling, s.Label)
		require.LessOrEqual(t, rel, tolHalf, "%s %s: relative error", p.tiling, s.Label)
		if run == 0 {
			first = got
			continue
		}
		for i := range got {
			require.Equal(t, math.Float32bits(first[i]), math.Float32bits(got[i]), "%s %s: element %d differs between runs", p.tiling, s.Label, i)
		}
	}
	t.Logf("%s %s: relative error %.2g", p.tiling, s.Label, rel)
	return rel
}

func randn(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// cases are the transposition cases.
var cases = [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}}

// TestProducts checks a small tiling of the device's first matrix
// configuration in every case, with and without Accumulate, at sizes that
// leave partial tiles and layouts of both access widths.
func TestProducts(t *testing.T) {
	d, tg := openDevice(t, true)
	r := newRunner(t, d, tg)
	rng := rand.New(rand.NewPCG(1, 2))
	tl := tg.small()
	for _, tr := range cases {
		for _, acc := range []bool{false, true} {
			for _, sz := range [][3]int{{37, 45, 70}, {64, 32, 64}, {9, 11, 40}} {
				s := gemm.Shape{M: sz[0], N: sz[1], K: sz[2], TransA: tr[0], TransB: tr[1], Accumulate: acc}
				s.Label = fmt.Sprintf("%s %dx%dx%d", s.Case(), s.M, s.N, s.K)
				if acc {
					s.Label += " acc"
				}
				t.Run(s.Label, func(t *testing.T) { check(t, r, tl, s, 1, rng) })
			}
		}
	}
}

// TestChosen checks the tiling the chooser picks for the device (on a GPU
// unrolled, as the benchmark runs it) in every case, and split-K.
func TestChosen(t *testing.T) {
	d, tg := openDevice(t, true)
	r := newRunner(t, d, tg)
	rng := rand.New(rand.NewPCG(3, 4))
	tl := tg.chosen(t)
	for _, tr := range cases {
		for _, split := range []int{1, 3} {
			s := gemm.Shape{M: tl.BM + 2, N: tl.BN + 12, K: 3*tl.BK + 4, TransA: tr[0], TransB: tr[1], Accumulate: tr[0]}
			s.Label = fmt.Sprintf("%s %dx%dx%d split %d", s.Case(), s.M, s.N, s.K, split)
			t.Run(s.Label, func(t *testing.T) { check(t, r, tl, s, split, rng) })
		}
	}
}
