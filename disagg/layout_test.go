package disagg

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPlace(t *testing.T) {
	l, err := Place([]int{5, 12, 3, 4}, 3, 8)
	require.NoError(t, err)
	assert.Equal(t, int64(24), l.Tokens())
	// Global stream: doc0 [0,5) doc1 [5,17) doc2 [17,20) doc3 [20,24).
	want := []Chunk{
		{Doc: 0, Rank: 0, Range: Range{0, 5}},
		{Doc: 1, Rank: 0, Range: Range{0, 3}},
		{Doc: 1, Rank: 1, Range: Range{3, 11}},
		{Doc: 1, Rank: 2, Range: Range{11, 12}},
		{Doc: 2, Rank: 2, Range: Range{0, 3}},
		{Doc: 3, Rank: 2, Range: Range{0, 4}},
	}
	assert.Equal(t, want, l.Chunks())
	for _, c := range want {
		assert.Equal(t, c.Range, l.ChunkOn(c.Doc, c.Rank))
		for p := c.Start; p < c.End; p++ {
			assert.Equal(t, c.Rank, l.HomeRank(c.Doc, p))
		}
	}
	assert.True(t, l.ChunkOn(0, 2).Empty())
	assert.True(t, l.ChunkOn(3, 0).Empty())
	assert.Equal(t, []int{8, 8, 8}, []int{l.RankTokens(0), l.RankTokens(1), l.RankTokens(2)})

	var got []int
	l.forEachRemoteRows(1, Range{0, 12}, 1, func(rank, rows int) { got = append(got, rank, rows) })
	assert.Equal(t, []int{0, 3, 2, 1}, got)

	short, err := Place([]int{3}, 4, 8)
	require.NoError(t, err)
	assert.Equal(t, []int{3, 0, 0, 0}, []int{short.RankTokens(0), short.RankTokens(1), short.RankTokens(2), short.RankTokens(3)})
}

func TestPlaceErrors(t *testing.T) {
	cases := []struct {
		lens         []int
		ranks, toks  int
		wantContains string
	}{
		{[]int{1}, 0, 8, "ranks 0"},
		{[]int{1}, 2, -1, "tokens per rank -1"},
		{[]int{3, 0}, 2, 8, "document 1 has length 0"},
		{[]int{9, 8}, 2, 8, "17 tokens exceed 2 ranks × 8 tokens"},
	}
	for _, c := range cases {
		_, err := Place(c.lens, c.ranks, c.toks)
		assert.ErrorContains(t, err, c.wantContains)
	}
}

func TestShardsAndHeadTail(t *testing.T) {
	assert.Equal(t, []Range{{10, 14}, {14, 18}, {18, 20}}, Shards(Range{10, 20}, 4))
	assert.Nil(t, Shards(Range{5, 5}, 4))
	assert.Nil(t, Shards(Range{0, 5}, 0))

	_, err := HeadTailItems(Chunk{Range: Range{0, 10}}, 0)
	assert.ErrorContains(t, err, "block size 0")

	for _, c := range []Chunk{
		{Doc: 1, Rank: 2, Range: Range{0, 1024}},   // 8 full shards
		{Doc: 1, Rank: 2, Range: Range{300, 1452}}, // 9 full shards, odd
		{Doc: 1, Rank: 2, Range: Range{0, 1000}},   // partial last shard
	} {
		items, err := HeadTailItems(c, 128)
		require.NoError(t, err)
		covered := 0
		var pairs int64
		for _, it := range items {
			covered += it.Head.Len() + it.Tail.Len()
			pairs += it.Pairs()
			assert.Equal(t, c.Rank, it.Src)
			for _, tk := range it.Tasks() {
				assert.Equal(t, tk.Q.End, tk.Segment().KLen, "a task reads its whole causal prefix")
				assert.Equal(t, tk.Q.Len(), tk.Segment().QLen)
			}
		}
		assert.Equal(t, c.Len(), covered)
		assert.Equal(t, rangePairs(c.Start, c.End), pairs, "FLOPs conserved")
		// Items of two full shards all carry the same FLOPs.
		var full []int64
		for _, it := range items {
			if it.Head.Len() == 128 && it.Tail.Len() == 128 {
				full = append(full, it.Pairs())
			}
		}
		require.NotEmpty(t, full)
		for _, p := range full {
			assert.Equal(t, full[0], p)
		}
	}
	// Head and tail that touch make one task.
	it := Item{Doc: 0, Src: 0, Head: Range{0, 4}, Tail: Range{4, 9}}
	assert.Equal(t, []Task{{Doc: 0, Src: 0, Q: Range{0, 9}}}, it.Tasks())
}

func TestSpansAndPlaceAcross(t *testing.T) {
	l, err := Place([]int{5, 12, 3, 4}, 3, 8)
	require.NoError(t, err)
	assert.Equal(t, []Span{{Rank: 0, Row: 5, Pos: 0, Len: 3}, {Rank: 1, Row: 0, Pos: 3, Len: 8}, {Rank: 2, Row: 0, Pos: 11, Len: 1}},
		l.Spans(1, Range{0, 12}))
	assert.Equal(t, []Span{{Rank: 1, Row: 2, Pos: 5, Len: 4}}, l.Spans(1, Range{5, 9}))
	assert.Nil(t, l.Spans(1, Range{4, 4}))
	// Every row of every document maps back to its home.
	for d := range l.NumDocs() {
		for _, sp := range l.Spans(d, Range{0, l.DocLen(d)}) {
			for i := range sp.Len {
				assert.Equal(t, sp.Rank, l.HomeRank(d, sp.Pos+i))
				assert.Equal(t, l.DocStart(d)+int64(sp.Pos+i), int64(sp.Rank*8+sp.Row+i))
			}
		}
	}

	a, err := PlaceAcross([]int{5, 12, 3, 4}, 5)
	require.NoError(t, err)
	assert.Equal(t, 5, a.TokensPerRank()) // ceil(24/5)
	assert.Equal(t, 4, a.RankTokens(4))
	_, err = PlaceAcross([]int{5}, 0)
	assert.ErrorContains(t, err, "ranks 0")
	_, err = PlaceAcross([]int{5, -1}, 2)
	assert.ErrorContains(t, err, "length -1")
}
