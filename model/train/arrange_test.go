package train

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/disagg"
	"github.com/coreattn/coreattn/model"
)

// batchOf builds a batch of documents of the given lengths with tokens
// that name their global row (mod 256).
func batchOf(lens ...int) model.Batch {
	b := model.Batch{CuSeqlens: []int32{0}}
	for _, n := range lens {
		for range n {
			b.Tokens = append(b.Tokens, int32(len(b.Tokens)%model.Vocab))
		}
		b.CuSeqlens = append(b.CuSeqlens, int32(len(b.Tokens)))
	}
	return b
}

func arrangeFor(t *testing.T, b model.Batch, slots, rows int, packing bool) *arrangement {
	t.Helper()
	c := tinyConfig(t)
	l, err := disagg.Place(docLens(b), slots, rows)
	require.NoError(t, err)
	arch := disagg.Arch{Name: "tiny", HeadsQ: c.HeadsQ, HeadsKV: c.HeadsKV, HeadDim: c.HeadDim, Layers: c.Layers, ElemBytes: 4}
	cost, err := disagg.NewFLOPModel(arch, 1e12)
	require.NoError(t, err)
	opt := disagg.Options{Arch: arch, BlockSize: 8}
	var p *disagg.Plan
	if packing {
		p, err = disagg.Pack(l, []disagg.CostModel{cost}, opt)
	} else {
		p, err = disagg.Schedule(l, []disagg.CostModel{cost}, opt)
	}
	require.NoError(t, err)
	require.NoError(t, p.Verify())
	a, err := arrange(b, p, c)
	require.NoError(t, err)
	return a
}

// TestArrange checks the invariants of a step's layout on the slots: every
// slot holds exactly its rows; positions keep counting across slots and a
// continued document's last row on a slot predicts the next slot's first
// token; the in-place segments tile a prefix of the slot with queries and
// keys on the same rows; every query row is computed exactly once, in
// place or staged, against its whole key prefix.
func TestArrange(t *testing.T) {
	for _, tt := range []struct {
		name    string
		lens    []int
		slots   int
		rows    int
		packing bool
	}{
		{"packing, documents across slots", []int{50, 3, 100, 7, 96}, 4, 64, true},
		{"CAD, one long document", []int{200, 10, 20, 26}, 4, 64, false},
		{"CAD, short documents", []int{9, 30, 1, 60, 20, 8, 100, 28}, 8, 32, false},
		{"one slot", []int{40, 24}, 1, 64, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := batchOf(tt.lens...)
			a := arrangeFor(t, b, tt.slots, tt.rows, tt.packing)
			pos, tgt := b.Positions(), b.Targets()
			computed := make([]int, len(b.Tokens)) // times each global query row is computed
			for s, p := range a.parts {
				require.Len(t, p.global, tt.rows)
				seen := map[int32]bool{}
				for i, g := range p.global {
					assert.Equal(t, s, int(g)/tt.rows, "slot %d row %d holds global row %d", s, i, g)
					assert.False(t, seen[g], "global row %d twice", g)
					seen[g] = true
					assert.Equal(t, int32(i), a.local[g])
					assert.Equal(t, b.Tokens[g], p.tokens[i])
					assert.Equal(t, pos[g], p.positions[i])
					assert.Equal(t, tgt[g], p.targets[i])
				}
				if p.inPlace != nil {
					require.NoError(t, p.inPlace.Validate())
					assert.Equal(t, p.inPlace.CuSeqlensQ, p.inPlace.CuSeqlensK)
					assert.Equal(t, p.x, p.inPlace.TotalQ())
					for seg := range p.inPlace.Batch() {
						lo, hi := p.inPlace.CuSeqlensQ[seg], p.inPlace.CuSeqlensQ[seg+1]
						first := p.global[lo]
						assert.Zero(t, pos[first], "an in-place segment starts its document")
						for i := lo; i < hi; i++ {
							assert.Equal(t, first+i-lo, p.global[i], "in-place rows are consecutive in their document")
							computed[p.global[i]]++
						}
					}
				} else {
					assert.Zero(t, p.x)
				}
			}
			for s, sv := range a.servers {
				if sv.staged == nil {
					assert.Empty(t, sv.q)
					continue
				}
				require.NoError(t, sv.staged.Validate())
				assert.Equal(t, len(sv.q), sv.staged.TotalQ())
				assert.Equal(t, len(sv.k), sv.staged.TotalK())
				for seg := range sv.staged.Batch() {
					q0, q1 := sv.staged.CuSeqlensQ[seg], sv.staged.CuSeqlensQ[seg+1]
					k0, k1 := sv.staged.CuSeqlensK[seg], sv.staged.CuSeqlensK[seg+1]
					// The keys are the document's rows from its start up to
					// the last query row.
					firstK := a.parts[sv.k[k0].slot].global[sv.k[k0].row]
					assert.Zero(t, pos[firstK], "server %d segment %d starts its keys at the document's start", s, seg)
					for i := k0; i < k1; i++ {
						g := a.parts[sv.k[i].slot].global[sv.k[i].row]
						assert.Equal(t, firstK+i-k0, g)
					}
					lastQ := a.parts[sv.q[q1-1].slot].global[sv.q[q1-1].row]
					assert.Equal(t, firstK+k1-k0-1, lastQ, "the last query row ends the key prefix")
					for i := q0; i < q1; i++ {
						g := a.parts[sv.q[i].slot].global[sv.q[i].row]
						assert.Equal(t, lastQ-(q1-1-i), g)
						computed[g]++
					}
				}
			}
			for g, n := range computed {
				assert.Equal(t, 1, n, "global row %d computed %d times", g, n)
			}
		})
	}
}

