package gemm

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/shaders"
	"github.com/coreattn/coreattn/wgpu"
)

// tol bounds ‖got−want‖/‖want‖ against the float64 reference. The kernels
// accumulate in float32 in a fixed order, so each of the K additions into
// an element rounds a partial sum of magnitude ~√k: the error of an element
// is a random walk of about 2⁻²⁴·K/√2 against a result of ~√K, i.e.
// 2⁻²⁴·√(K/2) relative: 3.8·10⁻⁶ at K = 8192, a margin of 2.5 under 1e-5.
// Products with K above 16384 get tolFor(K), three times that estimate
// (3.2·10⁻⁵ at 65536, where the estimate itself is 1.1·10⁻⁵).
const tol = 1e-5

// tolFor is the bound for a product over k: tol up to K = 16384, three
// times the random-walk estimate beyond. (Measured on lavapipe: 1.5·10⁻⁶
// at K = 8192, 4-5·10⁻⁶ at 65536.)
func tolFor(k int) float64 {
	if k <= 16384 {
		return tol
	}
	return 3 * math.Ldexp(math.Sqrt(float64(k)/2), -24)
}

// sentinel fills buffer elements outside the matrices; a kernel that
// writes out of place changes them.
var sentinel = math.Float32frombits(0x7fc0dead)

// testOp opens the best adapter (lavapipe in CI) for one test.
func testOp(t testing.TB, opts Options) *Op {
	t.Helper()
	dev, err := wgpu.OpenBest(wgpu.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { dev.Close() })
	if reflect.ValueOf(opts).IsZero() {
		return New(dev) // the constructor most callers use
	}
	return NewWithOptions(dev, opts)
}

// layout is a matrix's place in its own host-side buffer: rows × cols
// (as stored), stride pad elements wider than cols, off elements in, and
// tail elements after it.
type layout struct {
	rows, cols, pad, off, tail int
}

func (l layout) stride() int { return l.cols + l.pad }
func (l layout) size() int   { return l.off + max(l.rows-1, 0)*l.stride() + l.cols + l.tail }
func (l layout) at(i, j int) int {
	return l.off + i*l.stride() + j
}

// hostMatrix is a matrix's whole buffer on the host.
type hostMatrix struct {
	layout
	data []float32
}

// newHost fills the matrix with fresh standard normal values and the
// rest of its buffer with the sentinel.
func newHost(rng *rand.Rand, l layout) hostMatrix {
	h := hostMatrix{layout: l, data: make([]float32, l.size())}
	for i := range h.data {
		h.data[i] = sentinel
	}
	for i := range l.rows {
		for j := range l.cols {
			h.data[l.at(i, j)] = float32(rng.NormFloat64())
		}
	}
	return h
}

// get is element (i, j) of op(X) for a matrix stored as h.
func (h hostMatrix) get(trans bool, i, j int) float64 {
	if trans {
		i, j = j, i
	}
	return float64(h.data[h.at(i, j)])
}

// reference is op(A)·op(B) (+ C) in float64, row-major m×n.
func reference(a, b, c hostMatrix, ta, tb, acc bool, m, n, k int) []float64 {
	want := make([]float64, m*n)
	for i := range m {
		for j := range n {
			var s float64
			for p := range k {
				s += a.get(ta, i, p) * b.get(tb, p, j)
			}
			if acc {
				s += float64(c.data[c.at(i, j)])
			}
			want[i*n+j] = s
		}
	}
	return want
}

// upload copies h to a new device buffer.
func upload(t testing.TB, dev *wgpu.Device, name string, h hostMatrix) *wgpu.Buffer {
	t.Helper()
	b, err := wgpu.Upload(dev, name, h.data)
	require.NoError(t, err)
	t.Cleanup(b.Release)
	return b
}

func (h hostMatrix) matrix(buf *wgpu.Buffer) Matrix {
	return Matrix{Buf: buf, Offset: h.off, Rows: h.rows, Cols: h.cols, Stride: h.stride()}
}

// product is one test problem: op(A) m×k, op(B) k×n, and the layouts'
// padding and offsets (the same for all three matrices).
type product struct {
	m, n, k  int
	pad, off int
	ta, tb   bool
	acc      bool
	tol      float64 // relative error bound; 0: tol
}

func (p product) String() string {
	s := fmt.Sprintf("%s %dx%dx%d", caseName(p.ta, p.tb), p.m, p.n, p.k)
	if p.pad != 0 || p.off != 0 {
		s += fmt.Sprintf(" pad%d off%d", p.pad, p.off)
	}
	if p.acc {
		s += " acc"
	}
	return s
}

