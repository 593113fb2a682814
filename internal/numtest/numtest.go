// Package numtest holds the inputs and the checks of the tests of the
// attention kernels' numbers (issue 24): scores of any finite size, and
// NaN and infinite inputs, compared element by element with the float64
// reference, whose semantics the kernels share (see package attention).
package numtest

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/coreattn/coreattn/attention"
)

// Agree compares got with the reference want element by element: NaN
// where want is NaN; the same infinity, or NaN, where want is infinite;
// finite where want is finite, except that NaN is allowed at the indices
// mayNaN admits (nil: none); and the entries finite in both within tol, as
// ‖got−want‖/‖want‖. It returns an error naming the first disagreement.
func Agree(got []float32, want []float64, tol float64, mayNaN func(i int) bool) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d values, want %d", len(got), len(want))
	}
	var diff, norm float64
	for i, w := range want {
		g := float64(got[i])
		switch {
		case math.IsNaN(w):
			if !math.IsNaN(g) {
				return fmt.Errorf("[%d] = %v, want NaN", i, g)
			}
		case math.IsInf(w, 0):
			if !math.IsNaN(g) && g != w {
				return fmt.Errorf("[%d] = %v, want %v (or NaN)", i, g, w)
			}
		case math.IsNaN(g) && mayNaN != nil && mayNaN(i):
		case math.IsNaN(g) || math.IsInf(g, 0):
			return fmt.Errorf("[%d] = %v, want %v", i, g, w)
		default:
			diff += (g - w) * (g - w)
			norm += w * w
		}
	}
	if norm > 0 {
		diff /= norm
	}
	if e := math.Sqrt(diff); !(e <= tol) {
		return fmt.Errorf("relative error of the finite entries %.3g, want at most %.3g", e, tol)
	}
	return nil
}

// NonFinite is the number of NaNs and infinities in x, to check that a
// case has some.
func NonFinite(x []float64) int {
	n := 0
	for _, v := range x {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			n++
		}
	}
	return n
}

// ExtremeScores returns Q, K and V (rounded to a.DType) for scores of the
// sign of target whose largest magnitude is |target|, and sets a's scale
// to get there: Q rows are positive, and every key row is one of a pool of
// four positive rows (negated for a negative target), so that each query
// row sees a few distinct scores, far apart, and exact ties, whose weights
// split evenly.
func ExtremeScores(a *attention.Args, rng *rand.Rand, target float64) (q, k, v []float32) {
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
		for c, x := range pool[rng.IntN(4)*d:][:d] {
			k[r*d+c] = sign * x
		}
	}
	v = make([]float32, len(k))
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	v = attention.Round(a.DType, v)
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

// Targets are the extreme scores' largest magnitudes: -1e31 and -1e35 lie
// below a finite mask of -1e30 in the log2 domain, ±3e38 overflow the log2
// domain (|S|·log2(e) > 3.4e38) while finite in f32.
var Targets = []float64{-1e31, -1e35, -3e38, 1e35, 3e38}

// Tile is how far from the causal diagonal a non-finite value that a row
// cannot see may still reach it through a shared tile (the documented
// exception): every kernel's row and column tiles are at most this long.
const Tile = 128

// Shape is the batch of the NaN and Inf tests, stored as dt: a long causal
// segment (rows far from a poisoned value's diagonal share no tile with
// it) and shards beside it, D 64 (which every backward mode can run).
func Shape(dt attention.DType) *attention.Args {
	return &attention.Args{
		CuSeqlensQ: []int32{0, 300, 340, 440}, CuSeqlensK: []int32{0, 300, 390, 500},
		NumHeadsQ: 2, NumHeadsKV: 1, HeadDim: 64, Causal: true, DType: dt,
	}
}

var nan32, inf32 = float32(math.NaN()), float32(math.Inf(1))

// Spoiled is a NaN or an infinity placed in one input of Shape: element
// Col of row Row of segment Seg, head 0, of tensor Tensor (q, k, v or do).
type Spoiled struct {
	Name   string
	Tensor string
	Seg    int
	Row    int
	Col    int
	X      float32
	// Zone is whether the documented exception applies: NaN may reach
	// the rows before a poisoned key's diagonal that share its tile (V in
	// the forward, K in the backward's dQ), or the keys after a poisoned
	// query row's diagonal (Q in dK, dO in dV).
	Zone bool
}

// Forward are the forward's poisoned inputs: NaN and Inf in Q, K and V of
// the long segment (K's masked-out keys never reach the rows that cannot
// see them), in a shard, and a row whose only key scores -Inf.
var Forward = []Spoiled{
	{Name: "nan q", Tensor: "q", Seg: 0, Row: 200, Col: 3, X: nan32},
	{Name: "inf q", Tensor: "q", Seg: 0, Row: 200, Col: 3, X: inf32},
	{Name: "nan k", Tensor: "k", Seg: 0, Row: 250, Col: 5, X: nan32},
	{Name: "inf k", Tensor: "k", Seg: 0, Row: 250, Col: 5, X: inf32},
	{Name: "-inf k, first key", Tensor: "k", Seg: 0, Row: 0, Col: 5, X: -inf32},
	{Name: "nan v", Tensor: "v", Seg: 0, Row: 250, Col: 7, X: nan32, Zone: true},
	{Name: "inf v", Tensor: "v", Seg: 0, Row: 250, Col: 7, X: inf32, Zone: true},
	{Name: "nan k in a shard", Tensor: "k", Seg: 1, Row: 60, Col: 0, X: nan32},
	{Name: "nan v in a shard", Tensor: "v", Seg: 1, Row: 89, Col: 0, X: nan32, Zone: true},
	// Key 80 of the third segment (delta 10) is first seen by row 70, in
	// the second query block of 64 rows; the first block sees keys up to
	// 73, but its last key tile of 64 reaches past them.
	{Name: "nan v past a block's keys", Tensor: "v", Seg: 2, Row: 80, Col: 1, X: nan32, Zone: true},
}

