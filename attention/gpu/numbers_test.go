package gpu

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/shaders"
	"github.com/coreattn/coreattn/wgpu"
)

// Tests of the numbers the kernels promise (issue 24): any finite scores,
// however large, and NaN or infinite inputs, as the float64 reference
// computes them (see the package attention documentation).

// extremeScores fills Q, K and V (rounded to a.DType) for scores of the
// sign of target whose largest magnitude is |target|, and sets a's scale
// to get there: Q rows are positive, and every key row is one of a pool of
// four positive rows (negated for a negative target), so that each query
// row sees a few distinct scores, far apart, and exact ties, whose weights
// split evenly.
func extremeScores(a *attention.Args, rng *rand.Rand, target float64) (q, k, v []float32) {
	d := a.HeadDim
	pos := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(0.5 + math.Abs(rng.NormFloat64()))
		}
		return x
	}
	q = attention.Round(a.DType, pos(a.TotalQ()*a.NumHeadsQ*d))
	pool := attention.Round(a.DType, pos(4*d))
	sign := float32(math.Copysign(1, target))
	k = make([]float32, a.TotalK()*a.NumHeadsKV*d)
	for r := range a.TotalK() * a.NumHeadsKV {
		row := pool[rng.IntN(4)*d:][:d]
		for c, x := range row {
			k[r*d+c] = sign * x
		}
	}
	v = attention.Round(a.DType, randn(rng, len(k)))
	var most float64 // the largest |q·k|
	for i := range a.TotalQ() * a.NumHeadsQ {
		for p := range 4 {
			var s float64
			for c := range d {
				s += float64(q[i*d+c]) * float64(pool[p*d+c])
			}
			most = max(most, s)
		}
	}
	a.SoftmaxScale = math.Abs(target) / most
	return q, k, v
}

// extremeShapes are causal and full batches for the extreme scores: rows
// that see one key, shards (q_len < k_len), blocks whose first rows see
// whole key tiles masked, and a segment without keys.
var extremeShapes = []gpuCase{
	{name: "causal", qLens: []int{150, 40, 1}, kLens: []int{150, 300, 1}, hq: 2, hkv: 1, d: 32, causal: true},
	{name: "full", qLens: []int{30, 5}, kLens: []int{70, 0}, hq: 2, hkv: 1, d: 32},
}

// TestForwardExtremeScores checks O and LSE against the float64 reference
// where the scaled scores are huge: -1e31 and -1e35 lie below the old
// kernels' finite mask (-1e30 in the log2 domain), ±3e38 overflow the log2
// domain (|S|·log2(e) > 3.4e38) while finite in f32. Rows see one key,
// whole masked key tiles (Br 64 over Bc 16) and split-KV pieces they see
// none of; f32, f16 and bf16 storage.
func TestForwardExtremeScores(t *testing.T) {
	dev := testOp(t).Device()
	lim := dev.Limits()
	type variant struct {
		name   string
		tiling func(d int, dt shaders.DType) shaders.FwdTiling
		split  int
	}
	chosen := func(gpu bool) func(int, shaders.DType) shaders.FwdTiling {
		return func(d int, dt shaders.DType) shaders.FwdTiling {
			tl, err := shaders.ChooseFwd(d, dt, int(lim.MaxWorkgroupStorageSize), int(lim.MaxInvocationsPerWorkgroup))
			require.NoError(t, err)
			tl.CPU = !gpu
			return tl
		}
	}
	tall := func(int, shaders.DType) shaders.FwdTiling {
		return shaders.FwdTiling{TX: 4, TY: 8, RM: 8, KC: 4, VC: 2, CPU: true} // Br 64, Bc 16
	}
	variants := []variant{
		{"cpu pattern", chosen(false), -1},
		{"gpu pattern", chosen(true), -1},
		{"br 64 bc 16", tall, -1},
		{"split-kv 32", chosen(true), 32},
	}
	for _, dt := range []attention.DType{attention.Float32, attention.Float16, attention.BFloat16} {
		tolO := map[attention.DType]float64{attention.Float32: 1e-4, attention.Float16: 1e-3, attention.BFloat16: 1e-2}[dt]
		for vi, vr := range variants {
			if dt != attention.Float32 && vi%2 == 0 {
				continue // halves: the GPU pattern and split pieces only
			}
			for si, sh := range extremeShapes {
				for ti, target := range []float64{-1e31, -1e35, -3e38, 1e35, 3e38} {
					t.Run(fmt.Sprintf("%s/%s/%s/%g", dt, vr.name, sh.name, target), func(t *testing.T) {
						a := sh.args()
						a.DType = dt
						rng := rand.New(rand.NewPCG(uint64(100*si+ti), 0xe1))
						q, k, v := extremeScores(a, rng, target)
						require.NoError(t, a.Validate())
						wantO, wantLSE, err := attention.ReferenceForward(a, q, k, v)
						require.NoError(t, err)
						tl := vr.tiling(a.HeadDim, a.DType)
						op := NewWithOptions(dev, Options{ForwardTiling: tl, SplitKV: vr.split})
						ft := ForwardTensors{
							Q: uploadAs(t, dev, "q", dt, q), K: uploadAs(t, dev, "k", dt, k), V: uploadAs(t, dev, "v", dt, v),
							O: uploadAs(t, dev, "o", dt, nanSlice(len(q))), LSE: poisoned(t, dev, "lse", len(wantLSE)),
						}
						call, err := op.PrepareForward(a, ft)
						require.NoError(t, err)
						defer call.Release()
						if vr.split > 0 && sh.causal {
							require.Contains(t, call.Tiling, "split-kv", "the case must split")
						}
						_, err = dev.Run(context.Background(), call.Dispatches()...)
						require.NoError(t, err)
						gotO, err := Download(context.Background(), ft.O, dt, len(q))
						require.NoError(t, err)
						requireAgrees(t, "O", gotO, wantO, tolO, nil)
						requireAgrees(t, "LSE", download(t, ft.LSE, len(wantLSE)), wantLSE, 1e-6, nil)
					})
				}
			}
		}
	}
}

