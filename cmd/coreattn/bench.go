package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/coreattn/coreattn/attention/gpu"

	"github.com/spf13/cobra"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/attention/tc"
	"github.com/coreattn/coreattn/shaders"
	"github.com/coreattn/coreattn/wgpu"
)

// benchShape is one benchmark problem: a varlen batch and its label, which
// matches the `shape` key of scripts/sdpa_anchor.py where the two
// describe the same problem.
type benchShape struct {
	label string
	args  *attention.Args
}

// denseShape is one causal sequence of s tokens, h heads of dimension d.
func denseShape(s, d, h int) benchShape {
	return benchShape{
		label: fmt.Sprintf("S%d D%d H%d causal", s, d, h),
		args: &attention.Args{
			CuSeqlensQ: []int32{0, int32(s)}, CuSeqlensK: []int32{0, int32(s)},
			NumHeadsQ: h, NumHeadsKV: h, HeadDim: d, Causal: true,
		},
	}
}

// caTaskShape is a fused batch of CA-tasks (query shards with their KV
// prefixes) drawn the way sdpa_anchor.py draws them: shards of 128..1024
// query rows over prefixes of 256..16384 keys until total query rows reach
// total, or until K would outgrow maxBytes (WebGPU caps one buffer, often
// at 256 MiB, so the batch keeps fewer heads than the anchor's H32).
func caTaskShape(total, d, h int, maxBytes uint64, seed uint64) benchShape {
	rng := rand.New(rand.NewPCG(seed, 0xca))
	kvs := []int{256, 512, 1024, 2048, 4096, 8192, 16384}
	qs := []int{128, 256, 512, 1024}
	a := &attention.Args{CuSeqlensQ: []int32{0}, CuSeqlensK: []int32{0}, NumHeadsQ: h, NumHeadsKV: h, HeadDim: d, Causal: true}
	for a.TotalQ() < total {
		kv := kvs[rng.IntN(len(kvs))]
		q := min(qs[rng.IntN(len(qs))], kv)
		if uint64(a.TotalK()+kv)*uint64(h*d*4) > maxBytes {
			break
		}
		a.CuSeqlensQ = append(a.CuSeqlensQ, int32(a.TotalQ()+q))
		a.CuSeqlensK = append(a.CuSeqlensK, int32(a.TotalK()+kv))
	}
	return benchShape{
		label: fmt.Sprintf("%d CA-tasks q_total=%d kv_total=%d D%d H%d causal-bottom-right", a.Batch(), a.TotalQ(), a.TotalK(), d, h),
		args:  a,
	}
}

// benchShapes are the shapes; on a CPU adapter they are scaled down
// (sequence /8, heads /8) so that a run takes seconds, not hours.
func benchShapes(cpu bool, maxBytes uint64) []benchShape {
	if cpu {
		return []benchShape{denseShape(512, 64, 4), denseShape(1024, 128, 4), denseShape(2048, 128, 2), caTaskShape(2048, 128, 4, maxBytes, 1)}
	}
	return []benchShape{denseShape(4096, 64, 32), denseShape(8192, 128, 32), denseShape(16384, 128, 16), caTaskShape(32768, 128, 8, maxBytes, 1)}
}

// benchResult is one line of `coreattn bench --json`; its keys match
// sdpa_anchor.py's so the two can be joined on (pass, shape).
type benchResult struct {
	Impl    string  `json:"impl"`
	Adapter string  `json:"adapter"`
	Runtime string  `json:"runtime"` // the WebGPU runtime: go-webgpu or dawn
	Kernels string  `json:"kernels"` // the kernels that ran: ffma or tensor-core
	DType   string  `json:"dtype"`
	Pass    string  `json:"pass"`
	Shape   string  `json:"shape"`
	MS      float64 `json:"ms"`
	TFLOPS  float64 `json:"tflops"`
	GPUMS   float64 `json:"gpu_ms,omitempty"` // timestamp-query time of one run
	// KernelMS splits GPUMS by kernel: dispatch labels up to a comma (the
	// passes of one kernel summed), for locating the time.
	KernelMS map[string]float64 `json:"kernel_ms,omitempty"`
	Tiling   string             `json:"tiling,omitempty"`
}

type benchFlags struct {
	adapter int
	json    bool
	reps    int
	pass    string
	dtypes  string
	tiling  string
	fwdWX   int
	transp  bool
	rowRegs bool
	dqTile  string
	dkvTile string
	dq      string
	splitKV int
	dsMiB   int
	rolled  bool
	shapes  string
	kernels string
	unsafe  bool
	tcSweep int
}