// Backward are the backward's poisoned inputs: the forward's and dO's. A
// NaN or Inf in V or dO of a key or query that the causal mask hides
// reaches no gradient through dP (masked dS is 0 exactly); in a segment
// of its own it leaves the others exact.
var Backward = append(Forward[:len(Forward):len(Forward)],
	Spoiled{Name: "nan do", Tensor: "do", Seg: 0, Row: 120, Col: 2, X: nan32, Zone: true},
	Spoiled{Name: "inf do", Tensor: "do", Seg: 0, Row: 120, Col: 2, X: inf32, Zone: true},
	Spoiled{Name: "nan do in a shard", Tensor: "do", Seg: 1, Row: 3, Col: 2, X: nan32, Zone: true},
)

// Inputs returns fresh random inputs of a (rounded to its dtype) with the
// poisoned value in place.
func (s Spoiled) Inputs(a *attention.Args, seed uint64) (q, k, v, do []float32) {
	rng := rand.New(rand.NewPCG(seed, 0x4a))
	randn := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		return x
	}
	d := a.HeadDim
	nq, nk := a.TotalQ()*a.NumHeadsQ*d, a.TotalK()*a.NumHeadsKV*d
	q, k, v, do = randn(nq), randn(nk), randn(nk), randn(nq)
	if s.X < 0 {
		// Q's column Col positive in every row: the key scores -Inf for
		// all (row 0 of a segment with q_len = k_len sees only it).
		for i := range a.TotalQ() * a.NumHeadsQ {
			q[i*d+s.Col] = float32(math.Abs(float64(q[i*d+s.Col])) + 0.1)
		}
	}
	qRow, kRow := int(a.CuSeqlensQ[s.Seg])+s.Row, int(a.CuSeqlensK[s.Seg])+s.Row
	switch s.Tensor {
	case "q":
		q[qRow*a.NumHeadsQ*d+s.Col] = s.X
	case "do":
		do[qRow*a.NumHeadsQ*d+s.Col] = s.X
	case "k":
		k[kRow*a.NumHeadsKV*d+s.Col] = s.X
	case "v":
		v[kRow*a.NumHeadsKV*d+s.Col] = s.X
	default:
		panic("numtest: unknown tensor " + s.Tensor)
	}
	r := func(x []float32) []float32 { return attention.Round(a.DType, x) }
	return r(q), r(k), r(v), r(do)
}

// OZone admits NaN in O (element indices) where the forward's exception
// allows it for a kernel with query blocks of br rows: in the rows of the
// block that holds the diagonal of the poisoned key of V, before the
// diagonal. nil where it does not apply.
func (s Spoiled) OZone(a *attention.Args, br int) func(int) bool {
	if !s.Zone || s.Tensor != "v" {
		return nil
	}
	q0 := int(a.CuSeqlensQ[s.Seg])
	diag := s.diagonal(a)
	first := q0 + diag/br*br
	return func(i int) bool {
		row := i / (a.NumHeadsQ * a.HeadDim)
		return row >= first && row < q0+diag
	}
}

// GradZones admit NaN in the gradients (element indices) where the
// backward's exception allows it: in dQ of the rows within Tile before a
// poisoned key's diagonal (K: dQ reads it across the tile), in dK of the
// keys within Tile after a poisoned query row's diagonal (Q), and in dV of
// those keys (dO). nil where it does not apply.
func (s Spoiled) GradZones(a *attention.Args) (dq, dk, dv func(int) bool) {
	qRow := func(i int) int { return i / (a.NumHeadsQ * a.HeadDim) }
	kRow := func(i int) int { return i / (a.NumHeadsKV * a.HeadDim) }
	ql, kl := a.Segment(s.Seg)
	q0, k0 := int(a.CuSeqlensQ[s.Seg]), int(a.CuSeqlensK[s.Seg])
	switch s.Tensor {
	case "k":
		diag := q0 + s.diagonal(a)
		dq = func(i int) bool { r := qRow(i); return r >= max(diag-Tile, q0) && r < diag }
	case "q", "do":
		last := k0 + s.Row + kl - ql // the last key the row sees
		zone := func(i int) bool { r := kRow(i); return r > last && r <= last+Tile && r < k0+kl }
		if s.Tensor == "q" {
			dk = zone
		} else {
			dv = zone
		}
	}
	return dq, dk, dv
}

// diagonal is the first query row of the segment that sees key Row.
func (s Spoiled) diagonal(a *attention.Args) int {
	ql, kl := a.Segment(s.Seg)
	return s.Row - (kl - ql)
}
