package pool

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/disagg"
	"github.com/coreattn/coreattn/disagg/server"
)

// poolTol is the relative error allowed between a pool and one call on the
// whole batch: both compute in float64 and round to float32, and only the
// order of the dK/dV sums differs.
const poolTol = 1e-5

// poolCase is a varlen call for the pool tests.
type poolCase struct {
	name    string
	qLens   []int
	kLens   []int // nil: same as qLens
	hq, hkv int
	d       int
	causal  bool
	scale   float64
}

func (c poolCase) args() *attention.Args {
	kl := c.kLens
	if kl == nil {
		kl = c.qLens
	}
	a := &attention.Args{NumHeadsQ: c.hq, NumHeadsKV: c.hkv, HeadDim: c.d, SoftmaxScale: c.scale, Causal: c.causal}
	a.CuSeqlensQ, a.CuSeqlensK = []int32{0}, []int32{0}
	for i := range c.qLens {
		a.CuSeqlensQ = append(a.CuSeqlensQ, a.CuSeqlensQ[i]+int32(c.qLens[i]))
		a.CuSeqlensK = append(a.CuSeqlensK, a.CuSeqlensK[i]+int32(kl[i]))
	}
	return a
}

// poolInputs are random inputs of a call (dO too, for the backward).
type poolInputs struct {
	a       *attention.Args
	q, k, v []float32
	do      []float32
}

func newPoolInputs(a *attention.Args, seed uint64) *poolInputs {
	rng := rand.New(rand.NewPCG(seed, 42))
	randn := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		return x
	}
	nq, nk := a.TotalQ()*a.NumHeadsQ*a.HeadDim, a.TotalK()*a.NumHeadsKV*a.HeadDim
	return &poolInputs{a: a, q: randn(nq), k: randn(nk), v: randn(nk), do: randn(nq)}
}

// refServer is an attention server on the float64 CPU reference: the pool's
// tests need no GPU.
type refServer struct {
	name string
	attention.Reference
}

func (r refServer) Info() server.Info { return server.Info{Name: r.name, CPU: true} }

func (r refServer) Forward(ctx context.Context, req *server.ForwardRequest) (*server.ForwardReply, error) {
	o, lse, err := r.Reference.Forward(ctx, req.Args, req.Q, req.K, req.V)
	if err != nil {
		return nil, err
	}
	return &server.ForwardReply{O: o, LSE: lse}, nil
}

func (r refServer) Backward(ctx context.Context, req *server.BackwardRequest) (*server.BackwardReply, error) {
	dq, dk, dv, err := r.Reference.Backward(ctx, req.Args, req.Q, req.K, req.V, req.O, req.LSE, req.DO)
	if err != nil {
		return nil, err
	}
	return &server.BackwardReply{DQ: dq, DK: dk, DV: dv}, nil
}

func (refServer) Close() error { return nil }

// refServers returns n reference servers named "server i".
func refServers(n int) []server.Server {
	out := make([]server.Server, n)
	for i := range out {
		out[i] = refServer{name: fmt.Sprintf("server %d", i)}
	}
	return out
}

// newTestPool returns a pool over the servers, wrapped by wrap when not nil.
func newTestPool(t testing.TB, ls []server.Server, opts Options, wrap func(i int, s server.Server) server.Server) *Pool {
	t.Helper()
	servers := make([]server.Server, len(ls))
	for i, s := range ls {
		servers[i] = s
		if wrap != nil {
			servers[i] = wrap(i, s)
		}
	}
	p, err := New(servers, opts)
	require.NoError(t, err)
	return p
}

func f64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// checkAccounted checks that the call completed every task of its first plan
// exactly once, and that the final plan is valid.
func checkAccounted(t *testing.T, rep *Report) {
	t.Helper()
	require.NotNil(t, rep.Plan)
	require.NoError(t, rep.Final.Verify())
	want := map[disagg.Task]int{}
	for _, ts := range rep.Plan.Tasks {
		for _, tk := range ts {
			want[tk]++
		}
	}
	got := map[disagg.Task]int{}
	for _, s := range rep.Servers {
		for _, tk := range s.Tasks {
			got[tk]++
		}
	}
	assert.Equal(t, want, got, "every task of the plan completed exactly once")
}

