package disagg

import "fmt"

// DefaultBlockSize is the default shard granularity in tokens.
const DefaultBlockSize = 128

// Task is one CA-task: the query rows Q of document Doc, all held by trainer
// rank Src, attending to the document's key/value prefix [0, Q.End) under a
// bottom-right aligned causal mask.
type Task struct {
	Doc int   `json:"doc"`
	Src int   `json:"src"`
	Q   Range `json:"q"`
}

// Segment is the varlen-kernel segment of a task.
type Segment struct {
	QLen int `json:"q_len"`
	KLen int `json:"k_len"`
}

// Segment returns the task as a varlen segment: q_len = Q.Len(), k_len = Q.End.
func (t Task) Segment() Segment { return Segment{QLen: t.Q.Len(), KLen: t.Q.End} }

// KV returns the key/value rows of the document the task reads: [0, Q.End).
func (t Task) KV() Range { return Range{Start: 0, End: t.Q.End} }

// Pairs returns the task's unmasked (query, key) pairs.
func (t Task) Pairs() int64 { return rangePairs(t.Q.Start, t.Q.End) }

// Shards cuts r into consecutive shards of block tokens; only the last may be
// shorter. It returns nil for an empty range or block <= 0.
func Shards(r Range, block int) []Range {
	if r.Empty() || block <= 0 {
		return nil
	}
	out := make([]Range, 0, (r.Len()+block-1)/block)
	for s := r.Start; s < r.End; s += block {
		out = append(out, Range{Start: s, End: min(s+block, r.End)})
	}
	return out
}

// Item is a unit of CA work on its home rank: a head range of a document and
// the mirrored tail range of the same chunk. Either may be empty; when both
// are non-empty Head ends at or before Tail starts.
type Item struct {
	Doc  int   `json:"doc"`
	Src  int   `json:"src"`
	Head Range `json:"head"`
	Tail Range `json:"tail"`
}

// Tasks returns the item's CA-tasks: one when Head and Tail touch (they merge
// into a single segment), otherwise one per non-empty range.
func (it Item) Tasks() []Task {
	switch {
	case it.Head.Empty() && it.Tail.Empty():
		return nil
	case it.Head.Empty():
		return []Task{{Doc: it.Doc, Src: it.Src, Q: it.Tail}}
	case it.Tail.Empty():
		return []Task{{Doc: it.Doc, Src: it.Src, Q: it.Head}}
	case it.Head.End == it.Tail.Start:
		return []Task{{Doc: it.Doc, Src: it.Src, Q: Range{it.Head.Start, it.Tail.End}}}
	}
	return []Task{{Doc: it.Doc, Src: it.Src, Q: it.Head}, {Doc: it.Doc, Src: it.Src, Q: it.Tail}}
}

// Pairs returns the item's unmasked (query, key) pairs.
func (it Item) Pairs() int64 {
	return rangePairs(it.Head.Start, it.Head.End) + rangePairs(it.Tail.Start, it.Tail.End)
}

// HeadTailItems applies the head-tail split to a chunk: it cuts the chunk into
// shards of block tokens (see Shards) and pairs shard i with shard n-1-i, so
// every item of full shards carries the same FLOPs. With an odd number of
// shards the middle one forms an item alone (as its Tail).
func HeadTailItems(c Chunk, block int) ([]Item, error) {
	if block <= 0 {
		return nil, fmt.Errorf("disagg: head-tail split: block size %d must be positive", block)
	}
	sh := Shards(c.Range, block)
	n := len(sh)
	out := make([]Item, 0, (n+1)/2)
	for i := 0; i < n-1-i; i++ {
		out = append(out, Item{Doc: c.Doc, Src: c.Rank, Head: sh[i], Tail: sh[n-1-i]})
	}
	if n%2 == 1 {
		out = append(out, Item{Doc: c.Doc, Src: c.Rank, Tail: sh[n/2]})
	}
	return out, nil
}
