package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sort"

	"github.com/spf13/cobra"

	"github.com/coreattn/coreattn/model"
	"github.com/coreattn/coreattn/model/train"
)

// sampleFlags are the flags of `coreattn sample`.
type sampleFlags struct {
	ckpt, prompt string
	length       int
	context      int
	temperature  float64
	topK         int
	seed         uint64
	adapter      int
}

func newSampleCmd(g *globalFlags) *cobra.Command {
	f := &sampleFlags{}
	cmd := &cobra.Command{
		Use:   "sample",
		Short: "Continue a prompt with a trained checkpoint",
		Long: `Loads a checkpoint written by ` + "`coreattn train`" + ` and continues --prompt byte by byte,
each byte drawn from the model's distribution at --temperature (0: the most
likely byte), restricted to the --top-k most likely (0: all). The prompt and
its continuation are printed as they come.`,
		Example: `  coreattn sample --ckpt runs/base/checkpoint --prompt 'func main() {'`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSample(contextOf(cmd.Context()), g, f, cmd.OutOrStdout())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.ckpt, "ckpt", "", "checkpoint directory (out/checkpoint of a training run)")
	fl.StringVar(&f.prompt, "prompt", "func main() {", "text to continue")
	fl.IntVar(&f.length, "length", 300, "bytes to generate")
	fl.IntVar(&f.context, "context", 1024, "most bytes the model sees (the window slides beyond it)")
	fl.Float64Var(&f.temperature, "temperature", 0.8, "sampling temperature (0: greedy)")
	fl.IntVar(&f.topK, "top-k", 40, "sample among the k most likely bytes (0: all)")
	fl.Uint64Var(&f.seed, "seed", 1, "sampling seed")
	fl.IntVar(&f.adapter, "adapter", 0, "adapter index (see coreattn devices)")
	return cmd
}

func runSample(ctx context.Context, g *globalFlags, f *sampleFlags, out io.Writer) error {
	switch {
	case f.ckpt == "":
		return fmt.Errorf("--ckpt is required: a checkpoint directory written by `coreattn train`")
	case f.prompt == "":
		return fmt.Errorf("--prompt is empty: give the text to continue")
	case f.length < 0:
		return fmt.Errorf("--length %d: want >= 0", f.length)
	case f.context < 1:
		return fmt.Errorf("--context %d: want >= 1", f.context)
	case f.temperature < 0 || math.IsNaN(f.temperature) || math.IsInf(f.temperature, 0):
		return fmt.Errorf("--temperature %v: want a finite number >= 0", f.temperature)
	case f.topK < 0 || f.topK > model.Vocab:
		return fmt.Errorf("--top-k %d: want 0..%d", f.topK, model.Vocab)
	}
	cfg, err := readTrainConfig(f.ckpt)
	if err != nil {
		return fmt.Errorf("--ckpt: %w", err)
	}
	w, _, err := readCheckpoint(f.ckpt, cfg, false)
	if err != nil {
		return fmt.Errorf("--ckpt: %w", err)
	}
	dev, err := openAdapter(g, "sample", f.adapter)
	if err != nil {
		return err
	}
	defer dev.Close()
	// The trainer's rows are the window, rounded up to 64.
	window := min(f.context, len(f.prompt)+f.length)
	rows := (window + 63) / 64 * 64
	if err := train.CheckLimits(w.Config, rows, dev.Info()); err != nil {
		return err
	}
	tr, err := train.New(dev, w.Config, train.Options{Tokens: rows})
	if err != nil {
		return err
	}
	defer tr.Close()
	if err := tr.SetWeights(w); err != nil {
		return err
	}
	text := []byte(f.prompt)
	if _, err := out.Write(text); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(f.seed, 0x73616d706c65))
	for range f.length {
		ctxBytes := text[max(0, len(text)-window):]
		b := model.Batch{CuSeqlens: []int32{0, int32(len(ctxBytes))}}
		for _, c := range ctxBytes {
			b.Tokens = append(b.Tokens, int32(c))
		}
		logits, err := tr.Logits(ctx, b, len(ctxBytes))
		if err != nil {
			return err
		}
		next := sampleByte(logits[(len(ctxBytes)-1)*model.Vocab:], f.temperature, f.topK, rng)
		text = append(text, next)
		if _, err := out.Write([]byte{next}); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintln(out)
	return err
}

// sampleByte draws a byte from logits at temperature among the top k.
func sampleByte(logits []float32, temperature float64, k int, rng *rand.Rand) byte {
	idx := make([]int, len(logits))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return logits[idx[a]] > logits[idx[b]] })
	if temperature == 0 {
		return byte(idx[0])
	}
	if k > 0 {
		idx = idx[:k]
	}
	top := float64(logits[idx[0]])
	p := make([]float64, len(idx))
	sum := 0.0
	for i, j := range idx {
		p[i] = math.Exp((float64(logits[j]) - top) / temperature)
		sum += p[i]
	}
	u := rng.Float64() * sum
	for i, j := range idx {
		if u -= p[i]; u <= 0 {
			return byte(j)
		}
	}
	return byte(idx[len(idx)-1])
}