// requireAgrees compares got with the reference want element by element:
// NaN where want is NaN; the same infinity, or NaN, where want is
// infinite; finite where want is finite, except that NaN is allowed at
// the indices mayNaN admits (nil: none); and the entries finite in both
// within tol, as ‖got−want‖/‖want‖.
func requireAgrees(t *testing.T, name string, got []float32, want []float64, tol float64, mayNaN func(i int) bool) {
	t.Helper()
	require.Len(t, got, len(want), name)
	var diff, norm float64
	for i, w := range want {
		g := float64(got[i])
		switch {
		case math.IsNaN(w):
			require.True(t, math.IsNaN(g), "%s[%d] = %v, want NaN", name, i, g)
		case math.IsInf(w, 0):
			require.True(t, math.IsNaN(g) || g == w, "%s[%d] = %v, want %v (or NaN)", name, i, g, w)
		case math.IsNaN(g) && mayNaN != nil && mayNaN(i):
		default:
			require.False(t, math.IsNaN(g) || math.IsInf(g, 0), "%s[%d] = %v, want %v", name, i, g, w)
			diff += (g - w) * (g - w)
			norm += w * w
		}
	}
	if norm > 0 {
		diff /= norm
	}
	require.LessOrEqual(t, math.Sqrt(diff), tol, "relative error of the finite entries of %s", name)
}

// countNonFinite is the number of NaNs and infinities in x, to check that
// a case has some.
func countNonFinite(x []float64) int {
	n := 0
	for _, v := range x {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			n++
		}
	}
	return n
}

// nanTile is how far from the causal diagonal a non-finite value that a
// row cannot see may still reach it through a shared tile in the backward
// (the documented exception): every kernel's row and column tiles are at
// most this long.
const nanTile = 128

// spoil sets element (row, head, col) of a tensor with heads heads of dim
// d to x.
func spoil(t []float32, heads, d, row, head, col int, x float32) {
	t[(row*heads+head)*d+col] = x
}

// description of a poisoned input for the forward and backward tables.
type spoiled struct {
	name   string
	tensor string // q, k, v or do
	seg    int    // the segment, and the row within it
	row    int
	col    int
	x      float32
	// zone is whether the documented exception applies: NaN may reach
	// the rows of a poisoned key's query block before its diagonal (V in
	// the forward), or in the backward keys within nanTile after the
	// diagonal of a poisoned query row, or queries before that of a
	// poisoned key.
	zone bool
}

