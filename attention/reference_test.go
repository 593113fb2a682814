package attention

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// randTensor returns n uniform values in [-1, 1).
func randTensor(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.Float64()*2 - 1)
	}
	return x
}

// refInputs holds random Q, K, V and dO for a call.
type refInputs struct {
	q, k, v, do []float32
}

func newRefInputs(a *Args, seed uint64) refInputs {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	nq := a.TotalQ() * a.NumHeadsQ * a.HeadDim
	nkv := a.TotalK() * a.NumHeadsKV * a.HeadDim
	return refInputs{
		q:  randTensor(rng, nq),
		k:  randTensor(rng, nkv),
		v:  randTensor(rng, nkv),
		do: randTensor(rng, nq),
	}
}

// relErr64 returns ‖got−want‖₂/‖want‖₂ of float64 vectors.
func relErr64(got, want []float64) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var diff, norm float64
	for i := range want {
		diff += (got[i] - want[i]) * (got[i] - want[i])
		norm += want[i] * want[i]
	}
	if norm == 0 {
		return math.Sqrt(diff)
	}
	return math.Sqrt(diff / norm)
}

// segmentOf returns the segment holding row r of the offsets cu, and the
// row's index inside it.
func segmentOf(cu []int32, r int) (b, local int) {
	for b = 0; b+1 < len(cu); b++ {
		if r < int(cu[b+1]) {
			return b, r - int(cu[b])
		}
	}
	return -1, -1
}

// naiveMask reports whether packed query row i sees packed key row j,
// straight from the definition.
func naiveMask(a *Args, i, j int) bool {
	bq, iq := segmentOf(a.CuSeqlensQ, i)
	bk, jk := segmentOf(a.CuSeqlensK, j)
	if bq != bk {
		return false
	}
	qLen := int(a.CuSeqlensQ[bq+1] - a.CuSeqlensQ[bq])
	kLen := int(a.CuSeqlensK[bk+1] - a.CuSeqlensK[bk])
	return !a.Causal || jk <= iq+(kLen-qLen)
}

// naive computes the forward and backward with full [total_q, total_k]
// masked score matrices per head, independently of the reference's
// per-segment loops. Inputs are small, so the log-sum-exp is taken
// without subtracting the maximum.
func naive(a *Args, in refInputs) (o, lse, dq, dk, dv []float64) {
	tq, tk, d := a.TotalQ(), a.TotalK(), a.HeadDim
	hq, hkv := a.NumHeadsQ, a.NumHeadsKV
	scale := a.Scale()
	qa := func(i, h, c int) float64 { return float64(in.q[(i*hq+h)*d+c]) }
	doa := func(i, h, c int) float64 { return float64(in.do[(i*hq+h)*d+c]) }
	ka := func(j, g, c int) float64 { return float64(in.k[(j*hkv+g)*d+c]) }
	va := func(j, g, c int) float64 { return float64(in.v[(j*hkv+g)*d+c]) }
	o = make([]float64, tq*hq*d)
	lse = make([]float64, hq*tq)
	dq = make([]float64, tq*hq*d)
	dk = make([]float64, tk*hkv*d)
	dv = make([]float64, tk*hkv*d)
	for h := range hq {
		g := h / (hq / hkv)
		p := make([][]float64, tq)
		for i := range tq {
			p[i] = make([]float64, tk)
			var sum float64
			for j := range tk {
				if !naiveMask(a, i, j) {
					continue
				}
				var s float64
				for c := range d {
					s += qa(i, h, c) * ka(j, g, c)
				}
				p[i][j] = math.Exp(scale * s)
				sum += p[i][j]
			}
			lse[h*tq+i] = math.Log(sum) // log(0) = -Inf, fixed below
			if sum == 0 {
				lse[h*tq+i] = math.Inf(1)
				continue
			}
			for j := range tk {
				p[i][j] /= sum
				for c := range d {
					o[(i*hq+h)*d+c] += p[i][j] * va(j, g, c)
				}
			}
		}
		for i := range tq {
			var delta float64
			for c := range d {
				delta += doa(i, h, c) * o[(i*hq+h)*d+c]
			}
			for j := range tk {
				var dp float64
				for c := range d {
					dp += doa(i, h, c) * va(j, g, c)
				}
				ds := p[i][j] * (dp - delta)
				for c := range d {
					dq[(i*hq+h)*d+c] += scale * ds * ka(j, g, c)
					dk[(j*hkv+g)*d+c] += scale * ds * qa(i, h, c)
					dv[(j*hkv+g)*d+c] += p[i][j] * doa(i, h, c)
				}
			}
		}
	}
	return o, lse, dq, dk, dv
}

