package gemm

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/shaders"
	"github.com/coreattn/coreattn/wgpu"
)

// TestBadSpecs checks that bad products are refused before anything runs,
// with a typed error naming the values.
func TestBadSpecs(t *testing.T) {
	op := testOp(t, Options{})
	dev := op.Device()
	buf := func(n int) *wgpu.Buffer {
		b, err := dev.NewBuffer("buf", uint64(4*n))
		require.NoError(t, err)
		t.Cleanup(b.Release)
		return b
	}
	a, b, c := buf(1000), buf(1000), buf(1000)
	other, err := wgpu.OpenBest(wgpu.Options{})
	require.NoError(t, err)
	defer other.Close()
	foreign, err := other.NewBuffer("foreign", 4000)
	require.NoError(t, err)
	defer foreign.Release()
	ok := Spec{C: Matrix{Buf: c, Rows: 4, Cols: 6}, A: Matrix{Buf: a, Rows: 4, Cols: 5}, B: Matrix{Buf: b, Rows: 5, Cols: 6}}
	tests := []struct {
		name string
		edit func(s *Spec)
		err  error
		msg  string
	}{
		{"inner dimensions", func(s *Spec) { s.B.Rows = 7 }, ErrShape, "A is 4×5 but B is 7×6 (inner dimensions 5 and 7)"},
		{"inner dimensions transposed", func(s *Spec) { s.TransB = true }, ErrShape, "A is 4×5 but Bᵀ is 6×5 (inner dimensions 5 and 6)"},
		{"C rows", func(s *Spec) { s.C.Rows = 3 }, ErrShape, "C is 3×6 but A·B is 4×6"},
		{"C columns transposed", func(s *Spec) { s.TransA, s.A.Rows, s.A.Cols = true, 5, 4; s.C.Cols = 9 }, ErrShape, "C is 4×9 but Aᵀ·B is 4×6"},
		{"negative", func(s *Spec) { s.A.Rows = -1 }, ErrShape, "A is -1×5"},
		{"no buffer", func(s *Spec) { s.B.Buf = nil }, ErrLayout, "B (5×6) has no buffer"},
		{"other device", func(s *Spec) { s.A.Buf = foreign }, ErrLayout, `A's buffer "foreign" lives on another device`},
		{"negative offset", func(s *Spec) { s.C.Offset = -4 }, ErrLayout, "C: offset -4 is negative"},
		{"stride", func(s *Spec) { s.A.Stride = 3 }, ErrLayout, "A: stride 3 is less than its 5 columns"},
		{"too small", func(s *Spec) { s.B.Offset, s.B.Stride = 990, 8 }, ErrLayout, "B 5×6 (stride 8, offset 990) in \"buf\" needs 1028 elements; the buffer holds 1000"},
		{"overlap", func(s *Spec) { s.A.Buf, s.A.Offset = c, 20 }, ErrOverlap, "C 4×6 in \"buf\" and A 4×5 (stride 5, offset 20) in \"buf\" share elements"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ok
			tt.edit(&s)
			_, err := op.Prepare(s)
			require.ErrorIs(t, err, tt.err)
			require.ErrorContains(t, err, tt.msg)
			_, err = op.Run(context.Background(), s)
			require.ErrorIs(t, err, tt.err)
		})
	}
	// The unedited spec is fine.
	_, err = op.Run(context.Background(), ok)
	require.NoError(t, err)
}

