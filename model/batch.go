package model

import (
	"errors"
	"fmt"
)

// ErrBatch is wrapped by every error [Batch.Validate] returns.
var ErrBatch = errors.New("model: invalid batch")

// Batch is one step's packed documents: document b is Tokens[CuSeqlens[b]:
// CuSeqlens[b+1]]. The corpus packer's batches convert field by field.
type Batch struct {
	Tokens    []int32 // byte values 0..255
	CuSeqlens []int32 // B+1 offsets: 0 = c0 < c1 < ... < cB = len(Tokens)
}

// Validate checks the offsets and the tokens and returns an error naming
// the first bad value; it wraps [ErrBatch].
func (b Batch) Validate() error {
	c := b.CuSeqlens
	if len(b.Tokens) == 0 {
		return fmt.Errorf("%w: no tokens", ErrBatch)
	}
	if len(c) < 2 || c[0] != 0 || int(c[len(c)-1]) != len(b.Tokens) {
		return fmt.Errorf("%w: cu_seqlens must run from 0 to %d tokens, got %d offsets from %v", ErrBatch, len(b.Tokens), len(c), firstLast(c))
	}
	for i := 1; i < len(c); i++ {
		if c[i] <= c[i-1] {
			return fmt.Errorf("%w: cu_seqlens[%d] = %d follows %d: documents must not be empty", ErrBatch, i, c[i], c[i-1])
		}
	}
	for i, t := range b.Tokens {
		if t < 0 || t >= Vocab {
			return fmt.Errorf("%w: token %d is %d, outside 0..%d", ErrBatch, i, t, Vocab-1)
		}
	}
	return nil
}

func firstLast(c []int32) string {
	if len(c) == 0 {
		return "[]"
	}
	return fmt.Sprintf("%d..%d", c[0], c[len(c)-1])
}

// Positions returns each token's position inside its document (0 at every
// document start), the RoPE positions.
func (b Batch) Positions() []int32 {
	pos := make([]int32, len(b.Tokens))
	for d := 0; d+1 < len(b.CuSeqlens); d++ {
		for i := b.CuSeqlens[d]; i < b.CuSeqlens[d+1]; i++ {
			pos[i] = i - b.CuSeqlens[d]
		}
	}
	return pos
}

// Targets returns the token each row predicts (the next one in its
// document), or -1 for the last row of a document.
func (b Batch) Targets() []int32 {
	tgt := make([]int32, len(b.Tokens))
	for d := 0; d+1 < len(b.CuSeqlens); d++ {
		s, e := b.CuSeqlens[d], b.CuSeqlens[d+1]
		for i := s; i < e-1; i++ {
			tgt[i] = b.Tokens[i+1]
		}
		tgt[e-1] = -1
	}
	return tgt
}

// NumTargets is the number of predicted tokens: every row but each
// document's last.
func (b Batch) NumTargets() int { return len(b.Tokens) - (len(b.CuSeqlens) - 1) }

// AttentionPairs is the number of (query, key) pairs that causal attention
// sees in the batch, per head: n(n+1)/2 per document of n tokens.
func (b Batch) AttentionPairs() int64 {
	var p int64
	for d := 0; d+1 < len(b.CuSeqlens); d++ {
		n := int64(b.CuSeqlens[d+1] - b.CuSeqlens[d])
		p += n * (n + 1) / 2
	}
	return p
}

// TrainFLOPs is the model FLOPs of one training step on b (forward and
// backward, no recomputation counted): 6 per matmul parameter and token,
// and 12 Hq Dh per visible attention pair per layer (QKᵀ and PV forward,
// their four products backward).
func (c Config) TrainFLOPs(b Batch) float64 {
	return 6*float64(c.MatmulParams())*float64(len(b.Tokens)) +
		12*float64(c.Layers)*float64(c.QDim())*float64(b.AttentionPairs())
}