// refCase is a small call used by several tests.
type refCase struct {
	name string
	args Args
}

func tinyCases() []refCase {
	return []refCase{
		{"non-causal MHA", Args{CuSeqlensQ: []int32{0, 3}, CuSeqlensK: []int32{0, 4}, NumHeadsQ: 2, NumHeadsKV: 2, HeadDim: 4}},
		{"causal square GQA 2:1", Args{CuSeqlensQ: []int32{0, 4}, CuSeqlensK: []int32{0, 4}, NumHeadsQ: 4, NumHeadsKV: 2, HeadDim: 4, Causal: true}},
		{"causal shard q_len<k_len custom scale", Args{CuSeqlensQ: []int32{0, 2}, CuSeqlensK: []int32{0, 5}, NumHeadsQ: 2, NumHeadsKV: 1, HeadDim: 8, SoftmaxScale: 0.7, Causal: true}},
		{"causal varlen empty query segment GQA 4:1", Args{CuSeqlensQ: []int32{0, 2, 2, 5}, CuSeqlensK: []int32{0, 3, 6, 9}, NumHeadsQ: 4, NumHeadsKV: 1, HeadDim: 4, Causal: true}},
		{"non-causal empty key segment", Args{CuSeqlensQ: []int32{0, 2, 4}, CuSeqlensK: []int32{0, 0, 3}, NumHeadsQ: 2, NumHeadsKV: 2, HeadDim: 4, SoftmaxScale: 1.3}},
	}
}

func mediumCases() []refCase {
	return []refCase{
		{"causal CA-task shards GQA 4:1 D32", Args{CuSeqlensQ: []int32{0, 17, 17, 40, 41, 70}, CuSeqlensK: []int32{0, 30, 36, 59, 60, 99}, NumHeadsQ: 4, NumHeadsKV: 1, HeadDim: 32, Causal: true}},
		{"non-causal GQA 8:2 D20", Args{CuSeqlensQ: []int32{0, 9, 30, 33}, CuSeqlensK: []int32{0, 25, 25, 40}, NumHeadsQ: 8, NumHeadsKV: 2, HeadDim: 20, SoftmaxScale: 0.25}},
		{"causal single document D64", Args{CuSeqlensQ: []int32{0, 48}, CuSeqlensK: []int32{0, 48}, NumHeadsQ: 2, NumHeadsKV: 2, HeadDim: 64, Causal: true}},
	}
}

// loss returns sum(dO ∘ O), whose gradients ReferenceBackward computes.
func loss(t *testing.T, a *Args, in refInputs) float64 {
	o, _, err := ReferenceForward(a, in.q, in.k, in.v)
	require.NoError(t, err)
	var l float64
	for i, x := range o {
		l += float64(in.do[i]) * x
	}
	return l
}

// centralDiff differentiates loss numerically with respect to every entry
// of x, which is one of in's tensors. The step actually taken is measured
// in float64, so float32 rounding of the perturbed inputs does not bias it.
func centralDiff(t *testing.T, a *Args, in refInputs, x []float32) []float64 {
	const h = 1.0 / 1024
	grad := make([]float64, len(x))
	for i, x0 := range x {
		plus, minus := x0+h, x0-h
		x[i] = plus
		lp := loss(t, a, in)
		x[i] = minus
		lm := loss(t, a, in)
		x[i] = x0
		grad[i] = (lp - lm) / (float64(plus) - float64(minus))
	}
	return grad
}

func TestReferenceBackwardCentralDifference(t *testing.T) {
	for n, tc := range tinyCases() {
		t.Run(tc.name, func(t *testing.T) {
			in := newRefInputs(&tc.args, uint64(100+n))
			dq, dk, dv, err := ReferenceBackward(&tc.args, in.q, in.k, in.v, in.do)
			require.NoError(t, err)
			for _, c := range []struct {
				name     string
				x        []float32
				analytic []float64
			}{{"dq", in.q, dq}, {"dk", in.k, dk}, {"dv", in.v, dv}} {
				numeric := centralDiff(t, &tc.args, in, c.x)
				assert.Less(t, relErr64(c.analytic, numeric), 1e-5, "%s: analytic %v numeric %v", c.name, c.analytic, numeric)
				for i := range numeric {
					assert.InDelta(t, numeric[i], c.analytic[i], 1e-5, "%s[%d]", c.name, i)
				}
			}
		})
	}
}

