package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// SampleConfig holds the knobs of the DistCA evaluation's batch recipe. The
// defaults (DefaultSampleConfig) are the paper's script defaults.
type SampleConfig struct {
	// Servers and TokensPerServer size the global batch: every batch holds
	// exactly Servers·TokensPerServer tokens.
	Servers         int `json:"servers"`
	TokensPerServer int `json:"tokens_per_server"`
	// LongThreshold separates long documents (length >= threshold, before
	// elongation) from short ones. Default 65536.
	LongThreshold int `json:"long_threshold"`
	// UpsampleLong replicates every long document this many times in the
	// pool. Default 4.
	UpsampleLong int `json:"upsample_long"`
	// KeepShort is the fraction of short documents kept in the pool (the
	// first ones, in file order). Default 0.5.
	KeepShort float64 `json:"keep_short"`
	// SampleSize documents are drawn from the pool without replacement at a
	// time. Default 10000.
	SampleSize int `json:"sample_size"`
	// ElongateBase: every drawn length is multiplied by
	// TokensPerServer/ElongateBase (the "elongate" factor). Default 65536.
	ElongateBase int `json:"elongate_base"`
	// ReplaceLongProb is the probability that a long document of the pool is
	// replaced by one of exactly ReplaceLongLen tokens (before elongation).
	// ProLong: 0.3 and 65536; pretrain: 0.
	ReplaceLongProb float64 `json:"replace_long_prob"`
	ReplaceLongLen  int     `json:"replace_long_len"`
	// MaxDoc, when positive, cuts longer (elongated) documents into pieces of
	// at most MaxDoc tokens, each its own document.
	MaxDoc int `json:"max_doc"`
}

// DefaultSampleConfig returns the paper's recipe for distribution dist
// ("prolong" turns on long-document replacement; anything else is treated like
// "pretrain") for servers servers of tokensPerServer tokens.
func DefaultSampleConfig(dist string, servers, tokensPerServer int) SampleConfig {
	c := SampleConfig{
		Servers: servers, TokensPerServer: tokensPerServer,
		LongThreshold: 65536, UpsampleLong: 4, KeepShort: 0.5, SampleSize: 10000,
		ElongateBase: 65536, ReplaceLongLen: 65536,
	}
	if dist == "prolong" {
		c.ReplaceLongProb = 0.3
	}
	return c
}

// Validate reports the first bad knob.
func (c SampleConfig) Validate() error {
	switch {
	case c.Servers <= 0:
		return fmt.Errorf("disagg: sample: servers %d must be positive", c.Servers)
	case c.TokensPerServer <= 0:
		return fmt.Errorf("disagg: sample: tokens per server %d must be positive", c.TokensPerServer)
	case c.LongThreshold <= 0:
		return fmt.Errorf("disagg: sample: long threshold %d must be positive", c.LongThreshold)
	case c.UpsampleLong < 1:
		return fmt.Errorf("disagg: sample: long-document upsampling %d must be at least 1", c.UpsampleLong)
	case !(c.KeepShort >= 0 && c.KeepShort <= 1):
		return fmt.Errorf("disagg: sample: short-document keep fraction %g must be in [0, 1]", c.KeepShort)
	case c.SampleSize <= 0:
		return fmt.Errorf("disagg: sample: sample size %d must be positive", c.SampleSize)
	case c.ElongateBase <= 0:
		return fmt.Errorf("disagg: sample: elongate base %d must be positive", c.ElongateBase)
	case !(c.ReplaceLongProb >= 0 && c.ReplaceLongProb <= 1):
		return fmt.Errorf("disagg: sample: long-document replacement probability %g must be in [0, 1]", c.ReplaceLongProb)
	case c.ReplaceLongProb > 0 && c.ReplaceLongLen <= 0:
		return fmt.Errorf("disagg: sample: replacement length %d must be positive", c.ReplaceLongLen)
	case c.MaxDoc < 0:
		return fmt.Errorf("disagg: sample: max document length %d must not be negative", c.MaxDoc)
	}
	return nil
}

// Elongate returns the factor every drawn length is multiplied by.
func (c SampleConfig) Elongate() float64 {
	return float64(c.TokensPerServer) / float64(c.ElongateBase)
}

// Sampler draws global batches of document lengths the DistCA way. It is
// deterministic for a given distribution, config and seed. Not safe for
// concurrent use.
type Sampler struct {
	cfg  SampleConfig
	pool []int
	perm []int32
	rng  *rand.Rand
}

// NewSampler builds the pool from the distribution lens: the first
// KeepShort of the short documents, every long document UpsampleLong times,
// each long copy replaced with probability ReplaceLongProb.
func NewSampler(lens []int, cfg SampleConfig, seed uint64) (*Sampler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var short, long []int
	for i, n := range lens {
		if n <= 0 {
			return nil, fmt.Errorf("disagg: sample: document length %d at index %d must be positive", n, i)
		}
		if n >= cfg.LongThreshold {
			long = append(long, n)
		} else {
			short = append(short, n)
		}
	}
	s := &Sampler{cfg: cfg, rng: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))}
	s.pool = append(s.pool, short[:int(float64(len(short))*cfg.KeepShort)]...)
	for range cfg.UpsampleLong {
		for _, n := range long {
			if cfg.ReplaceLongProb > 0 && s.rng.Float64() < cfg.ReplaceLongProb {
				n = cfg.ReplaceLongLen
			}
			s.pool = append(s.pool, n)
		}
	}
	if len(s.pool) == 0 {
		return nil, fmt.Errorf("disagg: sample: the pool is empty (%d documents, keep-short %g)", len(lens), cfg.KeepShort)
	}
	s.perm = make([]int32, len(s.pool))
	for i := range s.perm {
		s.perm[i] = int32(i)
	}
	return s, nil
}

// Next returns one global batch: elongated (and MaxDoc-cut) lengths of
// documents drawn without replacement, in draw order, exactly filling
// Servers·TokensPerServer tokens; the last document is truncated to fit.
// When one draw of SampleSize documents falls short, another draw follows.
func (s *Sampler) Next() []int {
	need := int64(s.cfg.Servers) * int64(s.cfg.TokensPerServer)
	f := s.cfg.Elongate()
	var out []int
	for need > 0 {
		k := min(s.cfg.SampleSize, len(s.perm))
		for i := range k { // partial Fisher–Yates: perm[:k] is a uniform draw
			j := i + s.rng.IntN(len(s.perm)-i)
			s.perm[i], s.perm[j] = s.perm[j], s.perm[i]
		}
		for _, idx := range s.perm[:k] {
			n := max(1, int(math.Round(float64(s.pool[idx])*f)))
			for n > 0 && need > 0 {
				piece := n
				if s.cfg.MaxDoc > 0 {
					piece = min(piece, s.cfg.MaxDoc)
				}
				piece = int(min(int64(piece), need))
				out = append(out, piece)
				n -= piece
				need -= int64(piece)
			}
			if need == 0 {
				break
			}
		}
	}
	return out
}
