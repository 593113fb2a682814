package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/coreattn/coreattn/gemm"
	"github.com/coreattn/coreattn/shaders"
	"github.com/coreattn/coreattn/wgpu"
)

// gemmResult is one line of `coreattn bench gemm --json`; its keys match
// matmul_anchor.py's so the two can be joined on shape.
type gemmResult struct {
	Impl    string             `json:"impl"`
	Adapter string             `json:"adapter"`
	Runtime string             `json:"runtime"` // the WebGPU runtime: go-webgpu or dawn
	DType   string             `json:"dtype"`
	Case    string             `json:"case"`
	Shape   string             `json:"shape"`
	M       int                `json:"m"`
	N       int                `json:"n"`
	K       int                `json:"k"`
	MS      float64            `json:"ms"`
	TFLOPS  float64            `json:"tflops"`
	GPUMS   float64            `json:"gpu_ms,omitempty"`
	Kernel  map[string]float64 `json:"kernel_ms,omitempty"`
	Tiling  string             `json:"tiling"`
	Error   string             `json:"error,omitempty"` // a sweep's failed cell
}

type benchGemmFlags struct {
	adapter int
	json    bool
	reps    int
	shapes  string
	tokens  string
	cube    int
	tilings string
	splits  string
	kernels string
	unsafe  bool
}