// nanShape is the batch of the NaN and Inf tests: a long causal segment
// (rows far from a poisoned value's diagonal share no tile with it) and
// shards beside it.
var nanShape = gpuCase{name: "nan", qLens: []int{300, 40, 100}, kLens: []int{300, 90, 110}, hq: 2, hkv: 1, d: 64, causal: true}

var nan32, inf32 = float32(math.NaN()), float32(math.Inf(1))

// fwdSpoiled are the forward's poisoned inputs: NaN and Inf in Q, K and V
// of the long segment (K's masked-out keys never reach the rows that
// cannot see them), in the shard, and a row whose only key scores -Inf.
var fwdSpoiled = []spoiled{
	{name: "nan q", tensor: "q", seg: 0, row: 200, col: 3, x: nan32},
	{name: "inf q", tensor: "q", seg: 0, row: 200, col: 3, x: inf32},
	{name: "nan k", tensor: "k", seg: 0, row: 250, col: 5, x: nan32},
	{name: "inf k", tensor: "k", seg: 0, row: 250, col: 5, x: inf32},
	{name: "-inf k, first key", tensor: "k", seg: 0, row: 0, col: 5, x: -inf32},
	{name: "nan v", tensor: "v", seg: 0, row: 250, col: 7, x: nan32, zone: true},
	{name: "inf v", tensor: "v", seg: 0, row: 250, col: 7, x: inf32, zone: true},
	{name: "nan k in the shard", tensor: "k", seg: 1, row: 60, col: 0, x: nan32},
	{name: "nan v in the shard", tensor: "v", seg: 1, row: 89, col: 0, x: nan32, zone: true},
	// Key 80 of the third segment (delta 10) is first seen by row 70, in
	// the second query block of 64 rows; the first block sees keys up to
	// 73, but its last key tile reaches past them.
	{name: "nan v past a block's keys", tensor: "v", seg: 2, row: 80, col: 1, x: nan32, zone: true},
}

// inputs returns fresh random inputs of a (rounded to its dtype) with the
// poisoned value in place.
func (s spoiled) inputs(t *testing.T, a *attention.Args, seed uint64) (q, k, v, do []float32) {
	rng := rand.New(rand.NewPCG(seed, 0x4a))
	nq, nk := a.TotalQ()*a.NumHeadsQ*a.HeadDim, a.TotalK()*a.NumHeadsKV*a.HeadDim
	q, k, v, do = randn(rng, nq), randn(rng, nk), randn(rng, nk), randn(rng, nq)
	if s.name == "-inf k, first key" {
		// Q's column col positive in every row: the key scores -Inf for
		// all, which is the only key that row 0 sees.
		for i := range a.TotalQ() * a.NumHeadsQ {
			q[i*a.HeadDim+s.col] = float32(math.Abs(float64(q[i*a.HeadDim+s.col])) + 0.1)
		}
	}
	switch s.tensor {
	case "q":
		spoil(q, a.NumHeadsQ, a.HeadDim, int(a.CuSeqlensQ[s.seg])+s.row, 0, s.col, s.x)
	case "do":
		spoil(do, a.NumHeadsQ, a.HeadDim, int(a.CuSeqlensQ[s.seg])+s.row, 0, s.col, s.x)
	case "k":
		spoil(k, a.NumHeadsKV, a.HeadDim, int(a.CuSeqlensK[s.seg])+s.row, 0, s.col, s.x)
	case "v":
		spoil(v, a.NumHeadsKV, a.HeadDim, int(a.CuSeqlensK[s.seg])+s.row, 0, s.col, s.x)
	default:
		t.Fatalf("unknown tensor %q", s.tensor)
	}
	r := func(x []float32) []float32 { return attention.Round(a.DType, x) }
	return r(q), r(k), r(v), r(do)
}

// diagonal is the first query row of segment seg that sees key j.
func diagonal(a *attention.Args, seg, j int) int {
	ql, kl := a.Segment(seg)
	return j - (kl - ql)
}

