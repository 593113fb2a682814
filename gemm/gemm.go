package gemm

import (
	"context"
	"fmt"
	"sync"

	"github.com/coreattn/coreattn/shaders"
	"github.com/coreattn/coreattn/wgpu"
)

// Matrix is a row-major float32 matrix inside a device buffer.
type Matrix struct {
	Buf        *wgpu.Buffer
	Offset     int // in elements
	Rows, Cols int
	Stride     int // elements between rows; 0 means Cols
}

// Spec says what one product computes: C = op(A)·op(B) (+ C when
// Accumulate). TransA/TransB select op(X) = Xᵀ. Shapes are checked: op(A)
// is M×K, op(B) K×N, C M×N.
type Spec struct {
	C, A, B                    Matrix
	TransA, TransB, Accumulate bool
}

// dims returns M, N, K as op(A) and op(B) give them.
func (s Spec) dims() (m, n, k int) {
	m, k = s.A.Rows, s.A.Cols
	if s.TransA {
		m, k = k, m
	}
	n = s.B.Cols
	if s.TransB {
		n = s.B.Rows
	}
	return m, n, k
}

// Options tune an Op. The zero value chooses everything from the shape and
// the adapter.
type Options struct {
	// Tiling, if its BM is non-zero, fixes the tile shape (BM, BN, BK, TM,
	// TN, WX, Rolled and MMA; the layout fields follow from each product),
	// for tuning and tests. An MMA tiling (the subgroup-matrix engine) needs
	// a runtime with f16, subgroups and subgroup matrices; go-webgpu's
	// compiler rejects it (its Emulated form runs anywhere, for tests).
	Tiling shaders.GemmTiling
	// Split fixes how many parts K is split into: 0 chooses (on GPUs, where
	// C has few tiles and K is long), 1 never splits, n > 1 splits into n
	// parts of whole K steps (fewer where K is short).
	Split int
	// Kernels chooses the FMA or the subgroup-matrix (tensor-core) engine
	// (KernelsAuto: FMA, f32-accurate; see tensorcore.go).
	Kernels Kernels
}

// Op computes matrix products on one device. Safe for concurrent use.
type Op struct {
	dev  *wgpu.Device
	opts Options

	mu      sync.Mutex
	scratch *scratch // the largest live split-K scratch buffer, or nil
}

// New returns an Op on dev that chooses its kernels by shape.
func New(dev *wgpu.Device) *Op { return &Op{dev: dev} }

// NewWithOptions returns an Op on dev with the given options.
func NewWithOptions(dev *wgpu.Device, opts Options) *Op { return &Op{dev: dev, opts: opts} }

// Device is the device the Op runs on.
func (g *Op) Device() *wgpu.Device { return g.dev }

// Launch is a prepared product: its dispatches can be submitted any number
// of times, always together and in order, then Release frees what it owns.
type Launch struct {
	op         *Op
	tiling     shaders.GemmTiling
	split      int
	flops      float64
	params     *wgpu.Buffer
	scratch    *scratch
	dispatches []wgpu.Dispatch
	once       sync.Once
}

// Dispatches returns the launch's dispatches, in order (one, or two for a
// split product), to submit with other work (dev.Run / dev.Submit).
func (l *Launch) Dispatches() []wgpu.Dispatch { return l.dispatches }

// FLOPs is the product's floating-point operations, 2·M·N·K.
func (l *Launch) FLOPs() float64 { return l.flops }

// Tiling describes the kernel the launch runs, e.g. "NT 128x128x16 8x8
// vec:ABC", with " split N" when K is split.
func (l *Launch) Tiling() string {
	s := l.tiling.String()
	if l.split > 1 {
		s += fmt.Sprintf(" split %d", l.split)
	}
	return s
}

// Release frees the launch's parameter buffer and its share of the
// split-K scratch. It is idempotent; the dispatches must not be submitted
// afterwards.
func (l *Launch) Release() {
	l.once.Do(func() {
		l.params.Release()
		if l.scratch != nil {
			l.op.releaseScratch(l.scratch)
		}
		l.dispatches = nil
	})
}

// Run is Prepare + dev.Run + Release, for tests and one-off use.
func (g *Op) Run(ctx context.Context, s Spec) (wgpu.Timing, error) {
	l, err := g.Prepare(s)
	if err != nil {
		return wgpu.Timing{}, err
	}
	defer l.Release()
	t, err := g.dev.Run(ctx, l.dispatches...)
	if err != nil {
		return t, fmt.Errorf("gemm: %s: %w", l.Tiling(), err)
	}
	return t, nil
}

// Prepare validates s, compiles (or fetches) the kernel and returns a
// reusable launch. A launch allocates its small uniform buffer once;
// running it again costs no allocation.
func (g *Op) Prepare(s Spec) (*Launch, error) {
	if err := g.check(s); err != nil {
		return nil, err
	}
	m, n, k := s.dims()
	p, err := g.plan(s)
	if err != nil {
		return nil, err
	}
	l := &Launch{op: g, tiling: p.tiling, split: p.split, flops: 2 * float64(m) * float64(n) * float64(k)}
	if m == 0 || n == 0 {
		// Nothing to compute; a parameter buffer keeps Release uniform.
		l.params, err = wgpu.UploadUniform(g.dev, "gemm params", shaders.GemmParams{}.Words())
		if err != nil {
			return nil, fmt.Errorf("gemm: %w", err)
		}
		return l, nil
	}
	if err := g.build(l, s, p); err != nil {
		l.Release()
		return nil, err
	}
	return l, nil
}

