package sim

import (
	"errors"
	"fmt"
	"math"
)

// Distribution names a Recipe understands.
const (
	DistPretrain = "pretrain" // DistCA's "wlbllm" distribution
	DistProLong  = "prolong"
)

// ErrRecipeExhausted is returned when a Recipe's document list has no more
// full context batches: DistCA's run ends there too.
var ErrRecipeExhausted = errors.New("the recipe's documents are used up")

// Recipe is DistCA's batch recipe as its benchmark scripts run it
// (distca/simulator/optimizers/samples.py, global_batch_provider.py and the
// argument defaults of tests/test_e2e_combined.py). DefaultRecipe fills in
// their defaults; every field is a knob.
//
// Pretrain: the short documents (< LongThreshold), cut to the first
// KeepShort of them, and the long ones repeated Upsample times are pooled;
// SampleSize lengths are drawn without replacement by NumPy's
// default_rng(Seed).choice and multiplied by the elongate factor.
//
// ProLong: nothing is sampled or elongated: the long documents, repeated
// Upsample times, each replaced with probability ChangeLongRatio by one of
// exactly 65536·elongate tokens, come first, then the kept short ones.
//
// Either list is then laid end to end into batches of exactly Context tokens
// (lengths rounded up to MultipleOf first); a document that overflows a batch
// is cut there and its remainder starts the next batch as a document of its
// own, so no document is longer than Context.
type Recipe struct {
	Dist            string  `json:"dist"`
	Context         int     `json:"context"`
	LongThreshold   int     `json:"long_threshold"`
	Upsample        int     `json:"upsample_long"`
	KeepShort       float64 `json:"keep_short"`
	SampleSize      int     `json:"sample_size"`
	Elongate        int     `json:"elongate"` // 0: max(1, Context/65536)
	ChangeLongRatio float64 `json:"change_long_ratio"`
	MultipleOf      int     `json:"multiple_of"`
	Seed            uint64  `json:"seed"`
}

// DefaultRecipe returns DistCA's defaults for distribution dist at the given
// context length: threshold 64K, long documents ×2, 90% of the short kept,
// 10,000 draws (pretrain), seed 42, lengths in multiples of 16, and for
// ProLong a long-document replacement ratio of 0.3 (the "prolong 0.3" of
// DistCA's benchmark scripts).
func DefaultRecipe(dist string, context int) Recipe {
	r := Recipe{Dist: dist, Context: context, LongThreshold: 64 << 10, Upsample: 2, KeepShort: 0.9,
		SampleSize: 10000, MultipleOf: 16, Seed: 42}
	if dist == DistProLong {
		r.ChangeLongRatio = 0.3
	}
	return r
}

// ElongateFactor returns the elongate factor: Elongate, or max(1,
// Context/65536) when it is 0 (DistCA's ELONGATE_FACTOR = NUM_TOKENS/65536).
func (r Recipe) ElongateFactor() int {
	if r.Elongate > 0 {
		return r.Elongate
	}
	return max(1, r.Context/65536)
}

// MaxContext bounds Context: a context longer than this is refused.
const MaxContext = 1 << 30

// Validate reports the first bad knob, naming it as the CLI flag does.
func (r Recipe) Validate() error {
	switch {
	case r.Dist != DistPretrain && r.Dist != DistProLong:
		return fmt.Errorf("disagg: recipe: distribution %q: want %q or %q (another file of lengths is sampled like %q)", r.Dist, DistPretrain, DistProLong, DistPretrain)
	case r.Context <= 0 || r.Context > MaxContext:
		return fmt.Errorf("disagg: recipe: context %d must be in [1, %d]", r.Context, MaxContext)
	case r.LongThreshold <= 0:
		return fmt.Errorf("disagg: recipe: long threshold %d must be positive", r.LongThreshold)
	case r.Upsample < 1 || r.Upsample > 1000:
		return fmt.Errorf("disagg: recipe: long-document upsampling %d must be in [1, 1000]", r.Upsample)
	case !(r.KeepShort >= 0 && r.KeepShort <= 1):
		return fmt.Errorf("disagg: recipe: keep-short fraction %g must be in [0, 1]", r.KeepShort)
	case r.SampleSize <= 0 || r.SampleSize > 1<<24:
		return fmt.Errorf("disagg: recipe: sample size %d must be in [1, %d]", r.SampleSize, 1<<24)
	case r.Elongate < 0 || r.Elongate > 1<<16:
		return fmt.Errorf("disagg: recipe: elongate factor %d must be in [0, 65536]", r.Elongate)
	case !(r.ChangeLongRatio >= 0 && r.ChangeLongRatio <= 1):
		return fmt.Errorf("disagg: recipe: long-document change ratio %g must be in [0, 1]", r.ChangeLongRatio)
	case r.MultipleOf <= 0 || r.MultipleOf > r.Context:
		return fmt.Errorf("disagg: recipe: multiple-of %d must be in [1, context %d]", r.MultipleOf, r.Context)
	}
	return nil
}

