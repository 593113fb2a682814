package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"text/tabwriter"
	"time"

	"github.com/coreattn/coreattn/attention/gpu"

	"github.com/spf13/cobra"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/disagg"
	"github.com/coreattn/coreattn/internal/outfile"
	"github.com/coreattn/coreattn/wgpu"
)

// profileFlags are the flags of `coreattn profile`.
type profileFlags struct {
	adapter                 int
	out                     string
	heads, kvHeads, headDim int
	qLens, kvLens           []int
	forwardOnly             bool
	reps                    int
	newOp                   func(*wgpu.Device) kernels // the operator (nil: gpu.New)
}

func newProfileCmd(g *globalFlags) *cobra.Command {
	f := &profileFlags{}
	cmd := &cobra.Command{
		Use:   "profile",
		Short: "Measure kernel time over a grid of (q_len, kv_len) and write a cost profile",
		Long: `Measures the forward and backward kernels' time per segment over a grid of
segment shapes (q_len queries against kv_len keys, bottom-right causal) on one
adapter and writes it as a disagg.Profile JSON file: the cost model that
coreattn simulate --profile and coreattn bench pool --profile use, and that a
pool.Pool takes per server.

Each cell runs a fused batch of identical segments, sized so that launch
overhead is amortised, and reports the median over --reps rounds of
back-to-back runs (wall clock per run; a lone run timed by GPU timestamps can
read several times too long on a GPU that idles between runs), divided by the
number of segments. On a CPU adapter (lavapipe) the grid and the heads are
scaled down.`,
		Example: `  coreattn profile --out h200.json
  coreattn profile --adapter 1 --heads 32 --kv-heads 8 --head-dim 128 --out igpu.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runProfile(contextOf(cmd.Context()), g, f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.adapter, "adapter", 0, "adapter index (see 'coreattn devices')")
	fl.StringVar(&f.out, "out", "profile.json", "where to write the profile JSON")
	fl.IntVar(&f.heads, "heads", 0, "query heads (0: 2 on CPU adapters, 32 otherwise)")
	fl.IntVar(&f.kvHeads, "kv-heads", 0, "key/value heads (0: same as --heads on CPU adapters, 8 otherwise)")
	fl.IntVar(&f.headDim, "head-dim", 0, "head dimension (0: 64 on CPU adapters, 128 otherwise)")
	fl.IntSliceVar(&f.qLens, "q-lens", nil, "query-length axis, ascending (default: 16,64,256 on CPU adapters, 128,512,2048,8192 otherwise)")
	fl.IntSliceVar(&f.kvLens, "kv-lens", nil, "key-length axis, ascending (default: 64,256,1024 on CPU adapters, 512,2048,8192,32768 otherwise)")
	fl.BoolVar(&f.forwardOnly, "forward-only", false, "measure the forward only (the backward is then predicted as 2.5× the forward)")
	fl.IntVar(&f.reps, "reps", 3, "timed rounds of back-to-back runs per cell, after one warm-up")
	return cmd
}

func runProfile(ctx context.Context, g *globalFlags, f *profileFlags, out, stderr io.Writer) error {
	if err := f.check(); err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	progress := stderr
	if !isTerminal(progress) {
		progress = io.Discard
	}
	dev, err := openAdapter(g, "profile", f.adapter)
	if err != nil {
		return err
	}
	defer dev.Close()
	info := dev.Info()
	cpu := info.IsCPU()
	def := func(v *int, onCPU, onGPU int) {
		if *v == 0 {
			*v = onGPU
			if cpu {
				*v = onCPU
			}
		}
	}
	def(&f.heads, 2, 32)
	def(&f.kvHeads, f.heads, 8)
	def(&f.headDim, 64, 128)
	if f.qLens == nil {
		f.qLens = map[bool][]int{true: {16, 64, 256}, false: {128, 512, 2048, 8192}}[cpu]
	}
	if f.kvLens == nil {
		f.kvLens = map[bool][]int{true: {64, 256, 1024}, false: {512, 2048, 8192, 32768}}[cpu]
	}
	prof := &disagg.Profile{
		Version: disagg.ProfileVersion, Adapter: info.Name, DType: "float32",
		HeadsQ: f.heads, HeadsKV: f.kvHeads, HeadDim: f.headDim, QLens: f.qLens, KVLens: f.kvLens,
		Forward: grid(len(f.qLens), len(f.kvLens)),
	}
	// Check the axes and shapes before measuring anything.
	probe := &attention.Args{CuSeqlensQ: []int32{0, 1}, CuSeqlensK: []int32{0, 1}, NumHeadsQ: f.heads, NumHeadsKV: f.kvHeads, HeadDim: f.headDim, Causal: true}
	if err := probe.Validate(); err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	if err := validAxes(prof); err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	if err := fitAxes(prof, dev.MaxBufferBytes()); err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	if !f.forwardOnly {
		prof.Backward = grid(len(f.qLens), len(f.kvLens))
	}
	// Pair-heads per timed run: enough to amortise launches, little enough
	// that the whole grid takes seconds on lavapipe.
	target := 1e9
	if cpu {
		target = 2e5
	}
	op := newKernels(dev, f.newOp)
	rng := rand.New(rand.NewPCG(11, 3))
	cells := 0
	for _, q := range f.qLens {
		for _, k := range f.kvLens {
			if q <= k {
				cells++
			}
		}
	}
	done := 0
	for i, q := range f.qLens {
		for j, k := range f.kvLens {
			if q > k {
				continue // not a causal segment; the profile holds 0
			}
			done++
			fmt.Fprintf(progress, "\rprofile: cell %d/%d (q_len %d, kv_len %d) ...", done, cells, q, k)
			n := segmentsFor(q, k, f.heads, target, dev, f)
			fwd, bwd, err := profileCell(ctx, op, rng, q, k, n, f)
			fmt.Fprint(progress, "\r\033[K")
			if err != nil {
				return fmt.Errorf("profile: q_len %d, kv_len %d: %w", q, k, err)
			}
			prof.Forward[i][j] = fwd
			if prof.Backward != nil {
				prof.Backward[i][j] = bwd
			}
		}
	}
	err = outfile.WriteAll([]outfile.Output{{Path: outfile.Path{Flag: "out", Name: f.out}, Write: prof.Write}})
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	writeProfileTable(out, prof, f.out)
	return nil
}

// check validates the flags before any adapter is opened.
func (f *profileFlags) check() error {
	switch {
	case f.adapter < 0:
		return flagError("adapter", f.adapter, "want an index >= 0 (see 'coreattn devices')")
	case f.reps < 1 || f.reps > maxReps:
		return flagError("reps", f.reps, "want 1 to %d", maxReps)
	case f.heads < 0:
		return flagError("heads", f.heads, "must not be negative")
	case f.kvHeads < 0:
		return flagError("kv-heads", f.kvHeads, "must not be negative")
	case f.headDim < 0:
		return flagError("head-dim", f.headDim, "must not be negative")
	case len(f.qLens) > maxAxis:
		return flagError("q-lens", len(f.qLens), "points; want at most %d", maxAxis)
	case len(f.kvLens) > maxAxis:
		return flagError("kv-lens", len(f.kvLens), "points; want at most %d", maxAxis)
	}
	return outfile.Check(nil, []outfile.Path{{Flag: "out", Name: f.out}})
}

// fitAxes checks that one segment of every axis length fits a buffer of
// maxBytes (so a cell can run, and its offsets fit int32).
func fitAxes(p *disagg.Profile, maxBytes uint64) error {
	for _, ax := range []struct {
		flag string
		v    []int
		row  int
	}{{"q-lens", p.QLens, p.HeadsQ * p.HeadDim * 4}, {"kv-lens", p.KVLens, p.HeadsKV * p.HeadDim * 4}} {
		for _, x := range ax.v {
			if x > math.MaxInt32 || uint64(x)*uint64(ax.row) > maxBytes {
				return flagError(ax.flag, x, "one segment of %d rows needs %d bytes, more than the adapter's %d per buffer", x, uint64(x)*uint64(ax.row), maxBytes)
			}
		}
	}
	return nil
}

func grid(rows, cols int) [][]float64 {
	g := make([][]float64, rows)
	for i := range g {
		g[i] = make([]float64, cols)
	}
	return g
}

// validAxes checks the grid axes the way Profile.Validate will, before any
// cell is measured.
func validAxes(p *disagg.Profile) error {
	for _, ax := range []struct {
		name string
		v    []int
	}{{"--q-lens", p.QLens}, {"--kv-lens", p.KVLens}} {
		if len(ax.v) == 0 {
			return fmt.Errorf("%s is empty", ax.name)
		}
		for i, x := range ax.v {
			if x <= 0 || (i > 0 && x <= ax.v[i-1]) {
				return fmt.Errorf("%s %v: want positive lengths in ascending order", ax.name, ax.v)
			}
		}
	}
	if p.QLens[0] > p.KVLens[0] {
		return fmt.Errorf("--q-lens starts at %d, above --kv-lens' first %d: that column could not be measured", p.QLens[0], p.KVLens[0])
	}
	return nil
}

// segmentsFor picks how many identical segments a cell's fused batch holds:
// about target pair-heads of work, within the device's buffer limit.
func segmentsFor(q, k, heads int, target float64, dev *wgpu.Device, f *profileFlags) int {
	work := float64(disagg.CausalPairs(q, k)) * float64(heads)
	n := max(1, int(target/work))
	limit := dev.MaxBufferBytes() / 2
	rowQ, rowK := uint64(f.heads*f.headDim*4), uint64(f.kvHeads*f.headDim*4)
	n = min(n, max(1, int(limit/(uint64(q)*rowQ))), max(1, int(limit/(uint64(k)*rowK))))
	return min(n, 4096)
}

// profileCell times n segments of q queries against k keys and returns the
// seconds per segment of the forward and (0 when not measured) the backward.
func profileCell(ctx context.Context, op kernels, rng *rand.Rand, q, k, n int, f *profileFlags) (fwd, bwd float64, err error) {
	dev := op.Device()
	a := &attention.Args{NumHeadsQ: f.heads, NumHeadsKV: f.kvHeads, HeadDim: f.headDim, Causal: true}
	a.CuSeqlensQ, a.CuSeqlensK = make([]int32, n+1), make([]int32, n+1)
	for b := range n {
		a.CuSeqlensQ[b+1], a.CuSeqlensK[b+1] = a.CuSeqlensQ[b]+int32(q), a.CuSeqlensK[b]+int32(k)
	}
	nq, nk := a.TotalQ()*f.heads*f.headDim, a.TotalK()*f.kvHeads*f.headDim
	var bufs []*wgpu.Buffer
	defer func() {
		for _, b := range bufs {
			b.Release()
		}
	}()
	buf := func(name string, n int, random bool) (*wgpu.Buffer, error) {
		var b *wgpu.Buffer
		var err error
		if random {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			b, err = wgpu.Upload(dev, name, x)
		} else {
			b, err = dev.NewBuffer(name, uint64(n)*4)
		}
		if err == nil {
			bufs = append(bufs, b)
		}
		return b, err
	}
	var ft gpu.ForwardTensors
	for _, x := range []struct {
		dst    **wgpu.Buffer
		name   string
		n      int
		random bool
	}{{&ft.Q, "q", nq, true}, {&ft.K, "k", nk, true}, {&ft.V, "v", nk, true}, {&ft.O, "o", nq, false}, {&ft.LSE, "lse", f.heads * a.TotalQ(), false}} {
		if *x.dst, err = buf(x.name, x.n, x.random); err != nil {
			return 0, 0, err
		}
	}
	call, err := op.PrepareForward(a, ft)
	if err != nil {
		return 0, 0, err
	}
	defer call.Release()
	if fwd, err = cellTime(ctx, dev, call.Dispatches(), f.reps); err != nil {
		return 0, 0, err
	}
	fwd /= float64(n)
	if f.forwardOnly {
		return fwd, 0, nil
	}
	bt := gpu.BackwardTensors{Q: ft.Q, K: ft.K, V: ft.V, O: ft.O, LSE: ft.LSE}
	for _, x := range []struct {
		dst    **wgpu.Buffer
		name   string
		n      int
		random bool
	}{{&bt.DO, "do", nq, true}, {&bt.DQ, "dq", nq, false}, {&bt.DK, "dk", nk, false}, {&bt.DV, "dv", nk, false}} {
		if *x.dst, err = buf(x.name, x.n, x.random); err != nil {
			return 0, 0, err
		}
	}
	bcall, err := op.PrepareBackward(a, bt)
	if err != nil {
		return 0, 0, err
	}
	defer bcall.Release()
	if bwd, err = cellTime(ctx, dev, bcall.Dispatches(), f.reps); err != nil {
		return 0, 0, err
	}
	return fwd, bwd / float64(n), nil
}

// writeProfileTable prints the measured grid.
func writeProfileTable(w io.Writer, p *disagg.Profile, path string) {
	fmt.Fprintf(w, "profile of %s, Hq=%d Hkv=%d D=%d, written to %s\n", p.Adapter, p.HeadsQ, p.HeadsKV, p.HeadDim, path)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "q_len\tkv_len\tforward ms\tforward TFLOP/s\tbackward ms\tbackward TFLOP/s\t")
	for i, q := range p.QLens {
		for j, k := range p.KVLens {
			if q > k {
				continue
			}
			flops := 4 * float64(p.HeadDim*p.HeadsQ) * float64(disagg.CausalPairs(q, k))
			fwd := p.Forward[i][j]
			bms, btf := "-", "-"
			if p.Backward != nil {
				b := p.Backward[i][j]
				bms, btf = fmt.Sprintf("%.4f", b*1e3), fmt.Sprintf("%.4g", flops*disagg.BackwardFLOPFactor/b/1e12)
			}
			fmt.Fprintf(tw, "%d\t%d\t%.4f\t%.4g\t%s\t%s\t\n", q, k, fwd*1e3, flops/fwd/1e12, bms, btf)
		}
	}
	tw.Flush()
}

// cellTime is the seconds of one run of a profile cell: the median of rounds
// of back-to-back runs (see timeRuns).
func cellTime(ctx context.Context, dev *wgpu.Device, ds []wgpu.Dispatch, rounds int) (float64, error) {
	t, err := timeRuns(ctx, dev, ds, rounds, 0, 300*time.Millisecond)
	if err != nil {
		return 0, err
	}
	return max(t.d, time.Nanosecond).Seconds(), nil
}
