package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/coreattn/coreattn/attention/gpu"

	"github.com/spf13/cobra"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/disagg"
)

type benchShardsFlags struct {
	adapter  int
	json     bool
	reps     int
	doc      int
	heads    int
	kvHeads  int
	headDim  int
	lens     string
	mixed    string
	maxBytes int64
}

func newBenchShardsCmd(g *globalFlags) *cobra.Command {
	f := &benchShardsFlags{}
	cmd := &cobra.Command{
		Use:   "shards",
		Short: "Forward throughput of fused CA-task batches against shard length, beside one dense sequence",
		Long: `Measures composability, the property that lets CAD rebatch freely: the
forward's throughput on a fused batch of CA-tasks, for each shard length L,
beside its throughput on one dense causal sequence of --doc tokens.

A CA-task of shard length L is rows i*L..(i+1)*L of a document of --doc
tokens against its causal prefix of (i+1)*L keys, with i drawn at random.
Tasks are added until the batch has the dense sequence's FLOPs or its keys
would outgrow the largest buffer the adapter allows (or --max-bytes); the
shape label gives the batch actually run. Ratio is the batch's TFLOP/s over
the dense sequence's. A last, mixed batch draws each task's shard length at
random from the powers of two in the --mixed range (as a CAD scheduler's
shards come; default 128 to half the document, for documents of 512 tokens
or more), with its own random prefix.

Defaults: a Llama-8B layer (32 query heads, 8 KV heads of 128) and documents
of 8192 tokens; on a CPU adapter 4 query heads, 2 KV heads of 64 and 1024.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchShards(contextOf(cmd.Context()), g, f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.adapter, "adapter", 0, "adapter index (see 'coreattn devices')")
	fl.BoolVar(&f.json, "json", false, "print one JSON object per line")
	fl.IntVar(&f.reps, "reps", 0, "runs per timing round (0: enough for about 0.2 s)")
	fl.IntVar(&f.doc, "doc", 0, "document length in tokens (0: 8192, or 1024 on CPU adapters)")
	fl.IntVar(&f.heads, "heads", 0, "query heads (0: 32, or 4 on CPU adapters)")
	fl.IntVar(&f.kvHeads, "kv-heads", 0, "key/value heads (0: 8, or 2 on CPU adapters)")
	fl.IntVar(&f.headDim, "head-dim", 0, "head dimension (0: 128, or 64 on CPU adapters)")
	fl.StringVar(&f.lens, "lens", "", "shard lengths, comma-separated (default: powers of two from 16 to the document length)")
	fl.StringVar(&f.mixed, "mixed", "", "shard lengths of the mixed batch: powers of two in MIN-MAX, or none (default: 128 to half the document, where that holds two)")
	fl.Int64Var(&f.maxBytes, "max-bytes", 0, "cap on the bytes of K per batch (0: the adapter's largest buffer)")
	return cmd
}

// shardResult is one line of `coreattn bench shards --json`: a benchResult
// with the shard length (0 for the dense sequence and the mixed batch), the
// mixed batch's range of lengths, and the ratio of its TFLOP/s to the dense
// sequence's.
type shardResult struct {
	benchResult
	ShardLen int     `json:"shard_len"`
	Mixed    string  `json:"mixed,omitempty"`
	Tasks    int     `json:"tasks"`
	Ratio    float64 `json:"ratio_to_dense"`
}

func runBenchShards(ctx context.Context, g *globalFlags, f *benchShardsFlags, out, progress io.Writer) error {
	if !isTerminal(progress) {
		progress = io.Discard
	}
	if err := f.check(); err != nil {
		return fmt.Errorf("bench shards: %w", err)
	}
	dev, err := openAdapter(g, "bench shards", f.adapter)
	if err != nil {
		return err
	}
	defer dev.Close()
	cpu := dev.Info().IsCPU()
	pick := func(v, gpu, cpuV int) int {
		switch {
		case v != 0:
			return v
		case cpu:
			return cpuV
		}
		return gpu
	}
	doc, hq, hkv, d := pick(f.doc, 8192, 1024), pick(f.heads, 32, 4), pick(f.kvHeads, 8, 2), pick(f.headDim, 128, 64)
	if err := checkHeads(hq, hkv, d, doc); err != nil {
		return fmt.Errorf("bench shards: --doc %d: %w", doc, err)
	}
	lens, err := shardLens(f.lens, doc)
	if err != nil {
		return err
	}
	mixRange := f.mixed
	if mixRange == "" {
		mixRange = defaultMixed(doc)
	}
	mixed, err := mixedLens(mixRange, doc)
	if err != nil {
		return err
	}
	maxBytes := uint64(f.maxBytes)
	if maxBytes == 0 || maxBytes > dev.MaxBufferBytes() {
		maxBytes = dev.MaxBufferBytes()
	}
	dense := denseShape(doc, d, hq)
	dense.args.NumHeadsKV = hkv
	dense.label = fmt.Sprintf("S%d D%d Hq%d Hkv%d causal", doc, d, hq, hkv)
	if err := dense.args.Validate(); err != nil {
		return fmt.Errorf("bench shards: %w", err)
	}
	op := gpu.New(dev)
	enc := json.NewEncoder(out)
	if !f.json {
		fmt.Fprintf(out, "adapter: %s\n%-6s %-6s %-70s %10s %9s %7s\n", dev.Info(), "L", "tasks", "shape", "ms", "TFLOP/s", "ratio")
	}
	// Batch i+1 has shard lengths batches[i]: one each, then the mixed ones.
	var batches [][]int
	for _, l := range lens {
		batches = append(batches, []int{l})
	}
	if len(mixed) > 0 {
		batches = append(batches, mixed)
	}
	var denseTF float64
	for i := range len(batches) + 1 {
		s, tasks, l, mix := dense, 1, 0, ""
		if i > 0 {
			s, tasks = shardBatch(dense.args, batches[i-1], maxBytes, uint64(i))
			if len(batches[i-1]) == 1 {
				l = batches[i-1][0]
			} else {
				mix = mixRange
			}
		}
		fmt.Fprintf(progress, "\rbench shards %d/%d: %s ...%20s", i+1, len(batches)+1, s.label, "")
		r, err := benchOne(ctx, op, s, "fwd", attention.Float32, f.reps)
		fmt.Fprint(progress, "\r\033[K")
		if err != nil {
			return fmt.Errorf("bench shards: %s: %w", s.label, err)
		}
		if i == 0 {
			denseTF = r.TFLOPS
		}
		res := shardResult{benchResult: r, ShardLen: l, Mixed: mix, Tasks: tasks, Ratio: round(r.TFLOPS/denseTF, 4)}
		if f.json {
			if err := enc.Encode(res); err != nil {
				return err
			}
			continue
		}
		name := strconv.Itoa(l)
		switch {
		case mix != "":
			name = mix
		case i == 0:
			name = "dense"
		}
		fmt.Fprintf(out, "%-6s %-6d %-70s %10.3f %9.4g %7.3f\n", name, tasks, r.Shape, r.MS, r.TFLOPS, res.Ratio)
	}
	return nil
}

// check validates the flags before any adapter is opened.
func (f *benchShardsFlags) check() error {
	switch {
	case f.adapter < 0:
		return flagError("adapter", f.adapter, "want an index >= 0 (see 'coreattn devices')")
	case f.reps < 0 || f.reps > maxReps:
		return flagError("reps", f.reps, "want 0 (enough for about 0.2 s) to %d", maxReps)
	case f.doc < 0 || f.doc > math.MaxInt32:
		return flagError("doc", f.doc, "want 0 (the default) to %d", math.MaxInt32)
	case f.heads < 0:
		return flagError("heads", f.heads, "must not be negative")
	case f.kvHeads < 0:
		return flagError("kv-heads", f.kvHeads, "must not be negative")
	case f.headDim < 0:
		return flagError("head-dim", f.headDim, "must not be negative")
	case f.maxBytes < 0:
		return flagError("max-bytes", f.maxBytes, "want 0 (the adapter's largest buffer) or a positive size")
	}
	return nil
}

// shardLens parses --lens, or returns the powers of two from 16 to doc.
func shardLens(s string, doc int) ([]int, error) {
	var lens []int
	if s == "" {
		for l := 16; l <= doc; l *= 2 {
			lens = append(lens, l)
		}
		return lens, nil
	}
	for _, f := range strings.Split(s, ",") {
		l, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || l <= 0 || l > doc {
			return nil, fmt.Errorf("bench shards: --lens %q: %q is not a shard length in [1, %d]", s, f, doc)
		}
		lens = append(lens, l)
	}
	return lens, nil
}

// defaultMixed is --mixed's default for documents of doc tokens: 128 to
// half the document, or none where that holds fewer than two lengths.
func defaultMixed(doc int) string {
	if doc/2 < 256 {
		return "none"
	}
	return fmt.Sprintf("128-%d", doc/2)
}

// mixedLens parses --mixed, "MIN-MAX", into the powers of two in that
// range that fit the document; "none" means no mixed batch.
func mixedLens(s string, doc int) ([]int, error) {
	if s == "none" {
		return nil, nil
	}
	lo, hi, ok := strings.Cut(s, "-")
	minL, err1 := strconv.Atoi(strings.TrimSpace(lo))
	maxL, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if !ok || err1 != nil || err2 != nil || minL <= 0 || maxL < minL {
		return nil, fmt.Errorf("bench shards: --mixed %q: want MIN-MAX with 0 < MIN <= MAX, or none", s)
	}
	var lens []int
	for l := 1; l <= min(maxL, doc); l *= 2 {
		if l >= minL {
			lens = append(lens, l)
		}
	}
	if len(lens) < 2 {
		return nil, fmt.Errorf("bench shards: --mixed %q: fewer than two powers of two in range for documents of %d tokens", s, doc)
	}
	return lens, nil
}

// shardBatch draws CA-tasks from documents shaped like dense (one causal
// sequence): each has a shard length l drawn from lens and is rows
// i*l..(i+1)*l against the first (i+1)*l keys, i at random, until the
// batch reaches the dense sequence's FLOPs or its K would outgrow maxBytes.
// It returns the batch and its size.
func shardBatch(dense *attention.Args, lens []int, maxBytes uint64, seed uint64) (benchShape, int) {
	rng := rand.New(rand.NewPCG(seed, 0x5a))
	doc := dense.TotalQ()
	a := &attention.Args{CuSeqlensQ: []int32{0}, CuSeqlensK: []int32{0}, NumHeadsQ: dense.NumHeadsQ,
		NumHeadsKV: dense.NumHeadsKV, HeadDim: dense.HeadDim, Causal: true}
	rowBytes := uint64(dense.NumHeadsKV * dense.HeadDim * 4)
	target := dense.Pairs()
	var pairs int64
	for pairs < target {
		l := lens[0]
		if len(lens) > 1 { // (one length draws no number: its batches stay those of earlier versions)
			l = lens[rng.IntN(len(lens))]
		}
		n := (doc + l - 1) / l // shards per document; the last may be short
		i := rng.IntN(n)
		q := min(l, doc-i*l)
		kv := i*l + q
		if uint64(a.TotalK()+kv)*rowBytes > maxBytes {
			if a.Batch() > 0 {
				break
			}
			kv, q = l, l // not even one long prefix fits: take the first shard
		}
		a.CuSeqlensQ = append(a.CuSeqlensQ, int32(a.TotalQ()+q))
		a.CuSeqlensK = append(a.CuSeqlensK, int32(a.TotalK()+kv))
		pairs += disagg.CausalPairs(q, kv)
	}
	name := fmt.Sprintf("L%d", lens[0])
	if len(lens) > 1 {
		name = fmt.Sprintf("L%d-%d mixed", lens[0], lens[len(lens)-1])
	}
	return benchShape{
		label: fmt.Sprintf("%s x%d q_total=%d kv_total=%d D%d Hq%d Hkv%d", name, a.Batch(), a.TotalQ(), a.TotalK(), a.HeadDim, a.NumHeadsQ, a.NumHeadsKV),
		args:  a,
	}, a.Batch()
}
