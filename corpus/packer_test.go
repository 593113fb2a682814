package corpus

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testDocs returns the real text of testdata/docs, cut at maxDoc, plus a few
// random-length documents, so packing sees lengths on both sides of T.
func testDocs(t *testing.T, maxDoc int) []Doc {
	t.Helper()
	c, err := Load(context.Background(), "testdata/docs", Options{MaxDoc: maxDoc})
	require.NoError(t, err)
	docs := c.Train
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 5 {
		data := make([]byte, 1+r.IntN(400))
		for j := range data {
			data[j] = byte(r.IntN(256))
		}
		docs = append(docs, Doc{Path: fmt.Sprintf("random/%d", i), Data: data})
	}
	return docs
}

func TestPackerAccountsForEveryToken(t *testing.T) {
	for _, tc := range []struct {
		name   string
		maxDoc int
		tokens int
	}{
		{"T smaller than most documents", 0, 97},
		{"T of one token", 0, 1},
		{"T larger than the corpus", 0, 30000},
		{"cut documents", 256, 1024},
		{"T a multiple of the cut", 64, 512},
	} {
		t.Run(tc.name, func(t *testing.T) {
			docs := testDocs(t, tc.maxDoc)
			epochLen := 0
			for _, d := range docs {
				epochLen += len(d.Data)
			}
			const epochs, seed = 3, 42
			steps := (epochs*epochLen + tc.tokens - 1) / tc.tokens
			p, err := NewPacker(docs, tc.tokens, seed)
			require.NoError(t, err)

			// cover[e][d][i] counts how often byte i of document d was packed in epoch e.
			reached := steps*tc.tokens/epochLen + 1
			cover := make([][][]int, reached)
			for e := range cover {
				cover[e] = make([][]int, len(docs))
				for d := range docs {
					cover[e][d] = make([]int, len(docs[d].Data))
				}
			}
			global := 0 // tokens packed before this segment
			order := make([][]int, reached)
			for range steps {
				b := p.Next()
				require.NoError(t, b.Check())
				require.Len(t, b.Tokens, tc.tokens, "every step has exactly T tokens")
				require.Len(t, b.Segments, len(b.CuSeqlens)-1)
				assert.Equal(t, tc.tokens-len(b.Segments), b.Targets())
				for s, seg := range b.Segments {
					lo, hi := b.CuSeqlens[s], b.CuSeqlens[s+1]
					e := global / epochLen
					data := docs[seg.Doc].Data
					require.LessOrEqual(t, seg.Start+int(hi-lo), len(data))
					for i := lo; i < hi; i++ {
						require.Equal(t, int32(data[seg.Start+int(i-lo)]), b.Tokens[i], "token %d of step", i)
						cover[e][seg.Doc][seg.Start+int(i-lo)]++
					}
					if seg.Start == 0 {
						order[e] = append(order[e], seg.Doc)
					}
					// A segment starts where its document starts or where a step starts.
					assert.True(t, seg.Start == 0 || lo == 0, "segment %d of a step starts inside its document", s)
					global += int(hi - lo)
				}
			}
			for e := range epochs {
				for d := range docs {
					for i, n := range cover[e][d] {
						require.Equal(t, 1, n, "epoch %d document %d byte %d", e, d, i)
					}
				}
				assert.Equal(t, Permutation(len(docs), seed+uint64(e)), order[e], "epoch %d walks its permutation", e)
			}
			assert.NotEqual(t, order[0], order[1], "each epoch is shuffled anew")
		})
	}
}