func TestPoolMatchesReference(t *testing.T) {
	var ref attention.Reference // the whole batch in one call
	ctx := context.Background()
	docs := poolCase{qLens: []int{200, 37, 90, 1, 150}, hq: 4, hkv: 2, d: 32, causal: true}
	cases := []struct {
		poolCase
		opts Options
	}{
		{poolCase: withName(docs, "causal documents CAD"), opts: Options{BlockSize: 16}},
		{poolCase: withName(docs, "causal documents packing"), opts: Options{BlockSize: 16, Packing: true}},
		{poolCase: withName(docs, "causal documents small batches"), opts: Options{BlockSize: 16, MaxBatchRows: 24}},
		{poolCase: poolCase{name: "CA-task shards q<k", qLens: []int{40, 0, 17, 60, 3}, kLens: []int{100, 9, 17, 60, 80}, hq: 2, hkv: 1, d: 64, causal: true}, opts: Options{BlockSize: 16, Epsilon: 0.1}},
		{poolCase: poolCase{name: "non-causal", qLens: []int{40, 70, 5}, kLens: []int{100, 20, 0}, hq: 4, hkv: 2, d: 32}, opts: Options{MaxBatchRows: 30}},
		{poolCase: poolCase{name: "custom scale GQA 4", qLens: []int{120, 64}, hq: 8, hkv: 2, d: 16, causal: true, scale: 0.37}, opts: Options{BlockSize: 8}},
	}
	p := newTestPool(t, refServers(3), Options{}, nil)
	defer p.Close()
	for ci, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p.opts = c.opts
			in := newPoolInputs(c.args(), uint64(ci+1))
			a := in.a
			wantO, wantLSE, err := ref.Forward(ctx, a, in.q, in.k, in.v)
			require.NoError(t, err)
			o, lse, rep, err := p.ForwardReport(ctx, a, in.q, in.k, in.v)
			require.NoError(t, err)
			assert.LessOrEqual(t, attention.RelError(o, f64(wantO)), poolTol, "O")
			assert.LessOrEqual(t, attention.RelError(lse, f64(wantLSE)), poolTol, "LSE")
			checkAccounted(t, rep)
			assert.Empty(t, rep.Failures)
			rows, busy := 0, 0
			for _, s := range rep.Servers {
				rows += s.QRows
				if s.Batches > 0 {
					busy++
				}
			}
			assert.Equal(t, a.TotalQ(), rows, "every query row computed once")
			assert.GreaterOrEqual(t, busy, 2, "the work is spread over several servers")
			if c.opts.MaxBatchRows > 0 {
				for _, s := range rep.Servers {
					if s.QRows > c.opts.MaxBatchRows {
						assert.Greater(t, s.Batches, 1, "%s: %d rows in batches of %d", s.Name, s.QRows, c.opts.MaxBatchRows)
					}
				}
			}

			t.Run("backward", func(t *testing.T) {
				wantDQ, wantDK, wantDV, err := ref.Backward(ctx, a, in.q, in.k, in.v, wantO, wantLSE, in.do)
				require.NoError(t, err)
				dq, dk, dv, rep, err := p.BackwardReport(ctx, a, in.q, in.k, in.v, wantO, wantLSE, in.do)
				require.NoError(t, err)
				assert.LessOrEqual(t, attention.RelError(dq, f64(wantDQ)), poolTol, "dQ")
				assert.LessOrEqual(t, attention.RelError(dk, f64(wantDK)), poolTol, "dK")
				assert.LessOrEqual(t, attention.RelError(dv, f64(wantDV)), poolTol, "dV")
				checkAccounted(t, rep)
			})
		})
	}
}

func withName(c poolCase, name string) poolCase {
	c.name = name
	return c
}

func TestPoolEmptyBatch(t *testing.T) {
	p := newTestPool(t, refServers(2), Options{}, nil)
	defer p.Close()
	a := poolCase{qLens: []int{0, 0}, kLens: []int{5, 0}, hq: 2, hkv: 1, d: 8, causal: true}.args()
	in := newPoolInputs(a, 1)
	o, lse, rep, err := p.ForwardReport(context.Background(), a, in.q, in.k, in.v)
	require.NoError(t, err)
	assert.Empty(t, o)
	assert.Empty(t, lse)
	assert.Nil(t, rep.Plan)
}

func TestPoolOptionsRejected(t *testing.T) {
	servers := refServers(2)
	for _, o := range []Options{
		{Epsilon: -1},
		{BlockSize: -3},
		{MaxBatchRows: -1},
		{Profiles: []*disagg.Profile{nil, nil, nil}},
		{Profiles: []*disagg.Profile{{Version: 99}}},
	} {
		_, err := New(servers, o)
		assert.Error(t, err, "%+v", o)
	}
	_, err := New(nil, Options{})
	assert.Error(t, err)
}

func TestPoolUsesProfiles(t *testing.T) {
	// Server 1 is profiled four times slower than server 0: the plan gives it
	// less work, and the result is still exact.
	fast := &disagg.Profile{Version: disagg.ProfileVersion, HeadsQ: 2, HeadsKV: 1, HeadDim: 32, QLens: []int{16, 256}, KVLens: []int{256, 1024},
		Forward: [][]float64{{1e-6, 4e-6}, {1e-5, 4e-5}}}
	slow := *fast
	slow.Forward = [][]float64{{4e-6, 16e-6}, {4e-5, 16e-5}}
	p := newTestPool(t, refServers(2), Options{BlockSize: 16, Profiles: []*disagg.Profile{fast, &slow}}, nil)
	defer p.Close()
	a := poolCase{qLens: []int{300, 200, 100}, hq: 2, hkv: 1, d: 32, causal: true}.args()
	in := newPoolInputs(a, 3)
	o, _, rep, err := p.ForwardReport(context.Background(), a, in.q, in.k, in.v)
	require.NoError(t, err)
	want, _, err := attention.Reference{}.Forward(context.Background(), a, in.q, in.k, in.v)
	require.NoError(t, err)
	assert.LessOrEqual(t, attention.RelError(o, f64(want)), poolTol)
	pairs := func(ts []disagg.Task) (n int64) {
		for _, t := range ts {
			n += t.Pairs()
		}
		return n
	}
	p0, p1 := pairs(rep.Final.Tasks[0]), pairs(rep.Final.Tasks[1])
	assert.Greater(t, p0, 2*p1, "the fast server gets most of the work (%d vs %d pairs)", p0, p1)
}