func TestReferenceAgainstNaive(t *testing.T) {
	cases := append(tinyCases(), mediumCases()...)
	for n, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := newRefInputs(&tc.args, uint64(200+n))
			o, lse, err := ReferenceForward(&tc.args, in.q, in.k, in.v)
			require.NoError(t, err)
			dq, dk, dv, err := ReferenceBackward(&tc.args, in.q, in.k, in.v, in.do)
			require.NoError(t, err)
			wo, wlse, wdq, wdk, wdv := naive(&tc.args, in)
			assert.Less(t, relErr64(o, wo), 1e-12, "o")
			assert.Less(t, relErr64(dq, wdq), 1e-12, "dq")
			assert.Less(t, relErr64(dk, wdk), 1e-12, "dk")
			assert.Less(t, relErr64(dv, wdv), 1e-12, "dv")
			require.Len(t, lse, len(wlse))
			for i := range wlse {
				if math.IsInf(wlse[i], 1) {
					assert.True(t, math.IsInf(lse[i], 1), "lse[%d] = %v, want +Inf", i, lse[i])
					continue
				}
				assert.InDelta(t, wlse[i], lse[i], 1e-12, "lse[%d]", i)
			}
		})
	}
}

func TestReferenceFirstCausalRowCopiesV(t *testing.T) {
	a := &Args{CuSeqlensQ: []int32{0, 5, 12}, CuSeqlensK: []int32{0, 5, 12}, NumHeadsQ: 4, NumHeadsKV: 2, HeadDim: 16, Causal: true}
	in := newRefInputs(a, 7)
	o, lse, err := ReferenceForward(a, in.q, in.k, in.v)
	require.NoError(t, err)
	d, hq, hkv := a.HeadDim, a.NumHeadsQ, a.NumHeadsKV
	for b := range a.Batch() {
		row := int(a.CuSeqlensQ[b]) // first query row of the segment
		key := int(a.CuSeqlensK[b])
		for h := range hq {
			g := h / (hq / hkv)
			var s float64
			for c := range d {
				assert.Equal(t, float64(in.v[(key*hkv+g)*d+c]), o[(row*hq+h)*d+c], "segment %d head %d", b, h)
				s += float64(in.q[(row*hq+h)*d+c]) * float64(in.k[(key*hkv+g)*d+c])
			}
			assert.InDelta(t, a.Scale()*s, lse[h*a.TotalQ()+row], 1e-13, "lse segment %d head %d", b, h)
		}
	}
}

func TestReferenceSingleKeyLSE(t *testing.T) {
	// Non-causal segments with one key: LSE is the scaled score, O is V.
	a := &Args{CuSeqlensQ: []int32{0, 3, 7}, CuSeqlensK: []int32{0, 1, 2}, NumHeadsQ: 2, NumHeadsKV: 1, HeadDim: 8, SoftmaxScale: 0.9}
	in := newRefInputs(a, 8)
	o, lse, err := ReferenceForward(a, in.q, in.k, in.v)
	require.NoError(t, err)
	d := a.HeadDim
	for i := range a.TotalQ() {
		b, _ := segmentOf(a.CuSeqlensQ, i)
		for h := range a.NumHeadsQ {
			var s float64
			for c := range d {
				s += float64(in.q[(i*2+h)*d+c]) * float64(in.k[b*d+c])
				assert.Equal(t, float64(in.v[b*d+c]), o[(i*2+h)*d+c])
			}
			assert.InDelta(t, 0.9*s, lse[h*a.TotalQ()+i], 1e-13, "row %d head %d", i, h)
		}
	}
}

func TestReferenceLastShardRowSeesAllKeys(t *testing.T) {
	// The last query of a causal shard sees every key, as without the mask.
	causal := &Args{CuSeqlensQ: []int32{0, 6}, CuSeqlensK: []int32{0, 20}, NumHeadsQ: 2, NumHeadsKV: 1, HeadDim: 12, Causal: true}
	full := *causal
	full.Causal = false
	in := newRefInputs(causal, 9)
	oc, lc, err := ReferenceForward(causal, in.q, in.k, in.v)
	require.NoError(t, err)
	of, lf, err := ReferenceForward(&full, in.q, in.k, in.v)
	require.NoError(t, err)
	rowLen := causal.NumHeadsQ * causal.HeadDim
	last := (causal.TotalQ() - 1) * rowLen
	assert.Equal(t, of[last:], oc[last:])
	assert.NotEqual(t, of[:rowLen], oc[:rowLen], "first row must be masked")
	for h := range causal.NumHeadsQ {
		i := h*causal.TotalQ() + causal.TotalQ() - 1
		assert.Equal(t, lf[i], lc[i])
	}
}

