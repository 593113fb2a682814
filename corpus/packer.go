package corpus

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
)

// Batch is one step's tokens: documents packed back to back, document b at
// rows [CuSeqlens[b], CuSeqlens[b+1]).
type Batch struct {
	Tokens    []int32 // byte values 0..255
	CuSeqlens []int32 // B+1 boundaries: 0 = c0 < c1 < ... < cB = len(Tokens)
	// Segments says where each of the B documents came from. It is not
	// written to batches.bin; a batch read back has none.
	Segments []Segment
}

// Segment locates one document of a batch in the packer's document list.
type Segment struct {
	Doc   int // index in the documents given to NewPacker or NewValIter
	Start int // byte offset of the segment inside that document
}

// Targets is the number of predicted tokens: every row but each document's
// last one.
func (b Batch) Targets() int { return len(b.Tokens) - (len(b.CuSeqlens) - 1) }

// Check reports whether the batch is well formed: cu_seqlens start at 0,
// strictly increase and end at len(Tokens), and every token is a byte. The
// error wraps ErrBadBatch.
func (b Batch) Check() error {
	c := b.CuSeqlens
	if len(c) < 2 || c[0] != 0 || int(c[len(c)-1]) != len(b.Tokens) {
		return fmt.Errorf("%w: cu_seqlens %s do not run from 0 to %d tokens", ErrBadBatch, clip(c), len(b.Tokens))
	}
	for i := 1; i < len(c); i++ {
		if c[i] <= c[i-1] {
			return fmt.Errorf("%w: cu_seqlens[%d] = %d after %d: empty or negative document", ErrBadBatch, i, c[i], c[i-1])
		}
	}
	for i, t := range b.Tokens {
		if t < 0 || t > 255 {
			return fmt.Errorf("%w: token %d is %d, outside 0..255", ErrBadBatch, i, t)
		}
	}
	return nil
}

// clip prints at most a few values of a long slice.
func clip(c []int32) string {
	if len(c) <= 6 {
		return fmt.Sprint(c)
	}
	return fmt.Sprintf("[%d %d %d ... %d]", c[0], c[1], c[2], c[len(c)-1])
}

// add appends one document's tokens.
func (b *Batch) add(doc, start int, data []byte) {
	for _, x := range data {
		b.Tokens = append(b.Tokens, int32(x))
	}
	b.CuSeqlens = append(b.CuSeqlens, int32(len(b.Tokens)))
	b.Segments = append(b.Segments, Segment{Doc: doc, Start: start})
}

func newBatch(tokens int) Batch {
	return Batch{Tokens: make([]int32, 0, tokens), CuSeqlens: []int32{0}}
}

// Position is a packer's whole state: the next token is byte Offset of the
// document at place Index of epoch Epoch's order. Its zero value is the
// start of training; it marshals to JSON for a checkpoint.
type Position struct {
	Epoch  int `json:"epoch"`
	Index  int `json:"index"`
	Offset int `json:"offset"`
}

// Packer fills training steps of exactly T tokens; see the package
// documentation. It is not safe for concurrent use.
type Packer struct {
	docs   []Doc
	tokens int
	seed   uint64
	perm   []int // the order of pos.Epoch
	pos    Position
}

// NewPacker returns a packer over docs (which must not be empty, nor hold an
// empty document) filling steps of tokensPerStep tokens, at Position{}.
func NewPacker(docs []Doc, tokensPerStep int, seed uint64) (*Packer, error) {
	if err := checkDocs(docs, tokensPerStep); err != nil {
		return nil, err
	}
	if len(docs) == 0 {
		return nil, badOption("no training documents to pack")
	}
	p := &Packer{docs: docs, tokens: tokensPerStep, seed: seed}
	p.perm = Permutation(len(docs), seed)
	return p, nil
}

