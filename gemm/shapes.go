package gemm

import "fmt"

// Shape is a benchmark product: op(A) M×K times op(B) K×N, with its label,
// which scripts/matmul_anchor.py builds alike so that measurements join.
type Shape struct {
	Label                      string
	M, N, K                    int
	TransA, TransB, Accumulate bool
}

// Case names the transposition case as BLAS does: NN, NT, TN or TT.
func (s Shape) Case() string { return transName(s.TransA) + transName(s.TransB) }

func transName(t bool) string {
	if t {
		return "T"
	}
	return "N"
}

// CubeShapes are the edge×edge×edge products in the cases NN, NT and TN.
func CubeShapes(edge int) []Shape {
	var out []Shape
	for _, c := range [][2]bool{{false, false}, {false, true}, {true, false}} {
		s := Shape{M: edge, N: edge, K: edge, TransA: c[0], TransB: c[1]}
		s.Label = fmt.Sprintf("%s %dx%dx%d", s.Case(), edge, edge, edge)
		out = append(out, s)
	}
	return out
}

// modelPresets are the model's shapes (docs: MODEL_SPEC.md): d, Hq·Dh,
// Hkv·Dh, F, vocabulary.
var modelPresets = []struct {
	name                 string
	d, dq, dkv, f, vocab int
}{
	{"small", 384, 384, 128, 1024, 256},
	{"base", 768, 768, 256, 2048, 256},
}

// ModelShapes are, for the presets small and base and each distinct linear
// layer (in → out) at T tokens, the forward Y = X·Wᵀ (NT: T×out×in), the
// input gradient dX = dY·W (NN: T×in×out) and the accumulated weight
// gradient dW += dYᵀ·X (TN: out×in×T).
func ModelShapes(tokens int) []Shape {
	var out []Shape
	for _, p := range modelPresets {
		layers := []struct {
			name    string
			in, out int
		}{{"wq", p.d, p.dq}, {"wk/wv", p.d, p.dkv}, {"wo", p.dq, p.d}, {"w1/w3", p.d, p.f}, {"w2", p.f, p.d}, {"lm_head", p.d, p.vocab}}
		for _, l := range layers {
			for _, x := range []struct {
				pass string
				s    Shape
			}{
				{"fwd", Shape{M: tokens, N: l.out, K: l.in, TransB: true}},
				{"dx", Shape{M: tokens, N: l.in, K: l.out}},
				{"dw", Shape{M: l.out, N: l.in, K: tokens, TransA: true, Accumulate: true}},
			} {
				s := x.s
				s.Label = fmt.Sprintf("%s T%d %s %s %s %dx%dx%d", p.name, tokens, l.name, x.pass, s.Case(), s.M, s.N, s.K)
				out = append(out, s)
			}
		}
	}
	return out
}