func TestReferenceGQAEqualsExpandedMHA(t *testing.T) {
	// GQA equals MHA with every KV head repeated for its group; dK and dV
	// of a KV head are the sums over the repeated copies.
	gqa := &Args{CuSeqlensQ: []int32{0, 5, 9}, CuSeqlensK: []int32{0, 7, 11}, NumHeadsQ: 6, NumHeadsKV: 2, HeadDim: 8, Causal: true}
	mha := *gqa
	mha.NumHeadsKV = gqa.NumHeadsQ
	in := newRefInputs(gqa, 10)
	group, d := gqa.NumHeadsQ/gqa.NumHeadsKV, gqa.HeadDim
	expand := func(x []float32) []float32 {
		var out []float32
		for j := range gqa.TotalK() {
			for h := range mha.NumHeadsKV {
				g := h / group
				out = append(out, x[(j*gqa.NumHeadsKV+g)*d:(j*gqa.NumHeadsKV+g+1)*d]...)
			}
		}
		return out
	}
	ek, ev := expand(in.k), expand(in.v)
	og, lg, err := ReferenceForward(gqa, in.q, in.k, in.v)
	require.NoError(t, err)
	om, lm, err := ReferenceForward(&mha, in.q, ek, ev)
	require.NoError(t, err)
	assert.Equal(t, om, og)
	assert.Equal(t, lm, lg)

	dqg, dkg, dvg, err := ReferenceBackward(gqa, in.q, in.k, in.v, in.do)
	require.NoError(t, err)
	dqm, dkm, dvm, err := ReferenceBackward(&mha, in.q, ek, ev, in.do)
	require.NoError(t, err)
	assert.Equal(t, dqm, dqg)
	fold := func(x []float64) []float64 {
		out := make([]float64, gqa.TotalK()*gqa.NumHeadsKV*d)
		for j := range gqa.TotalK() {
			for h := range mha.NumHeadsKV {
				g := h / group
				for c := range d {
					out[(j*gqa.NumHeadsKV+g)*d+c] += x[(j*mha.NumHeadsKV+h)*d+c]
				}
			}
		}
		return out
	}
	assert.Less(t, relErr64(dkg, fold(dkm)), 1e-14)
	assert.Less(t, relErr64(dvg, fold(dvm)), 1e-14)
}

func TestReferenceUnseenRows(t *testing.T) {
	// Segment 1 has no queries: its keys get zero gradients. Segment 2 has
	// no keys (non-causal): its queries get O = 0, LSE = +Inf, dQ = 0.
	a := &Args{CuSeqlensQ: []int32{0, 3, 3, 5}, CuSeqlensK: []int32{0, 4, 8, 8}, NumHeadsQ: 2, NumHeadsKV: 1, HeadDim: 4}
	in := newRefInputs(a, 11)
	o, lse, err := ReferenceForward(a, in.q, in.k, in.v)
	require.NoError(t, err)
	dq, dk, dv, err := ReferenceBackward(a, in.q, in.k, in.v, in.do)
	require.NoError(t, err)
	row := a.NumHeadsQ * a.HeadDim
	kvRow := a.NumHeadsKV * a.HeadDim
	assert.Equal(t, make([]float64, 2*row), o[3*row:])
	assert.Equal(t, make([]float64, 2*row), dq[3*row:])
	assert.NotEqual(t, make([]float64, 3*row), o[:3*row])
	assert.Equal(t, make([]float64, 4*kvRow), dk[4*kvRow:])
	assert.Equal(t, make([]float64, 4*kvRow), dv[4*kvRow:])
	assert.NotEqual(t, make([]float64, 4*kvRow), dk[:4*kvRow])
	for h := range a.NumHeadsQ {
		for i := 3; i < 5; i++ {
			assert.True(t, math.IsInf(lse[h*a.TotalQ()+i], 1), "lse head %d row %d", h, i)
		}
	}
}

