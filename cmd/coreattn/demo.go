package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/coreattn/coreattn/attention/gpu"

	"github.com/spf13/cobra"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/wgpu"
)

// demoTolerance is the largest relative error (O, dQ, dK, dV) and absolute
// error (LSE) the demo accepts against the float64 reference.
const demoTolerance = 1e-4

// demoRefBudget bounds the forward FLOPs the float64 CPU reference is asked
// to recompute; beyond it the demo checks a subset of the segments (each
// segment is independent of the others, so a subset is an exact check of
// those rows).
const demoRefBudget = 5e9

type demoFlags struct {
	adapter int
	seed    uint64
	tokens  int
	newOp   func(*wgpu.Device) kernels // the operator (nil: gpu.New)
	check   bool
	// The training demo's.
	steps, ranks, tokensPerRank int
}

// demoSize is the problem the demo runs on one kind of adapter.
type demoSize struct {
	tokens, hq, hkv, d int
}

var (
	demoSizeCPU = demoSize{tokens: 2048, hq: 8, hkv: 2, d: 64}
	demoSizeGPU = demoSize{tokens: 16384, hq: 16, hkv: 4, d: 128}
)

func newDemoCmd(g *globalFlags) *cobra.Command {
	f := &demoFlags{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Train the tiny model with core attention disaggregated over the local adapters (--check: one attention batch against the CPU reference)",
		Long: `Trains the tiny byte-level model for a few steps on the Go distribution's
sources with core attention disaggregation: 4 logical ranks when there is one
adapter (one per adapter, at least 4, otherwise), each running the linear
layers on its share of every step while the CAD plan balances core attention
over the ranks' attention servers. It prints the loss falling and, for the
last steps, every rank's attention time under packing (every rank computes
its own rows) and under CAD, on the same batches and weights, with the
imbalance measured and predicted, and the loss both give.

--check runs the attention operator instead: a packed varlen batch the way a
CAD attention server sees one (whole documents of mixed lengths, CA-task
shards whose queries see a longer KV prefix, an empty query segment, GQA 4:1),
forward and backward, every output checked against the float64 CPU
reference; it exits non-zero if any relative error exceeds 1e-4. On a
software adapter (lavapipe) that batch has 2048 query tokens, 8 query heads
and D=64; on a GPU 16384 tokens, 16 heads and D=128.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := contextOf(cmd.Context())
			if f.check {
				return runDemo(ctx, g, f, cmd.OutOrStdout())
			}
			if cmd.Flags().Changed("tokens") {
				return fmt.Errorf("demo: --tokens sizes --check's batch (the training demo takes --tokens-per-rank)")
			}
			return runDemoTrain(ctx, g, f, cmd, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().BoolVar(&f.check, "check", false, "run one packed attention batch, forward and backward, checked against the float64 reference")
	cmd.Flags().IntVar(&f.adapter, "adapter", 0, "adapter index (see coreattn devices; 0 is the best); the training demo then uses it alone")
	cmd.Flags().Uint64Var(&f.seed, "seed", 1, "seed of the weights and the data order (--check: of the batch)")
	cmd.Flags().IntVar(&f.tokens, "tokens", 0, "--check: query tokens in the batch (0: 2048 on a CPU adapter, 16384 on a GPU)")
	cmd.Flags().IntVar(&f.steps, "steps", 24, "training steps")
	cmd.Flags().IntVar(&f.ranks, "ranks", 0, "trainer ranks (0: 4, or one per adapter where there are more)")
	cmd.Flags().IntVar(&f.tokensPerRank, "tokens-per-rank", 0, "tokens of each rank per step (0: 256 on a CPU adapter, 2048 on a GPU)")
	return cmd
}

// demoSegment is one segment of the demo batch.
type demoSegment struct {
	q, k int
	kind string // "doc", "shard" or "empty"
}

// demoBatch packs exactly tokens query rows into segments: two CA-task
// shards (a quarter of a document's queries over the KV prefix that ends with
// them), one segment with keys but no queries, a document of at most 16
// tokens, and documents of log-uniformly mixed lengths filling the rest, in a
// shuffled order. It is deterministic in rng; tokens must be at least 32.
func demoBatch(tokens int, rng *rand.Rand) []demoSegment {
	var segs []demoSegment
	rest := tokens
	for range 2 {
		doc := tokens/8 + rng.IntN(tokens/8+1)
		q := max(1, doc/4)
		k := q * (2 + rng.IntN(3)) // the 2nd, 3rd or 4th quarter of the document
		segs = append(segs, demoSegment{q: q, k: k, kind: "shard"})
		rest -= q
	}
	segs = append(segs, demoSegment{q: 0, k: 1 + rng.IntN(64), kind: "empty"})
	short := 1 + rng.IntN(16) // a document of a few tokens, down to one
	segs = append(segs, demoSegment{q: short, k: short, kind: "doc"})
	rest -= short
	lo, hi := max(1.0, float64(rest)/32), max(1.0, float64(rest)/3)
	for rest > 0 {
		n := int(math.Round(lo * math.Pow(hi/lo, rng.Float64())))
		if n >= rest || rest-n < int(lo) {
			n = rest
		}
		segs = append(segs, demoSegment{q: n, k: n, kind: "doc"})
		rest -= n
	}
	rng.Shuffle(len(segs), func(i, j int) { segs[i], segs[j] = segs[j], segs[i] })
	return segs
}

func runDemo(ctx context.Context, g *globalFlags, f *demoFlags, out io.Writer) error {
	if f.tokens != 0 && f.tokens < 32 {
		return fmt.Errorf("demo: --tokens %d: want at least 32 (or 0 for the default)", f.tokens)
	}
	if f.tokens > math.MaxInt32/2 {
		return fmt.Errorf("demo: --tokens %d: too many", f.tokens)
	}
	dev, err := openAdapter(g, "demo", f.adapter)
	if err != nil {
		return err
	}
	defer dev.Close()
	info := dev.Info()
	size := demoSizeGPU
	if info.IsCPU() {
		size = demoSizeCPU
	}
	// WebGPU caps a single buffer (often at 256 MiB); the default batch
	// shrinks to fit, an explicit --tokens that does not fit is an error.
	rowBytes := uint64(size.hq * size.d * 4)
	if f.tokens != 0 {
		size.tokens = f.tokens
		if uint64(f.tokens)*rowBytes > dev.MaxBufferBytes() {
			return fmt.Errorf("demo: --tokens %d: q needs %s, more than the adapter's %s per buffer",
				f.tokens, byteSize(uint64(f.tokens)*rowBytes), byteSize(dev.MaxBufferBytes()))
		}
	}
	for size.tokens > 2048 && uint64(size.tokens)*rowBytes*2 > dev.MaxBufferBytes() {
		size.tokens /= 2
	}

	rng := rand.New(rand.NewPCG(f.seed, 0xde70))
	segs := demoBatch(size.tokens, rng)
	a := &attention.Args{CuSeqlensQ: []int32{0}, CuSeqlensK: []int32{0},
		NumHeadsQ: size.hq, NumHeadsKV: size.hkv, HeadDim: size.d, Causal: true}
	counts := map[string]int{}
	for _, s := range segs {
		a.CuSeqlensQ = append(a.CuSeqlensQ, int32(a.TotalQ()+s.q))
		a.CuSeqlensK = append(a.CuSeqlensK, int32(a.TotalK()+s.k))
		counts[s.kind]++
	}
	if err := a.Validate(); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if b := uint64(a.TotalK()) * uint64(size.hkv*size.d*4); b > dev.MaxBufferBytes() {
		return fmt.Errorf("demo: --tokens %d: k needs %s, more than the adapter's %s per buffer",
			size.tokens, byteSize(b), byteSize(dev.MaxBufferBytes()))
	}
	tq, tk := a.TotalQ(), a.TotalK()
	nq, nk := tq*size.hq*size.d, tk*size.hkv*size.d
	q, k, v, do := randn(rng, nq), randn(rng, nk), randn(rng, nk), randn(rng, nq)

	fmt.Fprintf(out, "coreattn demo: packed varlen core attention, checked against the float64 CPU reference\n")
	fmt.Fprintf(out, "adapter   %s\n", info)
	fmt.Fprintf(out, "batch     %d segments: %d documents, %d CA-task shards (q_len < k_len), %d empty query segment; causal (bottom-right)\n",
		len(segs), counts["doc"], counts["shard"], counts["empty"])
	lens := make([]string, len(segs))
	for i, s := range segs {
		lens[i] = fmt.Sprintf("%d/%d", s.q, s.k)
	}
	fmt.Fprintf(out, "segments  q_len/k_len %s\n", strings.Join(lens, " "))
	fmt.Fprintf(out, "shapes    q %s  k,v %s  o %s  lse %s  %s D=%d\n",
		shapeString(tq, size.hq, size.d), shapeString(tk, size.hkv, size.d),
		shapeString(tq, size.hq, size.d), shapeString(size.hq, tq), gqaString(a), size.d)

	chk := newDemoCheck(a, demoRefBudget)
	if err := chk.reference(q, k, v, do); err != nil {
		return fmt.Errorf("demo: reference: %w", err)
	}

	var bufs []*wgpu.Buffer
	defer func() {
		for _, b := range bufs {
			b.Release()
		}
	}()
	upload := func(name string, x []float32) (*wgpu.Buffer, error) {
		b, err := wgpu.Upload(dev, name, x)
		if err != nil {
			return nil, fmt.Errorf("demo: upload %s: %w", name, err)
		}
		bufs = append(bufs, b)
		return b, nil
	}
	nan := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(math.NaN())
		}
		return x
	}
	ft := gpu.ForwardTensors{}
	for _, t := range []struct {
		dst  **wgpu.Buffer
		name string
		data []float32
	}{{&ft.Q, "q", q}, {&ft.K, "k", k}, {&ft.V, "v", v}, {&ft.O, "o", nan(nq)}, {&ft.LSE, "lse", nan(size.hq * tq)}} {
		if *t.dst, err = upload(t.name, t.data); err != nil {
			return err
		}
	}
	op := newKernels(dev, f.newOp)
	fwd, err := op.PrepareForward(a, ft)
	if err != nil {
		return fmt.Errorf("demo: forward: %w", err)
	}
	defer fwd.Release()
	tFwd, err := timeRuns(ctx, dev, fwd.Dispatches(), 3, 0, time.Second)
	if err != nil {
		return fmt.Errorf("demo: forward: %w", err)
	}
	o, lse := make([]float32, nq), make([]float32, size.hq*tq)
	if err := wgpu.Download(ctx, ft.O, o); err != nil {
		return fmt.Errorf("demo: read o: %w", err)
	}
	if err := wgpu.Download(ctx, ft.LSE, lse); err != nil {
		return fmt.Errorf("demo: read lse: %w", err)
	}
	errO, errLSE := chk.forward(o, lse)
	okFwd := errO <= demoTolerance && errLSE <= demoTolerance
	fmt.Fprintf(out, "forward   %.3f ms  %.4g TFLOP/s  (%.3g GFLOP; %s)\n", ms(tFwd.d), tflops(a.FLOPs(), tFwd.d), a.FLOPs()/1e9, tFwd)
	fmt.Fprintf(out, "          O rel err %.1e, LSE abs err %.1e (%s): %s\n", errO, errLSE, chk.coverage(), okString(okFwd))

	bt := gpu.BackwardTensors{Q: ft.Q, K: ft.K, V: ft.V, O: ft.O, LSE: ft.LSE}
	for _, t := range []struct {
		dst  **wgpu.Buffer
		name string
		data []float32
	}{{&bt.DO, "do", do}, {&bt.DQ, "dq", nan(nq)}, {&bt.DK, "dk", nan(nk)}, {&bt.DV, "dv", nan(nk)}} {
		if *t.dst, err = upload(t.name, t.data); err != nil {
			return err
		}
	}
	bwd, err := op.PrepareBackward(a, bt)
	if err != nil {
		return fmt.Errorf("demo: backward: %w", err)
	}
	defer bwd.Release()
	tBwd, err := timeRuns(ctx, dev, bwd.Dispatches(), 3, 0, time.Second)
	if err != nil {
		return fmt.Errorf("demo: backward: %w", err)
	}
	dq, dk, dv := make([]float32, nq), make([]float32, nk), make([]float32, nk)
	for _, t := range []struct {
		b   *wgpu.Buffer
		dst []float32
	}{{bt.DQ, dq}, {bt.DK, dk}, {bt.DV, dv}} {
		if err := wgpu.Download(ctx, t.b, t.dst); err != nil {
			return fmt.Errorf("demo: read %s: %w", t.b.Label(), err)
		}
	}
	eq, ek, ev, err := chk.backward(dq, dk, dv)
	if err != nil {
		return fmt.Errorf("demo: reference backward: %w", err)
	}
	okBwd := eq <= demoTolerance && ek <= demoTolerance && ev <= demoTolerance
	bf := 2.5 * a.FLOPs() // FlashAttention's convention: backward = 2.5x forward
	fmt.Fprintf(out, "backward  %.3f ms  %.4g TFLOP/s  (%.3g GFLOP = 2.5x forward; %s)\n", ms(tBwd.d), tflops(bf, tBwd.d), bf/1e9, tBwd)
	fmt.Fprintf(out, "          dQ rel err %.1e, dK %.1e, dV %.1e (%s): %s\n", eq, ek, ev, chk.coverage(), okString(okBwd))
	fmt.Fprintf(out, "fwd+bwd   %.3f ms  %.4g TFLOP/s\n", ms(tFwd.d+tBwd.d), tflops(3.5*a.FLOPs(), tFwd.d+tBwd.d))
	if !okFwd || !okBwd {
		return fmt.Errorf("demo: FAIL: an error exceeds %.0e against the float64 reference", demoTolerance)
	}
	fmt.Fprintln(out, "PASS")
	return nil
}

func okString(ok bool) string {
	if ok {
		return "ok"
	}
	return "FAIL"
}

func randn(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// demoCheck compares results on a subset of the segments with the float64
// reference computed for just those segments.
type demoCheck struct {
	full         *attention.Args
	sub          attention.Args
	segs         []int     // checked segments, in order
	qRows, kRows [][2]int  // their row ranges in the full batch
	q, k, v, do  []float32 // the checked segments' inputs
	refO, refLSE []float64
}

// newDemoCheck picks the segments to check: all of them if the reference's
// FLOPs fit budget, else the cheapest ones that fit (and always at least one).
func newDemoCheck(a *attention.Args, budget float64) *demoCheck {
	c := &demoCheck{full: a}
	idx := make([]int, a.Batch())
	cost := make([]float64, a.Batch())
	for b := range idx {
		idx[b] = b
		one := segmentArgs(a, []int{b})
		cost[b] = one.FLOPs()
	}
	slices.SortStableFunc(idx, func(x, y int) int { return cmp.Compare(cost[x], cost[y]) })
	used := 0.0
	for i, b := range idx {
		if i > 0 && used+cost[b] > budget {
			break
		}
		used += cost[b]
		c.segs = append(c.segs, b)
	}
	slices.Sort(c.segs)
	for _, b := range c.segs {
		c.qRows = append(c.qRows, [2]int{int(a.CuSeqlensQ[b]), int(a.CuSeqlensQ[b+1])})
		c.kRows = append(c.kRows, [2]int{int(a.CuSeqlensK[b]), int(a.CuSeqlensK[b+1])})
	}
	c.sub = segmentArgs(a, c.segs)
	return c
}

// segmentArgs returns the arguments of the given segments of a alone.
func segmentArgs(a *attention.Args, segs []int) attention.Args {
	s := *a
	s.CuSeqlensQ, s.CuSeqlensK = []int32{0}, []int32{0}
	for _, b := range segs {
		s.CuSeqlensQ = append(s.CuSeqlensQ, s.CuSeqlensQ[len(s.CuSeqlensQ)-1]+a.CuSeqlensQ[b+1]-a.CuSeqlensQ[b])
		s.CuSeqlensK = append(s.CuSeqlensK, s.CuSeqlensK[len(s.CuSeqlensK)-1]+a.CuSeqlensK[b+1]-a.CuSeqlensK[b])
	}
	return s
}

func (c *demoCheck) coverage() string {
	return fmt.Sprintf("%d/%d segments checked", len(c.segs), c.full.Batch())
}

// gather concatenates the given row ranges of a [rows, width] tensor.
func gather(x []float32, rows [][2]int, width int) []float32 {
	var out []float32
	for _, r := range rows {
		out = append(out, x[r[0]*width:r[1]*width]...)
	}
	return out
}

// gatherLSE takes the given query rows of an [Hq, total_q] LSE.
func (c *demoCheck) gatherLSE(lse []float32) []float32 {
	tq := c.full.TotalQ()
	var out []float32
	for h := range c.full.NumHeadsQ {
		for _, r := range c.qRows {
			out = append(out, lse[h*tq+r[0]:h*tq+r[1]]...)
		}
	}
	return out
}

// reference computes the float64 reference forward of the checked segments
// and keeps their inputs for the backward.
func (c *demoCheck) reference(q, k, v, do []float32) error {
	a := c.full
	wq, wk := a.NumHeadsQ*a.HeadDim, a.NumHeadsKV*a.HeadDim
	c.q, c.k, c.v, c.do = gather(q, c.qRows, wq), gather(k, c.kRows, wk), gather(v, c.kRows, wk), gather(do, c.qRows, wq)
	var err error
	c.refO, c.refLSE, err = attention.ReferenceForward(&c.sub, c.q, c.k, c.v)
	return err
}

// forward returns the relative error of O and the largest absolute error of LSE.
func (c *demoCheck) forward(o, lse []float32) (errO, errLSE float64) {
	w := c.full.NumHeadsQ * c.full.HeadDim
	return attention.RelError(gather(o, c.qRows, w), c.refO), maxAbsErr(c.gatherLSE(lse), c.refLSE)
}

// backward computes the float64 reference gradients of the checked segments
// and returns the relative errors of dQ, dK and dV.
func (c *demoCheck) backward(dq, dk, dv []float32) (eq, ek, ev float64, err error) {
	refDQ, refDK, refDV, err := attention.ReferenceBackward(&c.sub, c.q, c.k, c.v, c.do)
	if err != nil {
		return 0, 0, 0, err
	}
	wq, wk := c.full.NumHeadsQ*c.full.HeadDim, c.full.NumHeadsKV*c.full.HeadDim
	return attention.RelError(gather(dq, c.qRows, wq), refDQ),
		attention.RelError(gather(dk, c.kRows, wk), refDK),
		attention.RelError(gather(dv, c.kRows, wk), refDV), nil
}