func newBenchGemmCmd(g *globalFlags) *cobra.Command {
	f := &benchGemmFlags{}
	cmd := &cobra.Command{
		Use:   "gemm",
		Short: "Measure matrix-product throughput (TFLOP/s) at 4096³ and the model's shapes",
		Long: `Measures C = op(A)·op(B) at 4096x4096x4096 in the three cases (NN, NT,
TN), then, for the model presets small and base, each linear layer's
forward (NT: T x out x in), input gradient (NN: T x in x out) and
accumulated weight gradient (TN: out x in x T) at T tokens. FLOPs are
2·M·N·K. Each shape runs back to back, untimed, for about a second, then
reports the median of 5 rounds of back-to-back runs (as coreattn bench).
On a CPU adapter the cube is 256 and T 1024 unless given. The same shapes
through PyTorch: scripts/matmul_anchor.py.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchGemm(contextOf(cmd.Context()), g, f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().IntVar(&f.adapter, "adapter", 0, "adapter index (see 'coreattn devices')")
	cmd.Flags().BoolVar(&f.json, "json", false, "print one JSON object per line")
	cmd.Flags().IntVar(&f.reps, "reps", 0, "runs per timing round (0: enough for about 0.2 s)")
	cmd.Flags().StringVar(&f.shapes, "shapes", "", "only shapes whose label contains one of these comma-separated texts, e.g. 4096x,base")
	cmd.Flags().StringVar(&f.tokens, "tokens", "", "tokens per step T of the model shapes, comma-separated (default 16384; 1024 on a CPU)")
	cmd.Flags().IntVar(&f.cube, "cube", 0, "edge of the cube shapes (default 4096; 256 on a CPU)")
	cmd.Flags().StringVar(&f.tilings, "tiling", "", "force tile shapes, comma-separated BMxBNxBK/TMxTN[/wWX][/rolled] (each measured), e.g. 128x128x16/8x8,128x128x16/8x8/w16")
	cmd.Flags().StringVar(&f.splits, "split", "0", "split K into this many parts, comma-separated (each measured; 0: chosen by shape, 1: never)")
	cmd.Flags().StringVar(&f.kernels, "kernels", "auto", "engine: auto (the f32 FMA engine), fma, or tensor-core (the subgroup-matrix engine: f16 operands, f32 accumulation; needs f16->f32 subgroup matrices, Dawn on NVIDIA)")
	cmd.Flags().BoolVar(&f.unsafe, "no-robustness", false, "Dawn: turn off its bounds checks on buffer accesses (faster); go-webgpu ignores it")
	return cmd
}

// parseGemmTilings reads --tiling's list of BMxBNxBK/TMxTN[/wWX][/rolled].
func parseGemmTilings(s string) ([]shaders.GemmTiling, error) {
	if s == "" {
		return []shaders.GemmTiling{{}}, nil // the chooser's
	}
	var out []shaders.GemmTiling
	for _, part := range strings.Split(s, ",") {
		var t shaders.GemmTiling
		fields := strings.Split(strings.TrimSpace(part), "/")
		bad := len(fields) < 2
		if !bad {
			_, err1 := fmt.Sscanf(fields[0], "%dx%dx%d", &t.BM, &t.BN, &t.BK)
			_, err2 := fmt.Sscanf(fields[1], "%dx%d", &t.TM, &t.TN)
			bad = err1 != nil || err2 != nil
		}
		for _, opt := range fields[min(2, len(fields)):] {
			switch {
			case opt == "rolled":
				t.Rolled = true
			case strings.HasPrefix(opt, "w"):
				if _, err := fmt.Sscanf(opt, "w%d", &t.WX); err != nil {
					bad = true
				}
			default:
				bad = true
			}
		}
		if bad {
			return nil, fmt.Errorf("bench gemm: --tiling %q: want BMxBNxBK/TMxTN[/wWX][/rolled], e.g. 128x128x16/8x8/w8", part)
		}
		if err := t.Validate(); err != nil {
			return nil, fmt.Errorf("bench gemm: --tiling %q: %w", part, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// Upper bounds of bench gemm's size flags, checked before anything is
// allocated (the adapter's buffer limit then bounds each matrix).
const (
	maxGemmCube   = 1 << 16 // --cube: a 65536² matrix is 16 GiB
	maxGemmTokens = 1 << 24 // --tokens
	maxGemmSplit  = 1024    // --split
)

// parseInts reads a comma-separated list of integers from 1 to hi.
func parseInts(flag, s string, hi int) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || v <= 0 || v > hi {
			return nil, fmt.Errorf("bench gemm: --%s %q: want integers from 1 to %d, comma-separated", flag, s, hi)
		}
		out = append(out, v)
	}
	return out, nil
}

func runBenchGemm(ctx context.Context, g *globalFlags, f *benchGemmFlags, out, progress io.Writer) error {
	if !isTerminal(progress) {
		progress = io.Discard
	}
	tilings, err := parseGemmTilings(f.tilings)
	if err != nil {
		return err
	}
	if err := checkRange("cube", f.cube, 0, maxGemmCube); err != nil {
		return fmt.Errorf("bench gemm: %w", err)
	}
	if err := checkRange("reps", f.reps, 0, maxReps); err != nil {
		return fmt.Errorf("bench gemm: %w", err)
	}
	var splits []int
	for _, part := range strings.Split(f.splits, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || v < 0 || v > maxGemmSplit {
			return fmt.Errorf("bench gemm: --split %q: want integers from 0 to %d, comma-separated", f.splits, maxGemmSplit)
		}
		splits = append(splits, v)
	}
	var tokens []int
	if f.tokens != "" {
		if tokens, err = parseInts("tokens", f.tokens, maxGemmTokens); err != nil {
			return err
		}
	}
	kernels, err := gemm.ParseKernels(cmp.Or(f.kernels, "auto"))
	if err != nil {
		return fmt.Errorf("bench gemm: %w", flagError("kernels", fmt.Sprintf("%q", f.kernels), "want auto, fma or tensor-core"))
	}
	wopts := g.options()
	wopts.DisableRobustness = f.unsafe
	dev, err := openAdapterWith(wopts, "bench gemm", f.adapter)
	if err != nil {
		return err
	}
	defer dev.Close()
	info := dev.Info()
	if kernels == gemm.KernelsTensorCore && gemm.TensorCoreShapes(info) == nil {
		return fmt.Errorf("bench gemm: --kernels tensor-core: %w: %s on %s offers no f16->f32 subgroup matrices (it has: %s)", gemm.ErrNoTensorCores, info.Name, info.Runtime, info.Capabilities())
	}
	cube := f.cube
	if cube == 0 {
		cube = 4096
		if info.IsCPU() {
			cube = 256
		}
	}
	if tokens == nil {
		tokens = []int{16384}
		if info.IsCPU() {
			tokens = []int{1024}
		}
	}
	var shapes []gemm.Shape
	all := gemm.CubeShapes(cube)
	for _, t := range tokens {
		all = append(all, gemm.ModelShapes(t)...)
	}
	for _, s := range all {
		if matchesAny(s.Label, f.shapes) {
			shapes = append(shapes, s)
		}
	}
	if len(shapes) == 0 {
		return fmt.Errorf("bench gemm: --shapes %q matches no shape", f.shapes)
	}
	enc := json.NewEncoder(out)
	if !f.json {
		fmt.Fprintf(out, "adapter: %s on %s: %s\n%-48s %10s %9s  %s\n", info, dev.Runtime(), info.Capabilities(), "shape", "ms", "TFLOP/s", "tiling")
	}
	// A sweep (several tilings or splits) reports a cell that fails, such
	// as a tiling the adapter refuses, and goes on; a single run stops.
	sweep := len(tilings) > 1 || len(splits) > 1
	for _, tl := range tilings {
		for _, split := range splits {
			op := gemm.NewWithOptions(dev, gemm.Options{Tiling: tl, Split: split, Kernels: kernels})
			for i, s := range shapes {
				fmt.Fprintf(progress, "\rbench gemm %d/%d: %s ...%20s", i+1, len(shapes), s.Label, "")
				r, err := benchGemmOne(ctx, op, s, f.reps)
				fmt.Fprint(progress, "\r\033[K")
				if err != nil {
					if !sweep || ctx.Err() != nil {
						return fmt.Errorf("bench gemm: %s: %w", s.Label, err)
					}
					r = gemmResult{Impl: "coreattn-wgsl", Adapter: info.Name, Runtime: string(info.Runtime), DType: "float32", Case: s.Case(), Shape: s.Label,
						M: s.M, N: s.N, K: s.K, Tiling: fmt.Sprintf("%s split %d", tl.Shape(), split), Error: err.Error()}
				}
				if f.json {
					if err := enc.Encode(r); err != nil {
						return err
					}
				} else if r.Error != "" {
					fmt.Fprintf(out, "%-48s %10s %9s  %s: %s\n", r.Shape, "-", "-", r.Tiling, r.Error)
				} else {
					fmt.Fprintf(out, "%-48s %10.3f %9.4g  %s\n", r.Shape, r.MS, r.TFLOPS, r.Tiling)
				}
			}
		}
	}
	return nil
}

// matchesAny reports whether label contains one of the comma-separated
// texts in filter (an empty filter matches everything).
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

// benchGemmOne allocates random operands on the device and times the
// product.
func benchGemmOne(ctx context.Context, op *gemm.Op, s gemm.Shape, reps int) (gemmResult, error) {
	dev := op.Device()
	rng := rand.New(rand.NewPCG(11, 11))
	var bufs []*wgpu.Buffer
	defer func() {
		for _, b := range bufs {
			b.Release()
		}
	}()
	newMatrix := func(name string, rows, cols int) (gemm.Matrix, error) {
		if bytes := uint64(rows) * uint64(cols) * 4; bytes > dev.MaxBufferBytes() {
			return gemm.Matrix{}, fmt.Errorf("%s is %d×%d: %d bytes, more than the adapter's %d for one buffer", name, rows, cols, bytes, dev.MaxBufferBytes())
		}
		x := make([]float32, rows*cols)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		b, err := wgpu.Upload(dev, name, x)
		if err != nil {
			return gemm.Matrix{}, err
		}
		bufs = append(bufs, b)
		return gemm.Matrix{Buf: b, Rows: rows, Cols: cols}, nil
	}
	ar, ac := s.M, s.K
	if s.TransA {
		ar, ac = ac, ar
	}
	br, bc := s.K, s.N
	if s.TransB {
		br, bc = bc, br
	}
	var spec gemm.Spec
	var err error
	if spec.A, err = newMatrix("a", ar, ac); err != nil {
		return gemmResult{}, err
	}
	if spec.B, err = newMatrix("b", br, bc); err != nil {
		return gemmResult{}, err
	}
	if spec.C, err = newMatrix("c", s.M, s.N); err != nil {
		return gemmResult{}, err
	}
	spec.TransA, spec.TransB, spec.Accumulate = s.TransA, s.TransB, s.Accumulate
	l, err := op.Prepare(spec)
	if err != nil {
		return gemmResult{}, err
	}
	defer l.Release()
	t, err := timeRuns(ctx, dev, l.Dispatches(), 5, reps, time.Second)
	if err != nil {
		return gemmResult{}, err
	}
	ms := float64(t.d) / float64(time.Millisecond)
	res := gemmResult{
		Impl: "coreattn-wgsl", Adapter: dev.Info().Name, Runtime: string(dev.Runtime()), DType: "float32", Case: s.Case(), Shape: s.Label,
		M: s.M, N: s.N, K: s.K, MS: round(ms, 4), TFLOPS: round(l.FLOPs()/ms/1e9, 4), Tiling: l.Tiling(),
	}
	if t.gpu > 0 {
		res.GPUMS = round(float64(t.gpu)/float64(time.Millisecond), 4)
		res.Kernel = kernelTimes(l.Dispatches(), t.passes)
	}
	return res, nil
}