func TestPackerResume(t *testing.T) {
	docs := testDocs(t, 300)
	const tokens, steps = 700, 60
	ref, err := NewPacker(docs, tokens, 7)
	require.NoError(t, err)
	var want []Batch
	var at []Position
	for range steps {
		at = append(at, ref.Position())
		want = append(want, ref.Next())
	}
	require.Greater(t, ref.Position().Epoch, 1, "the run crosses epochs")
	for _, k := range []int{0, 1, 13, 29, 30, 59} {
		blob, err := json.Marshal(at[k])
		require.NoError(t, err)
		var pos Position
		require.NoError(t, json.Unmarshal(blob, &pos))
		p, err := NewPacker(docs, tokens, 7)
		require.NoError(t, err)
		require.NoError(t, p.SetPosition(pos))
		for i := k; i < steps; i++ {
			require.Equal(t, want[i], p.Next(), "resumed at step %d, step %d", k, i)
		}
	}
	other, err := NewPacker(docs, tokens, 8)
	require.NoError(t, err)
	assert.NotEqual(t, want[0].Tokens, other.Next().Tokens, "another seed packs another order")

	p, err := NewPacker(docs, tokens, 7)
	require.NoError(t, err)
	for _, bad := range []Position{{Epoch: -1}, {Index: len(docs)}, {Index: -1}, {Offset: -1}, {Offset: 1 << 20}} {
		assert.ErrorIs(t, p.SetPosition(bad), ErrBadOption, "%+v", bad)
	}
	assert.Equal(t, Position{}, p.Position(), "a rejected position changes nothing")
}

func TestPackerRejects(t *testing.T) {
	docs := testDocs(t, 0)
	for _, tc := range []struct {
		name   string
		docs   []Doc
		tokens int
	}{
		{"no documents", nil, 10},
		{"zero tokens", docs, 0},
		{"negative tokens", docs, -3},
		{"too many tokens", docs, maxBatchTokens + 1},
		{"an empty document", append(slices.Clone(docs), Doc{Path: "e"}), 10},
	} {
		_, err := NewPacker(tc.docs, tc.tokens, 1)
		assert.ErrorIs(t, err, ErrBadOption, tc.name)
	}
}

func TestValIter(t *testing.T) {
	docs := testDocs(t, 0)
	for _, tokens := range []int{1, 50, 1000, 1 << 20} {
		it, err := NewValIter(docs, tokens)
		require.NoError(t, err)
		var stream []byte
		var want []byte
		for _, d := range docs {
			want = append(want, d.Data...)
		}
		var batches []Batch
		for b, ok := it.Next(); ok; b, ok = it.Next() {
			require.NoError(t, b.Check())
			batches = append(batches, b)
			for s, seg := range b.Segments {
				lo, hi := b.CuSeqlens[s], b.CuSeqlens[s+1]
				for i := lo; i < hi; i++ {
					stream = append(stream, byte(b.Tokens[i]))
				}
				assert.Equal(t, docs[seg.Doc].Data[seg.Start:seg.Start+int(hi-lo)], stream[len(stream)-int(hi-lo):])
			}
		}
		assert.Equal(t, want, stream, "T %d: every validation byte once, in order", tokens)
		for i, b := range batches {
			if i < len(batches)-1 {
				assert.Len(t, b.Tokens, tokens)
			} else {
				assert.LessOrEqual(t, len(b.Tokens), tokens)
			}
		}
		_, ok := it.Next()
		assert.False(t, ok)
	}
	empty, err := NewValIter(nil, 10)
	require.NoError(t, err)
	_, ok := empty.Next()
	assert.False(t, ok)
}

func TestPermutation(t *testing.T) {
	for _, n := range []int{0, 1, 2, 10, 1000} {
		p := Permutation(n, 3)
		assert.ElementsMatch(t, identity(n), p, "n %d", n)
		assert.Equal(t, p, Permutation(n, 3), "deterministic")
	}
	assert.NotEqual(t, Permutation(1000, 3), Permutation(1000, 4))
	// Every element lands everywhere about equally often.
	const n, trials = 5, 20000
	var count [n][n]int
	for s := range trials {
		for i, x := range Permutation(n, uint64(s)) {
			count[i][x]++
		}
	}
	for i := range n {
		for x := range n {
			assert.InDelta(t, trials/n, count[i][x], 0.05*trials/n, "position %d value %d", i, x)
		}
	}
}

func identity(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	return p
}