// Documents returns the recipe's document list (before batching) drawn from
// the distribution lens.
func (r Recipe) Documents(lens []int) ([]int, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	var short, long []int
	for i, n := range lens {
		if n <= 0 {
			return nil, fmt.Errorf("disagg: recipe: document length %d at index %d must be positive", n, i)
		}
		if n < r.LongThreshold {
			short = append(short, n)
		} else {
			long = append(long, n)
		}
	}
	// DistCA cuts the short list only for a fraction strictly inside (0, 1).
	if r.KeepShort > 0 && r.KeepShort < 1 {
		short = short[:int(float64(len(short))*r.KeepShort)]
	}
	up := make([]int, 0, len(long)*r.Upsample)
	for range r.Upsample {
		up = append(up, long...)
	}
	f := r.ElongateFactor()
	rng := newNumpyRNG(r.Seed)
	if r.Dist == DistProLong {
		repl := 65536 * f
		for i := range up {
			if rng.Random() < r.ChangeLongRatio {
				up[i] = repl
			}
		}
		return append(up, short...), nil
	}
	pool := append(short, up...)
	idx, err := rng.ChoiceIndices(len(pool), r.SampleSize)
	if err != nil {
		return nil, fmt.Errorf("disagg: recipe: %w (the pool holds %d documents; lower --sample-size)", err, len(pool))
	}
	out := make([]int, len(idx))
	for i, j := range idx {
		if int64(pool[j]) > math.MaxInt32/int64(f) {
			return nil, fmt.Errorf("disagg: recipe: length %d × elongate %d overflows", pool[j], f)
		}
		out[i] = pool[j] * f
	}
	return out, nil
}

// Batcher lays a recipe's documents into context batches (DistCA's
// batch_documents). Not safe for concurrent use.
type Batcher struct {
	ctx, mult int
	docs      []int
	next      int // index of the next document
	carry     int // rest of a document cut at the last batch's end
	taken     int // batches handed out
}

// NewBatcher draws the recipe's documents from lens and returns a batcher.
func NewBatcher(lens []int, r Recipe) (*Batcher, error) {
	docs, err := r.Documents(lens)
	if err != nil {
		return nil, err
	}
	return &Batcher{ctx: r.Context, mult: r.MultipleOf, docs: docs}, nil
}

// Next returns the next context batch: document lengths summing to exactly
// Context, or, for the last one, to what is left. It returns false when the
// documents are used up.
func (b *Batcher) Next() ([]int, bool) {
	var out []int
	space := b.ctx
	for space > 0 {
		if b.carry == 0 {
			if b.next == len(b.docs) {
				break
			}
			d := b.docs[b.next]
			b.next++
			b.carry = (d + b.mult - 1) / b.mult * b.mult
		}
		piece := min(b.carry, space)
		out = append(out, piece)
		b.carry -= piece
		space -= piece
	}
	if len(out) == 0 {
		return nil, false
	}
	b.taken++
	return out, true
}

// Full returns the next n batches, each exactly Context tokens, or
// ErrRecipeExhausted (wrapped with the count) when fewer remain.
func (b *Batcher) Full(n int) ([][]int, error) {
	out := make([][]int, 0, n)
	for range n {
		batch, ok := b.Next()
		if !ok || sum(batch) != b.ctx {
			return nil, fmt.Errorf("disagg: recipe: %w after %d full batches of %d tokens", ErrRecipeExhausted, b.taken-btoi(ok), b.ctx)
		}
		out = append(out, batch)
	}
	return out, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func sum(v []int) int {
	s := 0
	for _, x := range v {
		s += x
	}
	return s
}
