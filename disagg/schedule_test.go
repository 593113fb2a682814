package disagg

import (
	"math/rand/v2"
	"testing"

	"github.com/coreattn/coreattn/internal/batchtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// randomBatch returns document lengths that fill ranks·tokens tokens (or
// fall a little short), mixing short documents with a few that span ranks.
func flopCost(t testing.TB) CostModel {
	c, err := NewFLOPModel(Llama8B, 400e12)
	require.NoError(t, err)
	return c
}

// checkPlan asserts the CA-task invariants of p independently of Verify.
func checkPlan(t testing.TB, l *Layout, p *Plan, costs []CostModel) {
	t.Helper()
	require.NoError(t, p.Verify())
	seen := make([][]uint8, l.NumDocs())
	for d := range seen {
		seen[d] = make([]uint8, l.DocLen(d))
	}
	var pairs int64
	var in, out int64
	for s, ts := range p.Tasks {
		var load float64
		b, err := p.Batch(s)
		require.NoError(t, err)
		require.Len(t, b.CuSeqlensQ, len(ts)+1)
		for i, tk := range ts {
			for q := tk.Q.Start; q < tk.Q.End; q++ {
				seen[tk.Doc][q]++
				require.Equal(t, tk.Src, l.HomeRank(tk.Doc, q), "query row %d of document %d", q, tk.Doc)
			}
			seg := tk.Segment()
			require.Equal(t, tk.Q.End, seg.KLen, "the KV prefix of a CA-task is [0, q_end)")
			require.Equal(t, int32(seg.QLen), b.CuSeqlensQ[i+1]-b.CuSeqlensQ[i])
			require.Equal(t, int32(seg.KLen), b.CuSeqlensK[i+1]-b.CuSeqlensK[i])
			pairs += tk.Pairs()
			load += costs[min(s, len(costs)-1)].TaskTime(seg.QLen, seg.KLen, p.Pass)
		}
		assert.InDelta(t, load, p.Load[s], 1e-9*max(load, 1e-30))
		in += p.BytesIn[s]
		out += p.BytesOut[s]
	}
	for d, rows := range seen {
		for q, n := range rows {
			require.EqualValues(t, 1, n, "query row %d of document %d computed %d times", q, d, n)
		}
	}
	var want int64
	for d := range l.NumDocs() {
		want += CausalPairs(l.DocLen(d), l.DocLen(d))
	}
	assert.Equal(t, want, pairs, "total FLOPs conserved")
	assert.Equal(t, in, out, "every byte received was sent")
}

func TestScheduleProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	cost := flopCost(t)
	for i := range 40 {
		ranks := 1 + rng.IntN(12)
		tokens := 64 + rng.IntN(4096)
		lens := batchtest.Lengths(rng, ranks, tokens)
		l, err := Place(lens, ranks, tokens)
		require.NoError(t, err)
		opt := Options{Arch: Llama8B, Epsilon: []float64{0, 0.05, 0.1, 0.3}[i%4], BlockSize: []int{1, 16, 128, 0}[rng.IntN(4)], Pass: Pass(rng.IntN(3))}
		pk, err := Pack(l, []CostModel{cost}, opt)
		require.NoError(t, err)
		checkPlan(t, l, pk, []CostModel{cost})
		p, err := Schedule(l, []CostModel{cost}, opt)
		require.NoError(t, err)
		checkPlan(t, l, p, []CostModel{cost})
		assert.LessOrEqual(t, p.MaxLoad(), pk.MaxLoad()*(1+1e-9), "scheduling never raises the maximum (case %d)", i)
		for s := range ranks { // query traffic only for moved tasks
			for _, tk := range pk.Tasks[s] {
				assert.Equal(t, s, tk.Src)
			}
		}
		again, err := Schedule(l, []CostModel{cost}, opt)
		require.NoError(t, err)
		assert.Equal(t, p, again, "deterministic (case %d)", i)
	}
}

