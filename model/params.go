package model

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Param describes one parameter tensor.
type Param struct {
	Name  string // canonical (safetensors) name, e.g. "layers.0.wq"
	Shape []int  // [rows, cols] for matrices (PyTorch's [out, in]), [n] for norm weights
	// Decay reports whether AdamW's weight decay applies: to matrices and
	// the embedding, not to norm weights.
	Decay bool
}

// Size is the number of elements.
func (p Param) Size() int {
	n := 1
	for _, s := range p.Shape {
		n *= s
	}
	return n
}

// The parameters of one layer, in canonical order.
const (
	LayerAttnNorm = iota
	LayerWQ
	LayerWK
	LayerWV
	LayerWO
	LayerMLPNorm
	LayerW1
	LayerW3
	LayerW2
	paramsPerLayer
)

// Params lists the parameters in canonical order: tok_emb, then per layer
// attn_norm, wq, wk, wv, wo, mlp_norm, w1, w3, w2, then norm and lm_head.
func (c Config) Params() []Param {
	ps := make([]Param, 0, c.NumTensors())
	mat := func(name string, rows, cols int) {
		ps = append(ps, Param{Name: name, Shape: []int{rows, cols}, Decay: true})
	}
	vec := func(name string, n int) { ps = append(ps, Param{Name: name, Shape: []int{n}}) }
	mat("tok_emb", Vocab, c.Dim)
	for l := range c.Layers {
		pre := fmt.Sprintf("layers.%d.", l)
		vec(pre+"attn_norm", c.Dim)
		mat(pre+"wq", c.QDim(), c.Dim)
		mat(pre+"wk", c.KVDim(), c.Dim)
		mat(pre+"wv", c.KVDim(), c.Dim)
		mat(pre+"wo", c.Dim, c.QDim())
		vec(pre+"mlp_norm", c.Dim)
		mat(pre+"w1", c.FFN, c.Dim)
		mat(pre+"w3", c.FFN, c.Dim)
		mat(pre+"w2", c.Dim, c.FFN)
	}
	vec("norm", c.Dim)
	mat("lm_head", Vocab, c.Dim)
	return ps
}

// NumTensors is the number of parameter tensors: 3 + 9L.
func (c Config) NumTensors() int { return 3 + paramsPerLayer*c.Layers }

// Index locations in the canonical list.
const (
	TokEmb = 0 // index of tok_emb
)

// LayerParam is the canonical index of parameter which (LayerWQ, ...) of
// layer l.
func (c Config) LayerParam(l, which int) int { return 1 + paramsPerLayer*l + which }

// NormParam is the canonical index of the final norm.
func (c Config) NormParam() int { return 1 + paramsPerLayer*c.Layers }

// LMHeadParam is the canonical index of lm_head.
func (c Config) LMHeadParam() int { return 2 + paramsPerLayer*c.Layers }

// NumParams is the number of scalar parameters.
func (c Config) NumParams() int {
	d, q, kv, f := c.Dim, c.QDim(), c.KVDim(), c.FFN
	layer := 2*d + q*d + 2*kv*d + d*q + 3*f*d
	return 2*Vocab*d + c.Layers*layer + d
}

// MatmulParams is the number of parameters that take part in matrix
// products (all but the embedding table and the norm weights): each costs
// 6 FLOPs per token in a training step.
func (c Config) MatmulParams() int {
	d, q, kv, f := c.Dim, c.QDim(), c.KVDim(), c.FFN
	return c.Layers*(2*q*d+2*kv*d+3*f*d) + Vocab*d
}

// Weights holds every parameter as float32, in canonical order.
type Weights struct {
	Config  Config
	Tensors [][]float32 // Tensors[i] has Config.Params()[i].Size() elements, row-major
}

// NewWeights returns zero weights of the right shapes.
func NewWeights(c Config) *Weights {
	ps := c.Params()
	w := &Weights{Config: c, Tensors: make([][]float32, len(ps))}
	for i, p := range ps {
		w.Tensors[i] = make([]float32, p.Size())
	}
	return w
}

// Clone returns a deep copy.
func (w *Weights) Clone() *Weights {
	out := &Weights{Config: w.Config, Tensors: make([][]float32, len(w.Tensors))}
	for i, t := range w.Tensors {
		out.Tensors[i] = append([]float32(nil), t...)
	}
	return out
}

// InitStd is the standard deviation of every initial matrix (before the
// output projections' 1/sqrt(2L)).
const InitStd = 0.02

// Init returns the initial weights for seed: every matrix drawn from
// N(0, 0.02²), wo and w2 scaled by 1/sqrt(2L), norm weights 1. Tensor i is
// drawn from its own PCG stream (seed, i), so adding layers leaves the
// earlier tensors unchanged; normals come from the Box-Muller transform
// written here, so the weights do not change with the Go release.
func Init(c Config, seed uint64) (*Weights, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	w := NewWeights(c)
	outScale := 1 / math.Sqrt(2*float64(c.Layers))
	for i, p := range c.Params() {
		t := w.Tensors[i]
		if !p.Decay { // a norm weight
			for j := range t {
				t[j] = 1
			}
			continue
		}
		std := InitStd
		if name := p.Name; hasSuffix(name, ".wo") || hasSuffix(name, ".w2") {
			std *= outScale
		}
		g := newGaussian(seed, uint64(i))
		for j := range t {
			t[j] = float32(std * g.next())
		}
	}
	return w, nil
}

func hasSuffix(s, suffix string) bool {
	return len(s) >= len(suffix) && s[len(s)-len(suffix):] == suffix
}

// gaussian draws standard normals from a PCG stream by Box-Muller, both
// values of each pair used.
type gaussian struct {
	r     *rand.PCG
	spare float64
	have  bool
}

func newGaussian(seed, stream uint64) *gaussian {
	return &gaussian{r: rand.NewPCG(seed, stream)}
}

// uniform is in (0, 1]: 53 random bits, never 0 so that the log is finite.
func (g *gaussian) uniform() float64 {
	return float64(g.r.Uint64()>>11+1) / (1 << 53)
}

func (g *gaussian) next() float64 {
	if g.have {
		g.have = false
		return g.spare
	}
	r := math.Sqrt(-2 * math.Log(g.uniform()))
	s, c := math.Sincos(2 * math.Pi * g.uniform())
	g.spare, g.have = r*s, true
	return r * c
}