// TestOverlaps pins the exact test for matrices of one stride (column
// slices of one buffer) and the conservative one otherwise.
func TestOverlaps(t *testing.T) {
	m := func(off, rows, cols, stride int) Matrix {
		return Matrix{Offset: off, Rows: rows, Cols: cols, Stride: stride}
	}
	tests := []struct {
		x, y Matrix
		want bool
	}{
		{m(0, 4, 8, 24), m(8, 4, 8, 24), false},  // side by side
		{m(0, 4, 8, 24), m(7, 4, 8, 24), true},   // one column shared
		{m(16, 4, 8, 24), m(0, 4, 8, 24), false}, // third slice against the first
		{m(0, 4, 8, 24), m(96, 4, 8, 24), false}, // below
		{m(0, 4, 8, 24), m(76, 4, 8, 24), true},  // last row of x meets first of y
		{m(0, 4, 8, 24), m(72, 1, 8, 24), true},  // x's last row exactly
		{m(0, 4, 8, 24), m(80, 1, 8, 24), false}, // past x's last row's columns
		{m(0, 4, 8, 24), m(8, 2, 8, 30), true},   // strides differ: conservative
		{m(0, 0, 8, 24), m(0, 4, 8, 24), false},  // empty
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, overlaps(tt.x, tt.y), "%+v %+v", tt.x, tt.y)
		require.Equal(t, tt.want, overlaps(tt.y, tt.x), "%+v %+v (swapped)", tt.y, tt.x)
	}
}

// TestBadOptions: a forced tiling must be valid and fit the adapter.
func TestBadOptions(t *testing.T) {
	dev, err := wgpu.OpenBest(wgpu.Options{})
	require.NoError(t, err)
	defer dev.Close()
	b, err := dev.NewBuffer("b", 4096)
	require.NoError(t, err)
	defer b.Release()
	s := Spec{C: Matrix{Buf: b, Rows: 4, Cols: 4}, A: Matrix{Buf: b, Offset: 16, Rows: 4, Cols: 4}, B: Matrix{Buf: b, Offset: 32, Rows: 4, Cols: 4}}
	_, err = NewWithOptions(dev, Options{Tiling: shaders.GemmTiling{BM: 64, BN: 64, BK: 16, TM: 6, TN: 4}}).Prepare(s)
	require.ErrorContains(t, err, "TM 6: want 4, 8, 12 or 16")
	huge := shaders.GemmTiling{BM: 256, BN: 256, BK: 32, TM: 16, TN: 16}
	require.NoError(t, huge.Validate())
	_, err = NewWithOptions(dev, Options{Tiling: huge}).Prepare(s)
	require.ErrorIs(t, err, ErrLimit)
	require.ErrorContains(t, err, "needs 131072 bytes of workgroup memory")
}

// TestSplitKPolicy pins the split-K policy on the model's weight gradients and
// its limits: forced counts, CPU adapters, short K, the scratch budget.
func TestSplitKPolicy(t *testing.T) {
	large := shaders.GemmLarge
	for _, c := range []struct {
		name            string
		m, n, k, forced int
		cpu             bool
		max             int64
		parts, chunk    int
	}{
		{"base wq dW", 768, 768, 16384, 0, false, 1 << 31, 29, 576},
		{"base w1/w3 dW", 4096, 768, 16384, 0, false, 1 << 31, 6, 2736},
		{"small wk dW", 128, 384, 16384, 0, false, 1 << 31, 32, 512},
		{"T65536", 768, 768, 65536, 0, false, 1 << 31, 29, 2272},
		{"enough tiles", 4096, 4096, 4096, 0, false, 1 << 31, 1, 4096},
		{"CPU", 768, 768, 16384, 0, true, 1 << 31, 1, 16384},
		{"forced on a CPU", 768, 768, 16384, 3, true, 1 << 31, 3, 5472},
		{"never", 768, 768, 16384, 1, false, 1 << 31, 1, 16384},
		{"short K", 64, 64, 31, 4, false, 1 << 31, 1, 31},
		{"budget", 768, 768, 16384, 0, false, 10 * 768 * 768 * 4, 10, 1648},
	} {
		parts, chunk := SplitK(c.m, c.n, c.k, large, c.forced, c.cpu, c.max)
		require.Equal(t, [2]int{c.parts, c.chunk}, [2]int{parts, chunk}, c.name)
		if parts > 1 {
			require.Zero(t, chunk%large.BK, "%s: whole K steps", c.name)
		}
		require.GreaterOrEqual(t, parts*chunk, c.k, "%s: covers K", c.name)
	}
}