// TestArrangePacking: with packing and no document crossing a slot, every
// row is computed in place, in the order of the batch.
func TestArrangePacking(t *testing.T) {
	a := arrangeFor(t, batchOf(20, 44, 64, 10, 54), 3, 64, true)
	for s, p := range a.parts {
		assert.Equal(t, 64, p.x, "slot %d", s)
		for i, g := range p.global {
			assert.Equal(t, int32(s*64+i), g)
		}
		assert.Nil(t, a.servers[s].staged)
	}
}

// TestArrangeContinued: a document continued from an earlier slot is
// staged on its home server with its whole key prefix; the document
// starting in the slot runs in place and its rows come first.
func TestArrangeContinued(t *testing.T) {
	a := arrangeFor(t, batchOf(100, 28), 2, 64, true)
	assert.Equal(t, 64, a.parts[0].x)
	p := a.parts[1]
	assert.Equal(t, 28, p.x, "the second document, in place")
	assert.Equal(t, int32(100), p.global[0], "its first row comes first")
	sv := a.servers[1]
	require.NotNil(t, sv.staged)
	assert.Equal(t, []int32{0, 36}, sv.staged.CuSeqlensQ)
	assert.Equal(t, []int32{0, 100}, sv.staged.CuSeqlensK)
	// Its key prefix: 64 rows from slot 0, 36 from slot 1.
	from := map[int32]int{}
	for _, r := range sv.k {
		from[r.slot]++
	}
	assert.Equal(t, map[int32]int{0: 64, 1: 36}, from)
}

// TestMoveUnique: rows a move lists twice (two segments of one server
// sharing a key prefix) cross once, and every listed row finds its copy.
func TestMoveUnique(t *testing.T) {
	m := &move{src: []int32{4, 5, 6, 4, 5, 6, 7, 9}}
	uniq, pos := m.unique()
	assert.Equal(t, []int32{4, 5, 6, 7, 9}, uniq)
	for i, r := range m.src {
		assert.Equal(t, r, uniq[pos[i]])
	}
	again, _ := m.unique()
	assert.Equal(t, uniq, again)
}