func TestReferenceStableForLargeScores(t *testing.T) {
	// Scores near 1e4 overflow exp without the row maximum subtracted.
	a := &Args{CuSeqlensQ: []int32{0, 4}, CuSeqlensK: []int32{0, 6}, NumHeadsQ: 1, NumHeadsKV: 1, HeadDim: 4, SoftmaxScale: 2000, Causal: true}
	in := newRefInputs(a, 12)
	o, lse, err := ReferenceForward(a, in.q, in.k, in.v)
	require.NoError(t, err)
	dq, dk, dv, err := ReferenceBackward(a, in.q, in.k, in.v, in.do)
	require.NoError(t, err)
	for _, x := range [][]float64{o, lse, dq, dk, dv} {
		for i, y := range x {
			require.False(t, math.IsNaN(y) || math.IsInf(y, 0), "entry %d = %v", i, y)
		}
	}
}

func TestReferenceErrors(t *testing.T) {
	a := &Args{CuSeqlensQ: []int32{0, 2}, CuSeqlensK: []int32{0, 3}, NumHeadsQ: 2, NumHeadsKV: 1, HeadDim: 4}
	in := newRefInputs(a, 13)

	_, _, err := ReferenceForward(a, in.q, in.k[1:], in.v)
	assert.EqualError(t, err, "attention: k has 11 elements, want total_k*Hkv*D = 3*1*4 = 12")
	_, _, err = ReferenceForward(nil, in.q, in.k, in.v)
	assert.EqualError(t, err, "attention: nil Args")
	_, _, _, err = ReferenceBackward(a, in.q, in.k, in.v, in.do[:3])
	assert.EqualError(t, err, "attention: do has 3 elements, want total_q*Hq*D = 2*2*4 = 16")
	_, _, _, err = ReferenceBackward(a, in.q, in.k, nil, in.do)
	assert.EqualError(t, err, "attention: v has 0 elements, want total_k*Hkv*D = 3*1*4 = 12")

	bad := *a
	bad.Causal = true
	bad.CuSeqlensK = []int32{0, 1}
	_, _, err = ReferenceForward(&bad, in.q, in.k[:4], in.v[:4])
	assert.EqualError(t, err, "attention: segment 0: causal attention needs q_len <= k_len, got q_len=2 k_len=1")
	_, _, _, err = ReferenceBackward(&bad, in.q, in.k[:4], in.v[:4], in.do)
	assert.Error(t, err)
}

func TestRelError(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		name string
		got  []float32
		want []float64
		rel  float64
	}{
		{"equal", []float32{1, -2, 3}, []float64{1, -2, 3}, 0},
		{"empty", nil, nil, 0},
		{"relative", []float32{1, 2}, []float64{1, 1}, 1 / math.Sqrt2},
		{"want zero gives norm of got", []float32{3, 4}, []float64{0, 0}, 5},
		{"equal infinities skipped", []float32{float32(inf), 2, float32(-inf)}, []float64{inf, 1, -inf}, 1},
		{"infinity in one only", []float32{float32(inf), 1}, []float64{1, 1}, inf},
		{"opposite infinities", []float32{float32(-inf)}, []float64{inf}, inf},
		{"length mismatch", []float32{1}, []float64{1, 2}, inf},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := RelError(tt.got, tt.want)
			if math.IsInf(tt.rel, 1) {
				assert.True(t, math.IsInf(got, 1), "got %v, want +Inf", got)
				return
			}
			assert.InDelta(t, tt.rel, got, 1e-15)
		})
	}
	assert.True(t, math.IsNaN(RelError([]float32{1, float32(math.NaN())}, []float64{1, 2})))
	assert.True(t, math.IsNaN(RelError([]float32{float32(inf), 1}, []float64{1, math.NaN()})))
}

// BenchmarkReference times the reference at a CA-task-sized call.
func BenchmarkReference(b *testing.B) {
	a := &Args{CuSeqlensQ: []int32{0, 1024, 2048}, CuSeqlensK: []int32{0, 1024, 3072}, NumHeadsQ: 4, NumHeadsKV: 2, HeadDim: 128, Causal: true}
	in := newRefInputs(a, 14)
	for _, pass := range []string{"forward", "backward"} {
		b.Run(fmt.Sprintf("%s/T%d", pass, a.TotalK()), func(b *testing.B) {
			for b.Loop() {
				var err error
				if pass == "forward" {
					_, _, err = ReferenceForward(a, in.q, in.k, in.v)
				} else {
					_, _, _, err = ReferenceBackward(a, in.q, in.k, in.v, in.do)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
