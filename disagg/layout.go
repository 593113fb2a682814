package disagg

import (
	"fmt"
	"math"
)

// Range is the half-open interval [Start, End) of token positions.
type Range struct {
	Start int `json:"start"`
	End   int `json:"end"`
}

// Len returns End-Start, or 0 for an empty or inverted range.
func (r Range) Len() int { return max(0, r.End-r.Start) }

// Empty reports whether r holds no position.
func (r Range) Empty() bool { return r.End <= r.Start }

// intersect returns the overlap of r and o (possibly empty).
func (r Range) intersect(o Range) Range {
	return Range{Start: max(r.Start, o.Start), End: min(r.End, o.End)}
}

// Chunk is the part of a document that one trainer rank holds, in the
// document's own token positions.
type Chunk struct {
	Doc  int `json:"doc"`
	Rank int `json:"rank"`
	Range
}

// Layout is a global batch of documents packed sequentially onto trainer
// ranks: documents are laid end to end in order, rank r holds global token
// positions [r·TokensPerRank, (r+1)·TokensPerRank), and a document crossing a
// boundary continues on the next rank. The last ranks may be partly empty.
type Layout struct {
	ranks, tokensPerRank int
	docs                 []int
	starts               []int64 // global position of each document's first token
}

// Place packs documents of the given lengths onto ranks ranks of
// tokensPerRank tokens each.
func Place(docLens []int, ranks, tokensPerRank int) (*Layout, error) {
	if ranks <= 0 {
		return nil, fmt.Errorf("disagg: place: ranks %d must be positive", ranks)
	}
	if tokensPerRank <= 0 {
		return nil, fmt.Errorf("disagg: place: tokens per rank %d must be positive", tokensPerRank)
	}
	l := &Layout{ranks: ranks, tokensPerRank: tokensPerRank, docs: append([]int(nil), docLens...), starts: make([]int64, len(docLens))}
	var g int64
	for i, n := range docLens {
		if n <= 0 {
			return nil, fmt.Errorf("disagg: place: document %d has length %d, want > 0", i, n)
		}
		l.starts[i] = g
		g += int64(n)
	}
	if capacity := int64(ranks) * int64(tokensPerRank); g > capacity {
		return nil, fmt.Errorf("disagg: place: %d tokens exceed %d ranks × %d tokens", g, ranks, tokensPerRank)
	}
	return l, nil
}

// PlaceAcross packs documents onto ranks ranks with the smallest equal
// budget that holds them all: ceil(total/ranks) tokens each.
func PlaceAcross(docLens []int, ranks int) (*Layout, error) {
	if ranks <= 0 {
		return nil, fmt.Errorf("disagg: place: ranks %d must be positive", ranks)
	}
	var total int64
	for _, n := range docLens {
		total += int64(max(n, 0))
	}
	per := max(1, (total+int64(ranks)-1)/int64(ranks))
	if per > math.MaxInt32 {
		return nil, fmt.Errorf("disagg: place: %d tokens per rank is too many", per)
	}
	return Place(docLens, ranks, int(per))
}

// Ranks returns the number of trainer ranks.
func (l *Layout) Ranks() int { return l.ranks }

// TokensPerRank returns each rank's token budget.
func (l *Layout) TokensPerRank() int { return l.tokensPerRank }

// NumDocs returns the number of documents.
func (l *Layout) NumDocs() int { return len(l.docs) }

// DocLen returns the length of document d.
func (l *Layout) DocLen(d int) int { return l.docs[d] }

// DocLens returns a copy of the document lengths.
func (l *Layout) DocLens() []int { return append([]int(nil), l.docs...) }

// DocStart returns the global token position of document d's first token;
// token p of document d sits at global position DocStart(d)+p, on rank
// (DocStart(d)+p) / TokensPerRank, row (DocStart(d)+p) % TokensPerRank.
func (l *Layout) DocStart(d int) int64 { return l.starts[d] }

// Tokens returns the total number of tokens placed.
func (l *Layout) Tokens() int64 {
	if len(l.docs) == 0 {
		return 0
	}
	n := len(l.docs) - 1
	return l.starts[n] + int64(l.docs[n])
}

// RankTokens returns how many tokens rank r holds.
func (l *Layout) RankTokens(r int) int {
	lo := int64(r) * int64(l.tokensPerRank)
	return int(max(0, min(l.Tokens()-lo, int64(l.tokensPerRank))))
}

// HomeRank returns the rank holding token p of document d.
func (l *Layout) HomeRank(d, p int) int {
	return int((l.starts[d] + int64(p)) / int64(l.tokensPerRank))
}

// ChunkOn returns the positions of document d held by rank r (empty when r
// holds none of it).
func (l *Layout) ChunkOn(d, r int) Range {
	lo := int64(r)*int64(l.tokensPerRank) - l.starts[d]
	hi := lo + int64(l.tokensPerRank)
	n := int64(l.docs[d])
	return Range{Start: int(max(0, min(lo, n))), End: int(max(0, min(hi, n)))}
}

// Chunks returns every chunk, in rank order and, within a rank, in document
// order.
func (l *Layout) Chunks() []Chunk {
	out := make([]Chunk, 0, len(l.docs)+l.ranks)
	t := int64(l.tokensPerRank)
	for d, n := range l.docs {
		g := l.starts[d]
		for p := 0; p < n; {
			r := (g + int64(p)) / t
			end := int(min(int64(n), (r+1)*t-g))
			out = append(out, Chunk{Doc: d, Rank: int(r), Range: Range{Start: p, End: end}})
			p = end
		}
	}
	return out
}

// Span is a run of consecutive rows of one document held by one rank.
type Span struct {
	// Rank holds the rows, starting at row Row of its local buffer.
	Rank int `json:"rank"`
	Row  int `json:"row"`
	// Pos is the document position of the first row; Len the row count.
	Pos int `json:"pos"`
	Len int `json:"len"`
}

// Spans returns where rows r of document d live, in order: what a pool
// gathers for a task's queries (r = Q) or keys and values (r = KV()).
func (l *Layout) Spans(d int, r Range) []Span {
	if r.Empty() {
		return nil
	}
	t := int64(l.tokensPerRank)
	var out []Span
	for p := r.Start; p < r.End; {
		g := l.starts[d] + int64(p)
		rank := g / t
		n := int(min(int64(r.End-p), (rank+1)*t-g))
		out = append(out, Span{Rank: int(rank), Row: int(g - rank*t), Pos: p, Len: n})
		p += n
	}
	return out
}

// forEachRemoteRows calls fn(rank, rows) for every rank other than s that
// holds some of the rows r of document d.
func (l *Layout) forEachRemoteRows(d int, r Range, s int, fn func(rank, rows int)) {
	if r.Empty() {
		return
	}
	first, last := l.HomeRank(d, r.Start), l.HomeRank(d, r.End-1)
	for q := first; q <= last; q++ {
		if q == s {
			continue
		}
		if n := l.ChunkOn(d, q).intersect(r).Len(); n > 0 {
			fn(q, n)
		}
	}
}