func checkDocs(docs []Doc, tokensPerStep int) error {
	if tokensPerStep <= 0 || tokensPerStep > maxBatchTokens {
		return badOption("tokens per step %d is outside 1..%d", tokensPerStep, maxBatchTokens)
	}
	for _, d := range docs {
		if len(d.Data) == 0 {
			return badOption("document %s (piece %d) is empty", d.Path, d.Piece)
		}
	}
	return nil
}

// Position returns where the next batch starts.
func (p *Packer) Position() Position { return p.pos }

// SetPosition moves the packer to pos (a Position it returned, perhaps in an
// earlier process over the same documents).
func (p *Packer) SetPosition(pos Position) error {
	if pos.Epoch < 0 || pos.Index < 0 || pos.Index >= len(p.docs) {
		return badOption("packer position %+v is outside %d documents", pos, len(p.docs))
	}
	perm := p.perm
	if pos.Epoch != p.pos.Epoch {
		perm = Permutation(len(p.docs), p.seed+uint64(pos.Epoch))
	}
	if n := len(p.docs[perm[pos.Index]].Data); pos.Offset < 0 || pos.Offset >= n {
		return badOption("packer position %+v: offset outside the document's %d bytes", pos, n)
	}
	p.pos, p.perm = pos, perm
	return nil
}

// Next returns the next step's batch of exactly T tokens.
func (p *Packer) Next() Batch {
	b := newBatch(p.tokens)
	for len(b.Tokens) < p.tokens {
		di := p.perm[p.pos.Index]
		d := p.docs[di].Data
		take := min(len(d)-p.pos.Offset, p.tokens-len(b.Tokens))
		b.add(di, p.pos.Offset, d[p.pos.Offset:p.pos.Offset+take])
		p.pos.Offset += take
		if p.pos.Offset < len(d) {
			continue
		}
		p.pos.Offset = 0
		p.pos.Index++
		if p.pos.Index == len(p.docs) {
			p.pos.Index = 0
			p.pos.Epoch++
			p.perm = Permutation(len(p.docs), p.seed+uint64(p.pos.Epoch))
		}
	}
	return b
}

// ValIter packs validation documents in their order, once, into batches of
// T tokens cut the way the Packer cuts; the last batch may be shorter.
type ValIter struct {
	docs          []Doc
	tokens        int
	index, offset int
}

// NewValIter returns an iterator over docs (possibly none) in batches of
// tokensPerStep tokens.
func NewValIter(docs []Doc, tokensPerStep int) (*ValIter, error) {
	if err := checkDocs(docs, tokensPerStep); err != nil {
		return nil, err
	}
	return &ValIter{docs: docs, tokens: tokensPerStep}, nil
}

// Next returns the next batch, or false after the last.
func (v *ValIter) Next() (Batch, bool) {
	if v.index == len(v.docs) {
		return Batch{}, false
	}
	b := newBatch(v.tokens)
	for len(b.Tokens) < v.tokens && v.index < len(v.docs) {
		d := v.docs[v.index].Data
		take := min(len(d)-v.offset, v.tokens-len(b.Tokens))
		b.add(v.index, v.offset, d[v.offset:v.offset+take])
		v.offset += take
		if v.offset == len(d) {
			v.index, v.offset = v.index+1, 0
		}
	}
	return b, true
}

// permStream is the PCG stream constant of the epoch permutations.
const permStream = 0x636f726561747465 // "coreatte"

// Permutation returns the order of n documents for one epoch: a Fisher-Yates
// shuffle driven by PCG(seed, permStream) with unbiased bounded draws, so it
// is fixed by this code rather than by math/rand's helpers.
func Permutation(n int, seed uint64) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	r := rand.NewPCG(seed, permStream)
	for i := n - 1; i > 0; i-- {
		j := bounded(r, uint64(i)+1)
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// bounded draws uniformly from [0, n) by Lemire's multiply-and-reject.
func bounded(r *rand.PCG, n uint64) int {
	hi, lo := bits.Mul64(r.Uint64(), n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(r.Uint64(), n)
		}
	}
	return int(hi)
}
