package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/coreattn/coreattn/attention/gpu"

	"github.com/spf13/cobra"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/internal/npy"
	"github.com/coreattn/coreattn/internal/outfile"
)

// attnFlags are the flags of `coreattn attention`. The names are fixed: an
// acceptance suite calls them.
type attnFlags struct {
	q, k, v    string // inputs [total_q, Hq, D], [total_k, Hkv, D], [total_k, Hkv, D]
	cuQ, cuK   string // int32 [B+1]
	causal     bool
	scale      float64
	scaleGiven bool // --scale was on the command line
	out, lse   string
	adapter    int
	do         string // backward input dO [total_q, Hq, D]
	dq, dk, dv string // backward outputs
	servers    int
	kernels    string
	dtype      string // storage type on the device: f32, f16, bf16
}

func newAttentionCmd(g *globalFlags) *cobra.Command {
	f := &attnFlags{}
	cmd := &cobra.Command{
		Use:   "attention",
		Short: "Run varlen core attention (forward, and backward with --do) on .npy tensors",
		Long: `Runs FlashAttention-style varlen core attention on one adapter.

Inputs are NumPy .npy files: q [total_q, Hq, D], k and v [total_k, Hkv, D]
(float32; float64 is converted), cu_seqlens_q and cu_seqlens_k [B+1] (int32;
other integer types are converted). Hq, Hkv and D come from the shapes.
Segment b is rows cu_seqlens_q[b]..cu_seqlens_q[b+1] of q against rows
cu_seqlens_k[b]..cu_seqlens_k[b+1] of k and v. --causal masks bottom-right
aligned: query i sees key j iff j <= i + (k_len - q_len).

Outputs: o [total_q, Hq, D] and lse [Hq, total_q] (natural-log log-sum-exp of
the scaled scores; +Inf for a row that sees no key). With --do, the backward
pass runs after the forward, on its o and lse, and writes dq [total_q, Hq, D],
dk and dv [total_k, Hkv, D] as well. Nothing is written unless every step
succeeded.`,
		Example: `  coreattn attention --q q.npy --k k.npy --v v.npy \
      --cu-seqlens-q cu_q.npy --cu-seqlens-k cu_k.npy --causal \
      --out o.npy --lse lse.npy
  coreattn attention ... --do do.npy --dq dq.npy --dk dk.npy --dv dv.npy`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.scaleGiven = cmd.Flags().Changed("scale")
			return runAttention(contextOf(cmd.Context()), g, f, cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.q, "q", "", "queries .npy [total_q, Hq, D] (required)")
	fl.StringVar(&f.k, "k", "", "keys .npy [total_k, Hkv, D] (required)")
	fl.StringVar(&f.v, "v", "", "values .npy [total_k, Hkv, D] (required)")
	fl.StringVar(&f.cuQ, "cu-seqlens-q", "", "query offsets .npy int32 [B+1] (required)")
	fl.StringVar(&f.cuK, "cu-seqlens-k", "", "key/value offsets .npy int32 [B+1] (required)")
	fl.BoolVar(&f.causal, "causal", false, "bottom-right aligned causal mask")
	fl.StringVar(&f.dtype, "dtype", "f32", "storage type on the device: f32, f16 or bf16 (.npy files stay float32; compute is float32)")
	fl.Float64Var(&f.scale, "scale", 0, "softmax scale (0: 1/sqrt(D))")
	fl.StringVar(&f.out, "out", "", "output O .npy [total_q, Hq, D] (required)")
	fl.StringVar(&f.lse, "lse", "", "output LSE .npy [Hq, total_q] (required)")
	fl.IntVar(&f.adapter, "adapter", 0, "adapter index (see coreattn devices; 0 is the best)")
	fl.StringVar(&f.do, "do", "", "upstream gradient dO .npy [total_q, Hq, D]: also run the backward")
	fl.StringVar(&f.dq, "dq", "", "output dQ .npy [total_q, Hq, D] (with --do)")
	fl.StringVar(&f.dk, "dk", "", "output dK .npy [total_k, Hkv, D] (with --do)")
	fl.StringVar(&f.dv, "dv", "", "output dV .npy [total_k, Hkv, D] (with --do)")
	fl.IntVar(&f.servers, "servers", 1, "number of attention servers (logical servers over the local adapters, round-robin) to spread the batch over")
	fl.StringVar(&f.kernels, "kernels", "auto", "kernel family: auto (tensor cores for --dtype f16 where the adapter has f16->f32 subgroup matrices), ffma, or tensor-core (f16 products, f32 accumulation; f32 inputs rounded to f16)")
	return cmd
}

// attnInputs are the tensors of one `coreattn attention` call, checked.
type attnInputs struct {
	args    attention.Args
	q, k, v []float32
	do      []float32 // nil without --do
}

// backward reports whether the call includes the backward pass.
func (f *attnFlags) backward() bool { return f.do != "" }

// check validates the flags themselves, before any file is read.
func (f *attnFlags) check() error {
	var missing []string
	for _, r := range []struct{ name, val string }{
		{"q", f.q}, {"k", f.k}, {"v", f.v}, {"cu-seqlens-q", f.cuQ}, {"cu-seqlens-k", f.cuK},
		{"out", f.out}, {"lse", f.lse},
	} {
		if r.val == "" {
			missing = append(missing, "--"+r.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("attention: missing required flag(s) %s", strings.Join(missing, ", "))
	}
	grads := []struct{ name, val string }{{"do", f.do}, {"dq", f.dq}, {"dk", f.dk}, {"dv", f.dv}}
	var given, absent []string
	for _, r := range grads {
		if r.val != "" {
			given = append(given, "--"+r.name)
		} else {
			absent = append(absent, "--"+r.name)
		}
	}
	if len(given) > 0 && len(absent) > 0 {
		return fmt.Errorf("attention: %s given without %s: the backward needs all of --do, --dq, --dk and --dv",
			strings.Join(given, ", "), strings.Join(absent, ", "))
	}
	if f.scaleGiven && (math.IsNaN(f.scale) || math.IsInf(f.scale, 0)) {
		return fmt.Errorf("attention: --scale %v: want a finite number (leave it out for 1/sqrt(D))", f.scale)
	}
	if f.scaleGiven && math.Abs(f.scale) > attention.MaxSoftmaxScale {
		return fmt.Errorf("attention: --scale %g: not finite in float32 on the device; want |scale| <= %.4g", f.scale, attention.MaxSoftmaxScale)
	}
	if _, err := attention.ParseDType(f.dtype); err != nil {
		return fmt.Errorf("attention: --dtype %q: want f32, f16 or bf16", f.dtype)
	}
	if f.adapter < 0 {
		return fmt.Errorf("attention: --adapter %d: want an index >= 0 (see `coreattn devices`)", f.adapter)
	}
	if _, err := gpu.ParseKernels(f.kernels); err != nil {
		return fmt.Errorf("attention: %w", flagError("kernels", fmt.Sprintf("%q", f.kernels), "want auto, ffma or tensor-core"))
	}
	if f.kernels != "auto" && f.servers != 1 {
		return fmt.Errorf("attention: --kernels %s applies to one server; the pool's servers choose their own kernels", f.kernels)
	}
	if f.servers < 1 || f.servers > maxLocalServers {
		return fmt.Errorf("attention: --servers %d: want 1 to %d", f.servers, maxLocalServers)
	}
	if err := outfile.Check(f.inputs(), f.outputs()); err != nil {
		return fmt.Errorf("attention: %w", err)
	}
	return nil
}

// inputs are the input files the flags name.
func (f *attnFlags) inputs() []outfile.Path {
	in := []outfile.Path{{Flag: "q", Name: f.q}, {Flag: "k", Name: f.k}, {Flag: "v", Name: f.v},
		{Flag: "cu-seqlens-q", Name: f.cuQ}, {Flag: "cu-seqlens-k", Name: f.cuK}}
	if f.backward() {
		in = append(in, outfile.Path{Flag: "do", Name: f.do})
	}
	return in
}

// outputs are the output files the flags name, in the order they are
// written.
func (f *attnFlags) outputs() []outfile.Path {
	out := []outfile.Path{{Flag: "out", Name: f.out}, {Flag: "lse", Name: f.lse}}
	if f.backward() {
		out = append(out, outfile.Path{Flag: "dq", Name: f.dq}, outfile.Path{Flag: "dk", Name: f.dk}, outfile.Path{Flag: "dv", Name: f.dv})
	}
	return out
}

// load reads the input files and checks their shapes against each other.
func (f *attnFlags) load() (*attnInputs, error) {
	in := &attnInputs{}
	q, qs, err := readTensor("q", f.q, 3)
	if err != nil {
		return nil, fmt.Errorf("attention: %w", err)
	}
	k, ks, err := readTensor("k", f.k, 3)
	if err != nil {
		return nil, fmt.Errorf("attention: %w", err)
	}
	v, vs, err := readTensor("v", f.v, 3)
	if err != nil {
		return nil, fmt.Errorf("attention: %w", err)
	}
	if !slices.Equal(ks, vs) {
		return nil, fmt.Errorf("attention: --v shape %s differs from --k shape %s", shapeString(vs...), shapeString(ks...))
	}
	if qs[2] != ks[2] {
		return nil, fmt.Errorf("attention: --k head dim D = %d (shape %s) differs from --q head dim D = %d (shape %s)",
			ks[2], shapeString(ks...), qs[2], shapeString(qs...))
	}
	if d := qs[2]; d%attention.HeadDimMultiple != 0 || d < attention.MinHeadDim || d > attention.MaxHeadDim {
		return nil, fmt.Errorf("attention: head_dim D = %d (last dimension of --q shape %s), want a multiple of %d in [%d, %d]",
			d, shapeString(qs...), attention.HeadDimMultiple, attention.MinHeadDim, attention.MaxHeadDim)
	}
	if hq, hkv := qs[1], ks[1]; hkv > 0 && hq%hkv != 0 {
		return nil, fmt.Errorf("attention: num_heads_q Hq = %d (--q shape %s) is not a multiple of num_heads_kv Hkv = %d (--k shape %s)",
			hq, shapeString(qs...), hkv, shapeString(ks...))
	}
	cuQ, err := readOffsets("cu-seqlens-q", f.cuQ)
	if err != nil {
		return nil, fmt.Errorf("attention: %w", err)
	}
	cuK, err := readOffsets("cu-seqlens-k", f.cuK)
	if err != nil {
		return nil, fmt.Errorf("attention: %w", err)
	}
	scale := 0.0
	if f.scaleGiven {
		scale = f.scale
	}
	in.args = attention.Args{
		CuSeqlensQ:   cuQ,
		CuSeqlensK:   cuK,
		NumHeadsQ:    qs[1],
		NumHeadsKV:   ks[1],
		HeadDim:      qs[2],
		SoftmaxScale: scale,
		Causal:       f.causal,
	}
	in.args.DType, _ = attention.ParseDType(f.dtype) // checked with the flags
	if err := in.args.Validate(); err != nil {
		return nil, err // already "attention: ..." and naming the value
	}
	if tq := in.args.TotalQ(); tq != qs[0] {
		return nil, fmt.Errorf("attention: --cu-seqlens-q ends at total_q = %d but --q has %d rows (shape %s)", tq, qs[0], shapeString(qs...))
	}
	if tk := in.args.TotalK(); tk != ks[0] {
		return nil, fmt.Errorf("attention: --cu-seqlens-k ends at total_k = %d but --k has %d rows (shape %s)", tk, ks[0], shapeString(ks...))
	}
	if err := in.args.CheckSizes(len(q), len(k), len(v)); err != nil {
		return nil, err
	}
	in.q, in.k, in.v = q, k, v
	if f.backward() {
		do, ds, err := readTensor("do", f.do, 3)
		if err != nil {
			return nil, fmt.Errorf("attention: %w", err)
		}
		if !slices.Equal(ds, qs) {
			return nil, fmt.Errorf("attention: --do shape %s differs from --q shape %s", shapeString(ds...), shapeString(qs...))
		}
		in.do = do
	}
	return in, nil
}

// attnRunner runs the passes of `coreattn attention`: an
// [attention.Runner] (the GPU operator on one device, or the
// attention-server pool with --servers N) that the command closes and names
// in its log.
type attnRunner interface {
	attention.Runner
	io.Closer
	fmt.Stringer
}

// deviceRunner runs everything on one device.
type deviceRunner struct {
	*gpu.Op
}

func (r deviceRunner) Close() error   { return r.Device().Close() }
func (r deviceRunner) String() string { return r.Device().Info().String() }

// newAttnRunner returns the runner for --adapter, --servers and --kernels
// (checked by attnFlags.check).
func newAttnRunner(g *globalFlags, adapter, servers int, kernels gpu.Kernels) (attnRunner, error) {
	if servers != 1 {
		return newPoolRunner(g, adapter, servers)
	}
	dev, err := openAdapter(g, "attention", adapter)
	if err != nil {
		return nil, err
	}
	return deviceRunner{gpu.NewWithOptions(dev, gpu.Options{Kernels: kernels})}, nil
}

func runAttention(ctx context.Context, g *globalFlags, f *attnFlags, log io.Writer) error {
	if err := f.check(); err != nil {
		return err
	}
	in, err := f.load()
	if err != nil {
		return err
	}
	kernels, err := gpu.ParseKernels(f.kernels)
	if err != nil {
		return err
	}
	r, err := newAttnRunner(g, f.adapter, f.servers, kernels)
	if err != nil {
		return err
	}
	defer r.Close()
	a := &in.args
	t0 := time.Now()
	o, lse, err := r.Forward(ctx, a, in.q, in.k, in.v)
	if err != nil {
		return fmt.Errorf("attention: forward: %w", err)
	}
	tFwd := time.Since(t0)
	tq, hq, hkv, d := a.TotalQ(), a.NumHeadsQ, a.NumHeadsKV, a.HeadDim
	paths := f.outputs()
	outs := []outFile{
		{paths[0], o, []int{tq, hq, d}},
		{paths[1], lse, []int{hq, tq}},
	}
	var tBwd time.Duration
	if f.backward() {
		t1 := time.Now()
		dq, dk, dv, err := r.Backward(ctx, a, in.q, in.k, in.v, o, lse, in.do)
		if err != nil {
			return fmt.Errorf("attention: backward: %w", err)
		}
		tBwd = time.Since(t1)
		tk := a.TotalK()
		outs = append(outs,
			outFile{paths[2], dq, []int{tq, hq, d}},
			outFile{paths[3], dk, []int{tk, hkv, d}},
			outFile{paths[4], dv, []int{tk, hkv, d}})
	}
	if err := writeAll(outs); err != nil {
		return fmt.Errorf("attention: %w", err)
	}
	if g.verbose {
		fmt.Fprintf(log, "attention: %s: B=%d total_q=%d total_k=%d %s D=%d causal=%v: forward %.3f ms",
			r, a.Batch(), tq, a.TotalK(), gqaString(a), d, a.Causal, ms(tFwd))
		if f.backward() {
			fmt.Fprintf(log, ", backward %.3f ms", ms(tBwd))
		}
		fmt.Fprintln(log, " (host to host)")
	}
	return nil
}

// outFile is one output tensor and where it goes.
type outFile struct {
	path  outfile.Path
	data  []float32
	shape []int
}

// writeAll writes every output, or none, and never loses a file that was
// there before (see package internal/outfile).
func writeAll(outs []outFile) error {
	files := make([]outfile.Output, len(outs))
	for i, o := range outs {
		files[i] = outfile.Output{Path: o.path, Write: func(w io.Writer) error { return npy.EncodeFloat32(w, o.data, o.shape) }}
	}
	return outfile.WriteAll(files)
}