// rowZone admits NaN in the query rows (of the whole batch) of the block of
// br rows that holds the diagonal of s's poisoned key, before the
// diagonal.
func (s spoiled) rowZone(a *attention.Args, br int) func(row int) bool {
	if !s.zone {
		return nil
	}
	q0 := int(a.CuSeqlensQ[s.seg])
	diag := diagonal(a, s.seg, s.row)
	first := q0 + diag/br*br
	return func(row int) bool { return row >= first && row < q0+diag }
}

// TestForwardNonFinite checks the forward's NaN and Inf semantics against
// the reference: a row's O and LSE are NaN where it sees a NaN or +Inf
// score, or only -Inf ones; NaN and Inf in V reach O of the rows that see
// them (the rows a causal mask hides them from only within one tile of the
// diagonal); rows that cannot see a poisoned key, and other segments, are
// exact. Both fetch patterns, split-KV pieces, f32 and f16.
func TestForwardNonFinite(t *testing.T) {
	dev := testOp(t).Device()
	lim := dev.Limits()
	for _, dt := range []attention.DType{attention.Float32, attention.Float16} {
		tol := map[attention.DType]float64{attention.Float32: 1e-4, attention.Float16: 1e-2}[dt]
		for _, v := range []struct {
			name  string
			gpu   bool
			split int
		}{{"cpu pattern", false, -1}, {"gpu pattern", true, -1}, {"split-kv 64", true, 64}} {
			for si, s := range fwdSpoiled {
				t.Run(fmt.Sprintf("%s/%s/%s", dt, v.name, s.name), func(t *testing.T) {
					a := nanShape.args()
					a.DType = dt
					q, k, vv, _ := s.inputs(t, a, uint64(si))
					wantO, wantLSE, err := attention.ReferenceForward(a, q, k, vv)
					require.NoError(t, err)
					require.Positive(t, countNonFinite(wantO), "the case must make some of O NaN or infinite")
					tl, err := shaders.ChooseFwd(a.HeadDim, a.DType, int(lim.MaxWorkgroupStorageSize), int(lim.MaxInvocationsPerWorkgroup))
					require.NoError(t, err)
					tl.CPU = !v.gpu
					op := NewWithOptions(dev, Options{ForwardTiling: tl, SplitKV: v.split})
					ft := ForwardTensors{
						Q: uploadAs(t, dev, "q", dt, q), K: uploadAs(t, dev, "k", dt, k), V: uploadAs(t, dev, "v", dt, vv),
						O: uploadAs(t, dev, "o", dt, nanSlice(len(q))), LSE: poisoned(t, dev, "lse", len(wantLSE)),
					}
					call, err := op.PrepareForward(a, ft)
					require.NoError(t, err)
					defer call.Release()
					if v.split > 0 {
						require.Contains(t, call.Tiling, "split-kv", "the case must split")
					}
					_, err = dev.Run(context.Background(), call.Dispatches()...)
					require.NoError(t, err)
					gotO, err := Download(context.Background(), ft.O, dt, len(q))
					require.NoError(t, err)
					zone := s.rowZone(a, tl.BR())
					var oZone func(int) bool
					if zone != nil {
						oZone = func(i int) bool { return zone(i / (a.NumHeadsQ * a.HeadDim)) }
					}
					requireAgrees(t, "O", gotO, wantO, tol, oZone)
					requireAgrees(t, "LSE", download(t, ft.LSE, len(wantLSE)), wantLSE, 1e-4, nil)
				})
			}
		}
	}
}

// bwdSpoiled are the backward's poisoned inputs, beside the forward's. A
// NaN or Inf in V or dO of a key or query that the causal mask hides
// reaches no gradient through dP (masked dS is 0 exactly); in a segment
// of its own it leaves the others exact, also with dQ fused (whose scale
// leaves non-finite inputs out).
var bwdSpoiled = append(fwdSpoiled[:len(fwdSpoiled):len(fwdSpoiled)],
	spoiled{name: "nan do", tensor: "do", seg: 0, row: 120, col: 2, x: nan32, zone: true},
	spoiled{name: "inf do", tensor: "do", seg: 0, row: 120, col: 2, x: inf32, zone: true},
	spoiled{name: "nan do in the shard", tensor: "do", seg: 1, row: 3, col: 2, x: nan32, zone: true},
)