func TestScheduleBalancesTime(t *testing.T) {
	// Heterogeneous servers: the scheduler balances predicted seconds, so
	// faster servers end up with more FLOPs.
	rng := rand.New(rand.NewPCG(3, 3))
	const ranks, tokens = 8, 1 << 15
	l, err := Place(batchtest.Lengths(rng, ranks, tokens), ranks, tokens)
	require.NoError(t, err)
	costs := make([]CostModel, ranks)
	for i := range costs {
		c, err := NewFLOPModel(Llama8B, 100e12*float64(1+i%4))
		require.NoError(t, err)
		costs[i] = c
	}
	for _, eps := range []float64{0, 0.1} {
		p, err := Schedule(l, costs, Options{Arch: Llama8B, Epsilon: eps})
		require.NoError(t, err)
		checkPlan(t, l, p, costs)
		assert.LessOrEqual(t, p.Imbalance(), 1+eps+0.02, "eps %g", eps)
		for s, x := range p.Load {
			assert.InDelta(t, p.Target, x, (eps+0.02)*p.Target, "server %d", s)
		}
		var fast, slow float64 // pairs on the fastest and slowest servers
		for s, ts := range p.Tasks {
			for _, tk := range ts {
				switch s % 4 {
				case 3:
					fast += float64(tk.Pairs())
				case 0:
					slow += float64(tk.Pairs())
				}
			}
		}
		assert.Greater(t, fast, 3*slow, "a 4× faster server takes about 4× the FLOPs")
	}
}

func TestScheduleMovesAreCommunicationAware(t *testing.T) {
	// Rank 0 holds one long document, the others short ones. The moves off
	// rank 0 must carry query rows and their prefix, and nothing else moves.
	lens := []int{4096}
	for range 3 * 4096 / 256 {
		lens = append(lens, 256)
	}
	l, err := Place(lens, 4, 4096)
	require.NoError(t, err)
	cost := flopCost(t)
	p, err := Schedule(l, []CostModel{cost}, Options{Arch: Llama8B, Epsilon: 0.05, BlockSize: 16})
	require.NoError(t, err)
	checkPlan(t, l, p, []CostModel{cost})
	assert.LessOrEqual(t, p.Imbalance(), 1.05+1e-9)
	var movedRows int64
	var movedKV int64
	for s, ts := range p.Tasks {
		end := 0
		for _, tk := range ts {
			if tk.Src != s {
				assert.Equal(t, 0, tk.Src, "only the long document moves")
				movedRows += int64(tk.Q.Len())
				end = max(end, tk.Q.End)
			}
		}
		movedKV += int64(end)
	}
	require.Positive(t, movedRows)
	qIn, qOut := Llama8B.QRowBytes(PassTraining)
	kIn, kOut := Llama8B.KVRowBytes(PassTraining)
	assert.Equal(t, movedRows*(qIn+qOut)+movedKV*(kIn+kOut), p.Bytes())
	// Moving a block from the middle of the head-tail pair keeps the pieces
	// few: a handful of moves, not one per block.
	assert.Less(t, p.Moves, 10)
}

func TestScheduleErrors(t *testing.T) {
	l, err := Place([]int{10, 20}, 2, 16)
	require.NoError(t, err)
	cost := flopCost(t)
	cases := []struct {
		name  string
		l     *Layout
		costs []CostModel
		opt   Options
		want  string
	}{
		{"nil layout", nil, []CostModel{cost}, Options{Arch: Llama8B}, "layout is nil"},
		{"bad model", l, []CostModel{cost}, Options{}, "heads_q"},
		{"negative epsilon", l, []CostModel{cost}, Options{Arch: Llama8B, Epsilon: -0.1}, "epsilon -0.1"},
		{"bad block", l, []CostModel{cost}, Options{Arch: Llama8B, BlockSize: -1}, "block size -1"},
		{"bad pass", l, []CostModel{cost}, Options{Arch: Llama8B, Pass: 9}, "unknown pass"},
		{"cost count", l, []CostModel{cost, cost, cost}, Options{Arch: Llama8B}, "3 cost models for 2 servers"},
		{"nil cost", l, []CostModel{cost, nil}, Options{Arch: Llama8B}, "server 1 is nil"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Schedule(c.l, c.costs, c.opt)
			assert.ErrorContains(t, err, c.want)
			_, err = Pack(c.l, c.costs, c.opt)
			assert.ErrorContains(t, err, c.want)
		})
	}
	p, err := Pack(l, []CostModel{cost}, Options{Arch: Llama8B})
	require.NoError(t, err)
	_, err = p.Batch(2)
	assert.ErrorContains(t, err, "server 2 out of range")
}