func caseName(ta, tb bool) string {
	return string("NT"[b2i(ta)]) + string("NT"[b2i(tb)])
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// check runs p on op against the reference: C poisoned (NaN) before each
// run where it is not accumulated into, the error within tol, the buffer
// around C untouched, and the same bits on a second run.
func check(t *testing.T, op *Op, rng *rand.Rand, p product) string {
	t.Helper()
	ctx := context.Background()
	dev := op.Device()
	la := layout{rows: p.m, cols: p.k, pad: p.pad, off: p.off, tail: 3}
	if p.ta {
		la.rows, la.cols = p.k, p.m
	}
	lb := layout{rows: p.k, cols: p.n, pad: p.pad, off: p.off, tail: 5}
	if p.tb {
		lb.rows, lb.cols = p.n, p.k
	}
	lc := layout{rows: p.m, cols: p.n, pad: p.pad, off: p.off, tail: 7}
	a, b, c := newHost(rng, la), newHost(rng, lb), newHost(rng, lc)
	if !p.acc {
		for i := range p.m {
			for j := range p.n {
				c.data[c.at(i, j)] = float32(math.NaN())
			}
		}
	}
	want := reference(a, b, c, p.ta, p.tb, p.acc, p.m, p.n, p.k)
	ab := upload(t, dev, "a", a)
	bb := upload(t, dev, "b", b)
	cb := upload(t, dev, "c", c)
	s := Spec{C: c.matrix(cb), A: a.matrix(ab), B: b.matrix(bb), TransA: p.ta, TransB: p.tb, Accumulate: p.acc}
	l, err := op.Prepare(s)
	require.NoError(t, err, "%s", p)
	defer l.Release()
	require.Equal(t, 2*float64(p.m)*float64(p.n)*float64(p.k), l.FLOPs())
	var first []float32
	for run := range 2 {
		require.NoError(t, wgpu.Write(cb, 0, c.data), "%s", p)
		_, err := dev.Run(ctx, l.Dispatches()...)
		require.NoError(t, err, "%s", p)
		got := make([]float32, len(c.data))
		require.NoError(t, wgpu.Download(ctx, cb, got))
		var num, den float64
		for i := range p.m {
			for j := range p.n {
				g, w := float64(got[c.at(i, j)]), want[i*p.n+j]
				num += (g - w) * (g - w)
				den += w * w
			}
		}
		rel := math.Sqrt(num / max(den, 1e-300))
		require.False(t, math.IsNaN(rel), "%s (%s): NaN in C", p, l.Tiling())
		bound := tolFor(p.k)
		if p.tol != 0 {
			bound = p.tol
		}
		require.LessOrEqual(t, rel, bound, "%s (%s): relative error", p, l.Tiling())
		if run == 0 {
			t.Logf("%s (%s): relative error %.2g (bound %.2g)", p, l.Tiling(), rel, bound)
		}
		inC := make([]bool, len(got))
		for i := range p.m {
			for j := range p.n {
				inC[c.at(i, j)] = true
			}
		}
		for i, v := range got {
			if !inC[i] {
				require.Equal(t, math.Float32bits(c.data[i]), math.Float32bits(v), "%s (%s): element %d outside C was written", p, l.Tiling(), i)
			}
		}
		if run == 0 {
			first = got
		} else {
			for i := range got {
				require.Equal(t, math.Float32bits(first[i]), math.Float32bits(got[i]), "%s (%s): element %d differs between runs", p, l.Tiling(), i)
			}
		}
	}
	return l.Tiling()
}

// cases are the transposition cases: NN (dX = dY·W), NT (Y = X·Wᵀ), TN
// (dW = dYᵀ·X) and TT.
var cases = [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}}

// sizes are the shapes every case runs: single elements, odd sizes that
// leave partial tiles in every dimension, exact tiles, and an unaligned
// layout of a model-like shape.
var sizes = []product{
	{m: 1, n: 1, k: 1},
	{m: 7, n: 13, k: 5},
	{m: 65, n: 129, k: 33},
	{m: 64, n: 128, k: 64},
	{m: 33, n: 20, k: 300, pad: 3, off: 5}, // scalar access everywhere
	{m: 40, n: 36, k: 100, pad: 4, off: 8}, // vec4 access with strides and offsets
	{m: 24, n: 12, k: 8192},                // long K
	{m: 3, n: 5, k: 65536},                 // a step's tokens
	{m: 130, n: 70, k: 0},                  // K = 0: C = 0 (or unchanged)
}

// TestProducts checks every case, with and without Accumulate, at every
// size, on the chosen tilings.
func TestProducts(t *testing.T) {
	op := testOp(t, Options{})
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tr := range cases {
		for _, acc := range []bool{false, true} {
			for _, p := range sizes {
				p.ta, p.tb, p.acc = tr[0], tr[1], acc
				t.Run(p.String(), func(t *testing.T) { check(t, op, rng, p) })
			}
		}
	}
}

// TestSplitK forces the split-K path (partials and the fixed-order
// reduction) in every case, with aligned and unaligned layouts.
func TestSplitK(t *testing.T) {
	op := testOp(t, Options{Split: 3})
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tr := range cases {
		for _, p := range []product{
			{m: 40, n: 36, k: 1000, acc: true},
			{m: 33, n: 21, k: 777, pad: 1, off: 3},
			{m: 5, n: 7, k: 40}, // three parts of 16, the last short
		} {
			p.ta, p.tb = tr[0], tr[1]
			t.Run(p.String(), func(t *testing.T) {
				tiling := check(t, op, rng, p)
				require.Contains(t, tiling, "split 3")
			})
		}
	}
}

// TestTilings runs every named tiling (the GPU shapes too; lavapipe's
// limits allow them) and the variants the benchmark sweeps (the row-major
// invocation layout, K steps of 8) on the three model cases, at sizes that
// leave partial tiles.
func TestTilings(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	variants := []shaders.GemmTiling{
		{BM: 128, BN: 128, BK: 16, TM: 8, TN: 8, WX: 16},
		{BM: 128, BN: 128, BK: 8, TM: 8, TN: 8},
	}
	for _, tl := range append(shaders.GemmTilings, variants...) {
		op := testOp(t, Options{Tiling: tl, Split: 1})
		for _, tr := range cases[:3] {
			p := product{m: tl.BM + 3, n: tl.BN + 5, k: 3*tl.BK + 4, ta: tr[0], tb: tr[1], acc: tr[0]}
			t.Run(tl.Shape()+" "+p.String(), func(t *testing.T) {
				require.Contains(t, check(t, op, rng, p), tl.Shape())
			})
		}
	}
}