func newBenchCmd(g *globalFlags) *cobra.Command {
	f := &benchFlags{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure attention throughput (TFLOP/s) at the standard shapes",
		Long: `Measures forward and forward+backward throughput at S4096/D64/H32,
S8192/D128/H32, S16384/D128/H16 (causal, one segment) and a fused varlen
batch of CA-tasks (D128, H8: query shards of 128..1024 rows over KV
prefixes of 256..16384 keys). FLOPs are 4·D·Hq·(unmasked query-key pairs)
for the forward and 3.5× that for forward+backward. On a CPU adapter the
shapes are scaled down. Each cell runs back to back, untimed, for about a
second (so that a GPU that idled while its pipelines were built is at
speed again), then reports the median of 5 rounds of back-to-back runs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBench(cmd.Context(), g, f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().IntVar(&f.adapter, "adapter", 0, "adapter index (see 'coreattn devices')")
	cmd.Flags().BoolVar(&f.json, "json", false, "print one JSON object per line")
	cmd.Flags().IntVar(&f.reps, "reps", 0, "runs per timing round (0: enough for about 0.2 s)")
	cmd.Flags().StringVar(&f.pass, "pass", "all", "fwd, fwd+bwd, or all")
	cmd.Flags().StringVar(&f.dtypes, "dtype", "f32", "storage types to measure, comma-separated: f32, f16, bf16")
	cmd.Flags().StringVar(&f.tiling, "fwd-tiling", "", "force the forward tiling as TX,TY,RM,KC,VC (for tuning), e.g. 16,8,8,32,16")
	cmd.Flags().IntVar(&f.fwdWX, "fwd-wx", 0, "with --fwd-tiling: threads along keys per 32-lane group (8, or TX for the row-major layout)")
	cmd.Flags().BoolVar(&f.transp, "transposed", false, "with a forced tiling: stage the products' operands transposed (four 4-byte stores per vec4; what the forward chooses for D64 at 384 threads and for half storage)")
	cmd.Flags().StringVar(&f.dqTile, "dq-tiling", "", "force the backward dQ kernel's tiling as TX,TY,RM,KC,VC (for tuning)")
	cmd.Flags().StringVar(&f.dkvTile, "dkv-tiling", "", "force the backward dK/dV kernel's tiling as TX,TY,RM,KC,VC (for tuning)")
	cmd.Flags().BoolVar(&f.rowRegs, "row-regs", false, "with --dkv-tiling: hold the dK/dV kernel's K and V rows in registers (what it chooses for D <= 64)")
	cmd.Flags().StringVar(&f.dq, "dq", "auto", "how the backward computes dQ: fused (into the dK/dV kernel), separate, stored (dS stored for a dQ kernel), or auto")
	cmd.Flags().IntVar(&f.splitKV, "split-kv", 0, "forward split-KV piece in keys: 0 where the work calls for it, -1 never")
	cmd.Flags().IntVar(&f.dsMiB, "ds-scratch", 0, "with --dq stored: the dS scratch cap in MiB (0: the default, 2048, or the adapter's limit)")
	cmd.Flags().BoolVar(&f.rolled, "fwd-rolled", false, "leave the forward's loops to the driver instead of unrolling them (for tuning)")
	cmd.Flags().StringVar(&f.shapes, "shapes", "", "only shapes whose label contains this text, e.g. S8192")
	cmd.Flags().StringVar(&f.kernels, "kernels", "auto", "kernel family: auto (tensor cores for f16 where the adapter has f16->f32 subgroup matrices), ffma, or tensor-core (f16 products, f32 accumulation; f32 inputs converted on the device)")
	cmd.Flags().BoolVar(&f.unsafe, "no-robustness", false, "Dawn: turn off its bounds checks on buffer accesses and its zeroing of workgroup memory (faster; how docs/tensorcores.md measures); go-webgpu ignores it")
	cmd.Flags().IntVar(&f.tcSweep, "tc-sweep", 0, "with --kernels tensor-core: measure the first N tilings of the preferred matrix shape and the first of every other shape, forward tilings for fwd and backward tilings for fwd+bwd (0: the chosen tilings only)")
	cmd.AddCommand(newBenchPoolCmd(g), newBenchShardsCmd(g))
	cmd.AddCommand(newBenchGemmCmd(g))
	cmd.AddCommand(newBenchTransferCmd(g))
	return cmd
}

// isTerminal reports whether w is a terminal, where a progress line that
// rewrites itself is welcome.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func runBench(ctx context.Context, g *globalFlags, f *benchFlags, out, progress io.Writer) error {
	if !isTerminal(progress) {
		progress = io.Discard
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if err := f.check(); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	var dtypes []attention.DType
	for _, name := range strings.Split(f.dtypes, ",") {
		dt, err := attention.ParseDType(strings.TrimSpace(name))
		if err != nil {
			return fmt.Errorf("bench: --dtype %q: want a comma-separated list of f32, f16, bf16", f.dtypes)
		}
		dtypes = append(dtypes, dt)
	}
	wopts := g.options()
	wopts.DisableRobustness = f.unsafe
	dev, err := openAdapterWith(wopts, "bench", f.adapter)
	if err != nil {
		return err
	}
	defer dev.Close()
	var opts gpu.Options
	if opts.Kernels, err = gpu.ParseKernels(cmp.Or(f.kernels, "auto")); err != nil {
		return fmt.Errorf("bench: %w", flagError("kernels", fmt.Sprintf("%q", f.kernels), "want auto, ffma or tensor-core"))
	}
	var tcDev tc.Device
	if opts.Kernels == gpu.KernelsTensorCore {
		if tcDev, err = gpu.TensorCoreDevice(dev.Info()); err != nil {
			return fmt.Errorf("bench: --kernels tensor-core: %w", err)
		}
	}
	for _, x := range []struct {
		flag, val          string
		tx, ty, rm, kc, vc *int
	}{
		{"--fwd-tiling", f.tiling, &opts.ForwardTiling.TX, &opts.ForwardTiling.TY, &opts.ForwardTiling.RM, &opts.ForwardTiling.KC, &opts.ForwardTiling.VC},
		{"--dq-tiling", f.dqTile, &opts.BackwardDQ.TX, &opts.BackwardDQ.TY, &opts.BackwardDQ.RM, &opts.BackwardDQ.KC, &opts.BackwardDQ.VC},
		{"--dkv-tiling", f.dkvTile, &opts.BackwardDKV.TX, &opts.BackwardDKV.TY, &opts.BackwardDKV.RM, &opts.BackwardDKV.KC, &opts.BackwardDKV.VC},
	} {
		if x.val == "" {
			continue
		}
		if err := parseTiling(x.val, x.tx, x.ty, x.rm, x.kc, x.vc); err != nil {
			return fmt.Errorf("bench: %s %q: %w", x.flag, x.val, err)
		}
	}
	if f.fwdWX != 0 {
		opts.ForwardTiling.WX = f.fwdWX
	}
	if f.transp {
		if f.tiling == "" && f.dqTile == "" && f.dkvTile == "" {
			return fmt.Errorf("bench: --transposed applies to a forced tiling: give --fwd-tiling, --dq-tiling or --dkv-tiling")
		}
		opts.ForwardTiling.TransposedK = true
		opts.BackwardDQ.Transposed = true
		opts.BackwardDKV.Transposed = true
	}
	if f.rowRegs {
		if f.dkvTile == "" {
			return fmt.Errorf("bench: --row-regs applies to a forced dK/dV tiling: give --dkv-tiling")
		}
		opts.BackwardDKV.RowRegs = true
	}
	if opts.DQ, err = gpu.ParseDQMode(f.dq); err != nil {
		return fmt.Errorf("bench: --dq: %w", err)
	}
	if f.rolled {
		if opts.ForwardTiling.TX == 0 {
			lim := dev.Limits()
			t, err := shaders.ChooseFwd(128, shaders.Float32, int(lim.MaxWorkgroupStorageSize), int(lim.MaxInvocationsPerWorkgroup))
			if err != nil {
				return err
			}
			opts.ForwardTiling = t
		}
		opts.ForwardTiling.Rolled = true
	}
	opts.SplitKV = f.splitKV
	opts.DSScratch = int64(f.dsMiB) << 20
	op := gpu.NewWithOptions(dev, opts)
	info := dev.Info()
	enc := json.NewEncoder(out)
	var shapes []benchShape
	for _, s := range benchShapes(info.IsCPU(), dev.MaxBufferBytes()) {
		if strings.Contains(s.label, f.shapes) {
			shapes = append(shapes, s)
		}
	}
	if len(shapes) == 0 {
		var labels []string
		for _, s := range benchShapes(info.IsCPU(), dev.MaxBufferBytes()) {
			labels = append(labels, s.label)
		}
		return fmt.Errorf("bench: %w", flagError("shapes", fmt.Sprintf("%q", f.shapes), "matches none of the shapes on this adapter (%s)", strings.Join(labels, "; ")))
	}
	if !f.json {
		fmt.Fprintf(out, "adapter: %s on %s: %s\n%-9s %-9s %-12s %-62s %10s %9s\n", info, dev.Runtime(), info.Capabilities(), "dtype", "pass", "kernels", "shape", "ms", "TFLOP/s")
	}
	for i, s := range shapes {
		for _, dt := range dtypes {
			for _, pass := range []string{"fwd", "fwd+bwd"} {
				if f.pass != "all" && f.pass != pass {
					continue
				}
				ops := []*gpu.Op{op}
				if f.tcSweep > 0 {
					if ops, err = sweepOps(dev, opts, tcDev, s.args.HeadDim, dt, pass, f.tcSweep); err != nil {
						return fmt.Errorf("bench: --tc-sweep: %w", err)
					}
				}
				for _, op := range ops {
					fmt.Fprintf(progress, "\rbench %d/%d: %s %s %s ...%20s", i+1, len(shapes), dt, pass, s.label, "")
					r, err := benchOne(ctx, op, s, pass, dt, f.reps)
					fmt.Fprint(progress, "\r\033[K")
					if err != nil {
						return fmt.Errorf("bench: %s %s: %w", pass, s.label, err)
					}
					if f.json {
						if err := enc.Encode(r); err != nil {
							return err
						}
					} else {
						fmt.Fprintf(out, "%-9s %-9s %-12s %-62s %10.3f %9.4g\n", r.DType, r.Pass, r.Kernels, r.Shape, r.MS, r.TFLOPS)
						if f.tcSweep > 0 {
							fmt.Fprintf(out, "          %s\n", r.Tiling)
						}
					}
				}
			}
		}
	}
	return nil
}

// sweepOps are the operators that --tc-sweep n measures for one pass:
// each swept forward tiling for fwd, each swept backward tiling (after the
// chosen forward) for fwd+bwd.
func sweepOps(dev *wgpu.Device, opts gpu.Options, td tc.Device, d int, dt attention.DType, pass string, n int) ([]*gpu.Op, error) {
	sw, err := gpu.TensorCoreSweep(d, dt, td, n)
	if err != nil {
		return nil, err
	}
	var ops []*gpu.Op
	if pass == "fwd" {
		for _, t := range sw.Forward {
			o := opts
			o.TensorCoreForward = t
			ops = append(ops, gpu.NewWithOptions(dev, o))
		}
		return ops, nil
	}
	for _, t := range sw.Backward {
		o := opts
		o.TensorCoreBackward = t
		ops = append(ops, gpu.NewWithOptions(dev, o))
	}
	return ops, nil
}

// check validates the flags before any adapter is opened.
func (f *benchFlags) check() error {
	switch f.pass {
	case "fwd", "fwd+bwd", "all":
	default:
		return flagError("pass", fmt.Sprintf("%q", f.pass), "want fwd, fwd+bwd or all")
	}
	switch {
	case f.adapter < 0:
		return flagError("adapter", f.adapter, "want an index >= 0 (see 'coreattn devices')")
	case f.reps < 0 || f.reps > maxReps:
		return flagError("reps", f.reps, "want 0 (enough for about 0.2 s) to %d", maxReps)
	case f.splitKV < -1 || f.splitKV > maxSplitKV:
		return flagError("split-kv", f.splitKV, "want -1 (never), 0 (where the work calls for it) or a piece of 1 to %d keys", maxSplitKV)
	case f.dsMiB < 0 || f.dsMiB > maxScratchMiB:
		return flagError("ds-scratch", f.dsMiB, "want 0 (the default) to %d MiB", maxScratchMiB)
	case f.fwdWX < 0 || f.fwdWX > maxTiling:
		return flagError("fwd-wx", f.fwdWX, "want 0 (the tiling's default) to %d", maxTiling)
	case f.tcSweep < 0 || f.tcSweep > maxTiling:
		return flagError("tc-sweep", f.tcSweep, "want 0 (the chosen tilings) to %d", maxTiling)
	case f.tcSweep > 0 && f.kernels != "tensor-core":
		return flagError("tc-sweep", f.tcSweep, "applies to --kernels tensor-core")
	}
	return nil
}

// parseTiling parses a forced tiling TX,TY,RM,KC,VC of positive numbers.
func parseTiling(s string, v ...*int) error {
	parts := strings.Split(s, ",")
	if len(parts) != len(v) {
		return errors.New("want five positive integers TX,TY,RM,KC,VC")
	}
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 || n > maxTiling {
			return fmt.Errorf("%q is not an integer in [1, %d]", p, maxTiling)
		}
		*v[i] = n
	}
	return nil
}

// benchOne allocates random inputs on the device and times the pass.
func benchOne(ctx context.Context, op *gpu.Op, s benchShape, pass string, dt attention.DType, reps int) (benchResult, error) {
	dev := op.Device()
	args := *s.args
	args.DType = dt
	a := &args
	rng := rand.New(rand.NewPCG(7, 7))
	nq := a.TotalQ() * a.NumHeadsQ * a.HeadDim
	nk := a.TotalK() * a.NumHeadsKV * a.HeadDim
	var bufs []*wgpu.Buffer
	defer func() {
		for _, b := range bufs {
			b.Release()
		}
	}()
	newBuf := func(name string, n int, random bool) (*wgpu.Buffer, error) {
		dt := a.DType
		if name == "lse" {
			dt = attention.Float32
		}
		var b *wgpu.Buffer
		var err error
		if random {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			b, err = gpu.Upload(dev, name, dt, x)
		} else {
			b, err = gpu.NewTensor(dev, name, dt, n)
		}
		if err == nil {
			bufs = append(bufs, b)
		}
		return b, err
	}
	var ft gpu.ForwardTensors
	var err error
	for _, x := range []struct {
		dst    **wgpu.Buffer
		name   string
		n      int
		random bool
	}{{&ft.Q, "q", nq, true}, {&ft.K, "k", nk, true}, {&ft.V, "v", nk, true}, {&ft.O, "o", nq, false}, {&ft.LSE, "lse", a.NumHeadsQ * a.TotalQ(), false}} {
		if *x.dst, err = newBuf(x.name, x.n, x.random); err != nil {
			return benchResult{}, err
		}
	}
	fwd, err := op.PrepareForward(a, ft)
	if err != nil {
		return benchResult{}, err
	}
	defer fwd.Release()
	dispatches := fwd.Dispatches()
	tiling := fwd.Tiling
	kernels := fwd.Kernels.String()
	flops := a.FLOPs()
	if pass == "fwd+bwd" {
		bt := gpu.BackwardTensors{Q: ft.Q, K: ft.K, V: ft.V, O: ft.O, LSE: ft.LSE}
		if bt.DO, err = newBuf("do", nq, true); err != nil {
			return benchResult{}, err
		}
		for _, x := range []struct {
			dst  **wgpu.Buffer
			name string
			n    int
		}{{&bt.DQ, "dq", nq}, {&bt.DK, "dk", nk}, {&bt.DV, "dv", nk}} {
			if *x.dst, err = newBuf(x.name, x.n, false); err != nil {
				return benchResult{}, err
			}
		}
		// The backward reads the forward's O and LSE, so run the forward once first.
		if _, err := dev.Run(ctx, dispatches...); err != nil {
			return benchResult{}, err
		}
		bwd, err := op.PrepareBackward(a, bt)
		if err != nil {
			return benchResult{}, err
		}
		defer bwd.Release()
		tiling += "; " + bwd.Tiling
		if bwd.Kernels != fwd.Kernels {
			kernels += "+" + bwd.Kernels.String()
		}
		dispatches = append(append([]wgpu.Dispatch(nil), dispatches...), bwd.Dispatches()...)
		flops *= 3.5
	}
	t, err := timeRuns(ctx, dev, dispatches, 5, reps, time.Second)
	if err != nil {
		return benchResult{}, err
	}
	ms := float64(t.d) / float64(time.Millisecond)
	res := benchResult{
		Impl: "coreattn-wgsl", Adapter: dev.Info().Name, Runtime: string(dev.Runtime()), Kernels: kernels, DType: a.DType.String(), Pass: pass, Shape: s.label,
		MS: round(ms, 4), TFLOPS: round(flops/ms/1e9, 4), Tiling: tiling,
	}
	if t.gpu > 0 {
		res.GPUMS = round(float64(t.gpu)/float64(time.Millisecond), 4)
		res.KernelMS = kernelTimes(dispatches, t.passes)
	}
	return res, nil
}

// kernelTimes sums per-dispatch GPU times (in ms) by kernel: the dispatch's
// label up to its first comma.
func kernelTimes(ds []wgpu.Dispatch, passes []time.Duration) map[string]float64 {
	if len(passes) != len(ds) {
		return nil
	}
	m := make(map[string]float64)
	for i, d := range ds {
		name, _, _ := strings.Cut(d.Label, ",")
		m[name] += float64(passes[i]) / float64(time.Millisecond)
	}
	for k, v := range m {
		m[k] = round(v, 4)
	}
	return m
}

func round(x float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(x*p+0.5)) / p
}