func TestVerifyCatchesBrokenPlans(t *testing.T) {
	l, err := Place([]int{10, 20}, 2, 16)
	require.NoError(t, err)
	p, err := Pack(l, []CostModel{flopCost(t)}, Options{Arch: Llama8B})
	require.NoError(t, err)
	require.NoError(t, p.Verify())
	broken := func(mut func(p *Plan)) error {
		q := *p
		q.Tasks = [][]Task{append([]Task(nil), p.Tasks[0]...), append([]Task(nil), p.Tasks[1]...)}
		mut(&q)
		return q.Verify()
	}
	assert.ErrorContains(t, broken(func(q *Plan) { q.Tasks[1] = nil }), "not computed")
	assert.ErrorContains(t, broken(func(q *Plan) { q.Tasks[1] = append(q.Tasks[1], q.Tasks[0][0]) }), "computed twice")
	assert.ErrorContains(t, broken(func(q *Plan) { q.Tasks[0][1].Src = 1 }), "live on ranks 0..0, task says 1")
	assert.ErrorContains(t, broken(func(q *Plan) { q.Tasks[0][0].Q.End = 99 }), "invalid")
	assert.ErrorContains(t, broken(func(q *Plan) { q.Tasks[0][0].Doc = 5 }), "out of range")
	assert.ErrorContains(t, broken(func(q *Plan) { q.Tasks = q.Tasks[:1] }), "1 servers")
}

func FuzzPlan(f *testing.F) {
	f.Add([]byte{10, 200, 3, 40}, uint8(3), uint16(256), uint8(16), uint8(10))
	f.Add([]byte{255, 255, 255, 1, 1, 1}, uint8(2), uint16(300), uint8(1), uint8(0))
	f.Add([]byte{}, uint8(1), uint16(1), uint8(0), uint8(50))
	cost, err := NewFLOPModel(Llama8B, 400e12)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte, ranks uint8, tokens uint16, block uint8, epsPct uint8) {
		var lens []int
		for i := 0; i+1 < len(raw) && len(lens) < 200; i += 2 {
			lens = append(lens, int(raw[i])<<4|int(raw[i+1])&15)
		}
		l, err := Place(lens, int(ranks)%17, int(tokens))
		if err != nil {
			return // bad input is an error, not a panic
		}
		opt := Options{Arch: Llama8B, BlockSize: int(block), Epsilon: float64(epsPct) / 100}
		p, err := Schedule(l, []CostModel{cost}, opt)
		if err != nil {
			t.Fatalf("schedule of a valid layout failed: %v", err)
		}
		checkPlan(t, l, p, []CostModel{cost})
	})
}

func TestPlanWithout(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	const ranks, tokens = 6, 8192
	l, err := Place(batchtest.Lengths(rng, ranks, tokens), ranks, tokens)
	require.NoError(t, err)
	costs := []CostModel{flopCost(t)}
	p, err := Schedule(l, costs, Options{Arch: Llama8B, Epsilon: 0.05})
	require.NoError(t, err)
	q, err := p.Without([]int{2, 4}, costs)
	require.NoError(t, err)
	checkPlan(t, l, q, costs)
	assert.Empty(t, q.Tasks[2])
	assert.Empty(t, q.Tasks[4])
	assert.Zero(t, q.Load[2])
	var total, healthyMax float64
	for s, x := range q.Load {
		total += x
		if s != 2 && s != 4 {
			healthyMax = max(healthyMax, x)
		}
	}
	assert.Less(t, healthyMax, 1.3*total/4, "the orphans spread over the four healthy servers")
	assert.NotEmpty(t, p.Tasks[2], "the original plan is untouched")

	_, err = p.Without([]int{0, 1, 2, 3, 4, 5}, costs)
	assert.ErrorContains(t, err, "all 6 servers are down")
	_, err = p.Without([]int{6}, costs)
	assert.ErrorContains(t, err, "server 6 out of range")
}
