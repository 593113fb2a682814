package gemm

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/coreattn/coreattn/wgpu"
)

// elem is element (i, j) of op(x) in data, the host copy of x's buffer.
func elem(data []float32, x Matrix, trans bool, i, j int) float64 {
	if trans {
		i, j = j, i
	}
	return float64(data[x.Offset+i*x.stride()+j])
}

// refInto computes s on host copies of its buffers (keyed by buffer) in
// float64 and stores the result, rounded to float32, into C's copy.
func refInto(host map[*wgpu.Buffer][]float32, s Spec) {
	m, n, k := s.dims()
	out := make([]float64, m*n)
	for i := range m {
		for j := range n {
			var v float64
			for p := range k {
				v += elem(host[s.A.Buf], s.A, s.TransA, i, p) * elem(host[s.B.Buf], s.B, s.TransB, p, j)
			}
			if s.Accumulate {
				v += elem(host[s.C.Buf], s.C, false, i, j)
			}
			out[i*n+j] = v
		}
	}
	c := host[s.C.Buf]
	for i := range m {
		for j := range n {
			c[s.C.Offset+i*s.C.stride()+j] = float32(out[i*n+j])
		}
	}
}

func randn(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// requireClose compares whole buffers: relative error within tol.
func requireClose(t *testing.T, want, got []float32, what string) {
	t.Helper()
	require.Len(t, got, len(want))
	var num, den float64
	for i := range want {
		d := float64(got[i]) - float64(want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	rel := math.Sqrt(num / den)
	require.LessOrEqual(t, rel, tol, "%s: relative error", what)
}

// TestFusedQKV runs a model's projections on slices of fused buffers: Q, K
// and V are column slices of one [T, Dq+2Dkv] buffer (written by three NT
// products, C with a stride), and the input gradient sums three NN
// products whose A operands are those slices (Accumulate).
func TestFusedQKV(t *testing.T) {
	op := testOp(t, Options{})
	dev := op.Device()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 8))
	const T, d, dq, dkv = 37, 24, 24, 8 // dkv slices: offsets and strides of 8 and 40
	width := dq + 2*dkv
	x, w, qkv, dqkv, dx := randn(rng, T*d), randn(rng, width*d), make([]float32, T*width), randn(rng, T*width), make([]float32, T*d)
	host := map[*wgpu.Buffer][]float32{}
	buf := func(name string, data []float32) *wgpu.Buffer {
		b, err := wgpu.Upload(dev, name, data)
		require.NoError(t, err)
		t.Cleanup(b.Release)
		host[b] = append([]float32(nil), data...)
		return b
	}
	xb, wb, qkvb, dqkvb, dxb := buf("x", x), buf("w", w), buf("qkv", qkv), buf("dqkv", dqkv), buf("dx", dx)
	cols := []struct{ off, n int }{{0, dq}, {dq, dkv}, {dq + dkv, dkv}}
	var specs []Spec
	for _, c := range cols {
		// Y[:, c] = X · W[c]ᵀ
		specs = append(specs, Spec{
			C:      Matrix{Buf: qkvb, Offset: c.off, Rows: T, Cols: c.n, Stride: width},
			A:      Matrix{Buf: xb, Rows: T, Cols: d},
			B:      Matrix{Buf: wb, Offset: c.off * d, Rows: c.n, Cols: d},
			TransB: true,
		})
	}
	for i, c := range cols {
		// dX (+)= dY[:, c] · W[c]
		specs = append(specs, Spec{
			C:          Matrix{Buf: dxb, Rows: T, Cols: d},
			A:          Matrix{Buf: dqkvb, Offset: c.off, Rows: T, Cols: c.n, Stride: width},
			B:          Matrix{Buf: wb, Offset: c.off * d, Rows: c.n, Cols: d},
			Accumulate: i > 0,
		})
	}
	// All six in one submission, as the trainer would.
	var ds []wgpu.Dispatch
	for _, s := range specs {
		l, err := op.Prepare(s)
		require.NoError(t, err)
		defer l.Release()
		ds = append(ds, l.Dispatches()...)
		refInto(host, s)
	}
	_, err := dev.Run(ctx, ds...)
	require.NoError(t, err)
	for _, b := range []*wgpu.Buffer{qkvb, dxb} {
		got := make([]float32, len(host[b]))
		require.NoError(t, wgpu.Download(ctx, b, got))
		requireClose(t, host[b], got, b.Label())
	}
}

// TestSharedBuffer puts C and both operands in one buffer, side by side
// (the operands read through C's binding, as WebGPU requires), with 16-byte
// and 4-byte access (n 12 and 13), and split-K.
func TestSharedBuffer(t *testing.T) {
	for _, x := range [][2]int{{1, 12}, {1, 13}, {2, 12}, {2, 13}} {
		split, n := x[0], x[1]
		op := testOp(t, Options{Split: split})
		dev := op.Device()
		ctx := context.Background()
		rng := rand.New(rand.NewPCG(9, uint64(split)))
		const m, k = 20, 64
		// One buffer: rows of [A (k) | C (n)], then B (k×n) after them.
		stride := k + n
		data := randn(rng, m*stride+k*n)
		b, err := wgpu.Upload(dev, "shared", data)
		require.NoError(t, err)
		defer b.Release()
		s := Spec{
			A:          Matrix{Buf: b, Rows: m, Cols: k, Stride: stride},
			C:          Matrix{Buf: b, Offset: k, Rows: m, Cols: n, Stride: stride},
			B:          Matrix{Buf: b, Offset: m * stride, Rows: k, Cols: n},
			Accumulate: true,
		}
		host := map[*wgpu.Buffer][]float32{b: append([]float32(nil), data...)}
		refInto(host, s)
		_, err = op.Run(ctx, s)
		require.NoError(t, err)
		got := make([]float32, len(data))
		require.NoError(t, wgpu.Download(ctx, b, got))
		requireClose(t, host[b], got, "shared buffer")
	}
}

// TestEmpty: products with no rows or columns of C have nothing to run;
// they are still valid launches.
func TestEmpty(t *testing.T) {
	op := testOp(t, Options{})
	b, err := op.Device().NewBuffer("b", 64)
	require.NoError(t, err)
	defer b.Release()
	for _, s := range []Spec{
		{C: Matrix{Buf: b, Rows: 0, Cols: 4}, A: Matrix{Buf: b, Rows: 0, Cols: 3}, B: Matrix{Buf: b, Rows: 3, Cols: 4}},
		{C: Matrix{Buf: b, Rows: 4, Cols: 0}, A: Matrix{Buf: b, Rows: 4, Cols: 3}, B: Matrix{Buf: b, Rows: 3, Cols: 0}},
	} {
		l, err := op.Prepare(s)
		require.NoError(t, err)
		require.Empty(t, l.Dispatches())
		require.Zero(t, l.FLOPs())
		l.Release()
		l.Release() // idempotent
	}
}

// TestConcurrent prepares and runs split products from several goroutines
// on one Op: their launches share the split-K scratch, which grows while
// others hold it.
func TestConcurrent(t *testing.T) {
	op := testOp(t, Options{Split: 2})
	dev := op.Device()
	var g errgroup.Group
	for w := range 4 {
		g.Go(func() error {
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(21, uint64(w)))
			for r := range 3 {
				m, n, k := 8+8*w+r, 12+4*r, 64 // different sizes: the scratch grows
				host := map[*wgpu.Buffer][]float32{}
				var bufs [3]*wgpu.Buffer
				for i, size := range []int{m * k, k * n, m * n} {
					data := randn(rng, size)
					b, err := wgpu.Upload(dev, fmt.Sprintf("w%d r%d %d", w, r, i), data)
					if err != nil {
						return err
					}
					defer b.Release()
					bufs[i], host[b] = b, data
				}
				s := Spec{A: Matrix{Buf: bufs[0], Rows: m, Cols: k}, B: Matrix{Buf: bufs[1], Rows: k, Cols: n}, C: Matrix{Buf: bufs[2], Rows: m, Cols: n}, Accumulate: true}
				refInto(host, s)
				if _, err := op.Run(ctx, s); err != nil {
					return err
				}
				got := make([]float32, m*n)
				if err := wgpu.Download(ctx, bufs[2], got); err != nil {
					return err
				}
				var num, den float64
				for i := range got {
					d := float64(got[i]) - float64(host[bufs[2]][i])
					num, den = num+d*d, den+float64(host[bufs[2]][i])*float64(host[bufs[2]][i])
				}
				if rel := math.Sqrt(num / den); !(rel <= tol) {
					return fmt.Errorf("worker %d run %d (%dx%dx%d): relative error %g", w, r, m, n, k, rel)
				}
			}
			return nil
		})
	}
	require.NoError(t, g.Wait())
	op.mu.Lock()
	defer op.mu.Unlock()
	require.Nil(t, op.scratch, "the scratch is freed with its last launch")
}