// bwdZones admits NaN where the documented exception allows it: in dQ of
// the rows within nanTile before a poisoned key's diagonal (K: dQ reads
// it across the tile), in dK of the keys within nanTile after a poisoned
// query row's diagonal (Q), in dV of those keys (dO).
func (s spoiled) bwdZones(a *attention.Args) (dq, dk, dv func(int) bool) {
	qRow := func(i int) int { return i / (a.NumHeadsQ * a.HeadDim) }
	kRow := func(i int) int { return i / (a.NumHeadsKV * a.HeadDim) }
	ql, kl := a.Segment(s.seg)
	q0, k0 := int(a.CuSeqlensQ[s.seg]), int(a.CuSeqlensK[s.seg])
	switch s.tensor {
	case "k":
		diag := q0 + diagonal(a, s.seg, s.row)
		dq = func(i int) bool { r := qRow(i); return r >= max(diag-nanTile, q0) && r < diag }
	case "q", "do":
		last := k0 + s.row + kl - ql // the last key the row sees
		zone := func(i int) bool { r := kRow(i); return r > last && r <= last+nanTile && r < k0+kl }
		if s.tensor == "q" {
			dk = zone
		} else {
			dv = zone
		}
	}
	return dq, dk, dv
}

// TestBackwardNonFinite checks the backward's NaN and Inf semantics
// against the reference, from the reference forward's O and LSE (NaN in
// the rows it makes NaN), with dQ fused, separate and from stored dS, f32
// and f16: gradients the reference makes NaN are NaN, infinite ones
// infinite or NaN, and the others exact, except within one tile of the
// diagonal where a hidden NaN in K, Q or dO is documented to reach.
func TestBackwardNonFinite(t *testing.T) {
	dev := testOp(t).Device()
	for _, dt := range []attention.DType{attention.Float32, attention.Float16} {
		tol := map[attention.DType]float64{attention.Float32: 1e-4, attention.Float16: 1e-2}[dt]
		for _, mode := range []DQMode{DQFused, DQSeparate, DQStored} {
			op := NewWithOptions(dev, Options{DQ: mode})
			for si, s := range bwdSpoiled {
				t.Run(fmt.Sprintf("%s/%s/%s", dt, mode, s.name), func(t *testing.T) {
					a := nanShape.args()
					a.DType = dt
					q, k, v, do := s.inputs(t, a, uint64(si))
					o64, lse64, err := attention.ReferenceForward(a, q, k, v)
					require.NoError(t, err)
					wantDQ, wantDK, wantDV, err := attention.ReferenceBackward(a, q, k, v, do)
					require.NoError(t, err)
					require.Positive(t, countNonFinite(wantDQ)+countNonFinite(wantDK)+countNonFinite(wantDV), "the case must make some gradient NaN or infinite")
					o, lse := toF32(o64), toF32(lse64)
					bt := BackwardTensors{
						Q: uploadAs(t, dev, "q", dt, q), K: uploadAs(t, dev, "k", dt, k), V: uploadAs(t, dev, "v", dt, v),
						O: uploadAs(t, dev, "o", dt, o), DO: uploadAs(t, dev, "do", dt, do), LSE: upload(t, dev, "lse", lse),
						DQ: uploadAs(t, dev, "dq", dt, nanSlice(len(q))), DK: uploadAs(t, dev, "dk", dt, nanSlice(len(k))), DV: uploadAs(t, dev, "dv", dt, nanSlice(len(v))),
					}
					call, err := op.PrepareBackward(a, bt)
					require.NoError(t, err)
					defer call.Release()
					require.Contains(t, call.Tiling, map[DQMode]string{DQFused: "fused-dq", DQStored: "stored-ds", DQSeparate: ""}[mode])
					_, err = dev.Run(context.Background(), call.Dispatches()...)
					require.NoError(t, err)
					get := func(b *wgpu.Buffer, n int) []float32 {
						x, err := Download(context.Background(), b, dt, n)
						require.NoError(t, err)
						return x
					}
					zq, zk, zv := s.bwdZones(a)
					requireAgrees(t, "dQ", get(bt.DQ, len(q)), wantDQ, tol, zq)
					requireAgrees(t, "dK", get(bt.DK, len(k)), wantDK, tol, zk)
					requireAgrees(t, "dV", get(bt.DV, len(v)), wantDV, tol, zv)
				})
			}
		}
	}
}