// build compiles the launch's kernels, allocates its parameters and
// scratch, and records its dispatches.
func (g *Op) build(l *Launch, s Spec, p plan) error {
	m, n, k := s.dims()
	lim := g.dev.Limits()
	maxWG := int(lim.MaxWorkgroupsPerDimension)
	gx, gy := ceilDiv(n, p.tiling.BN), ceilDiv(m, p.tiling.BM)
	if gx > maxWG || gy > maxWG || p.split > maxWG {
		return fmt.Errorf("%w: %d×%d×%d needs a grid of %d×%d×%d workgroups; the adapter allows %d per dimension", ErrLimit, m, n, k, gx, gy, p.split, maxWG)
	}
	src, err := p.tiling.Source()
	if err != nil {
		return fmt.Errorf("gemm: %w", err)
	}
	pipe, err := g.dev.Pipeline("gemm "+p.tiling.String(), src, "main")
	if err != nil {
		return fmt.Errorf("gemm: %w", err)
	}
	// The product writes C directly, or its splits' partials to the scratch
	// (dense rows of n, one m×n block per split) for the reduction.
	c, cOff, ldc, zstride := s.C.Buf, s.C.Offset, s.C.stride(), 0
	if p.split > 1 {
		if l.scratch, err = g.acquireScratch(int64(p.split) * int64(m) * int64(n) * 4); err != nil {
			return err
		}
		c, cOff, ldc, zstride = l.scratch.buf, 0, n, m*n
	}
	items := m * ceilDiv(n, 4)
	rgx := min(ceilDiv(items, shaders.GemmReduceThreads), maxWG)
	params := shaders.GemmParams{
		M: uint32(m), N: uint32(n), K: uint32(k), KChunk: uint32(p.kChunk),
		AOff: uint32(s.A.Offset), LDA: uint32(s.A.stride()), BOff: uint32(s.B.Offset), LDB: uint32(s.B.stride()),
		COff: uint32(cOff), LDC: uint32(ldc), SplitStride: uint32(zstride), Splits: uint32(p.split),
		OutOff: uint32(s.C.Offset), LDO: uint32(s.C.stride()), ReduceGridX: uint32(rgx),
	}
	if l.params, err = wgpu.UploadUniform(g.dev, "gemm params", params.Words()); err != nil {
		return fmt.Errorf("gemm: %w", err)
	}
	bufs := []*wgpu.Buffer{l.params}
	if !p.tiling.AliasA {
		bufs = append(bufs, s.A.Buf)
	}
	if !p.tiling.AliasB {
		bufs = append(bufs, s.B.Buf)
	}
	l.dispatches = []wgpu.Dispatch{{
		Label:      "gemm, " + l.Tiling(),
		Pipeline:   pipe,
		Buffers:    append(bufs, c),
		Bindings:   p.tiling.Bindings(),
		Workgroups: [3]uint32{uint32(gx), uint32(gy), uint32(p.split)},
	}}
	if p.split == 1 {
		return nil
	}
	r := shaders.GemmReduce{VecPart: n%4 == 0, VecC: s.C.aligned(), Accumulate: s.Accumulate}
	rsrc, err := r.Source()
	if err != nil {
		return fmt.Errorf("gemm: %w", err)
	}
	rpipe, err := g.dev.Pipeline("gemm "+r.String(), rsrc, "main")
	if err != nil {
		return fmt.Errorf("gemm: %w", err)
	}
	rgy := ceilDiv(ceilDiv(items, shaders.GemmReduceThreads), rgx)
	if rgy > maxWG {
		return fmt.Errorf("%w: the split-K reduction of %d×%d needs %d×%d workgroups; the adapter allows %d per dimension", ErrLimit, m, n, rgx, rgy, maxWG)
	}
	l.dispatches = append(l.dispatches, wgpu.Dispatch{
		Label:      "gemm reduce, " + r.String(),
		Pipeline:   rpipe,
		Buffers:    []*wgpu.Buffer{l.params, l.scratch.buf, s.C.Buf},
		Workgroups: [3]uint32{uint32(rgx), uint32(rgy), 1},
	})
	return nil
}

// check validates the spec: every matrix's layout, the shapes, and that C
// shares no element with A or B.
func (g *Op) check(s Spec) error {
	for _, x := range []struct {
		name string
		m    Matrix
	}{{"C", s.C}, {"A", s.A}, {"B", s.B}} {
		if err := x.m.check(x.name, g.dev); err != nil {
			return err
		}
	}
	m, n, k := s.dims()
	kb := s.B.Rows
	if s.TransB {
		kb = s.B.Cols
	}
	opName := func(name string, t bool) string {
		if t {
			return name + "ᵀ"
		}
		return name
	}
	switch {
	case k != kb:
		return fmt.Errorf("%w: %s is %d×%d but %s is %d×%d (inner dimensions %d and %d)", ErrShape, opName("A", s.TransA), m, k, opName("B", s.TransB), kb, n, k, kb)
	case s.C.Rows != m || s.C.Cols != n:
		return fmt.Errorf("%w: C is %d×%d but %s·%s is %d×%d", ErrShape, s.C.Rows, s.C.Cols, opName("A", s.TransA), opName("B", s.TransB), m, n)
	}
	for _, x := range []struct {
		name string
		m    Matrix
	}{{"A", s.A}, {"B", s.B}} {
		if x.m.Buf == s.C.Buf && overlaps(s.C, x.m) {
			return fmt.Errorf("%w: C %s and %s %s share elements", ErrOverlap, s.C, x.name, x.m)
		}
	}
	return nil
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
