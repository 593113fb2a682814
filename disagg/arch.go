package disagg

import (
	"fmt"
	"sort"
	"strings"
)

// Pass says which passes of core attention a prediction or a byte count covers.
type Pass int

const (
	// PassTraining is a forward pass followed by a backward pass (the zero value).
	PassTraining Pass = iota
	// PassForward is the forward pass alone.
	PassForward
	// PassBackward is the backward pass alone.
	PassBackward
)

// String returns "training", "forward" or "backward".
func (p Pass) String() string {
	switch p {
	case PassTraining:
		return "training"
	case PassForward:
		return "forward"
	case PassBackward:
		return "backward"
	}
	return fmt.Sprintf("Pass(%d)", int(p))
}

// Valid reports whether p is one of the three passes.
func (p Pass) Valid() bool { return p == PassTraining || p == PassForward || p == PassBackward }

// BackwardFLOPFactor is the ratio of backward to forward attention FLOPs
// (FlashAttention-2's count: five matrix products against two).
const BackwardFLOPFactor = 2.5

// statBytes is the size of one float32 statistic (LSE, the backward's Delta).
const statBytes = 4

// Arch holds the shape of the transformer whose core attention is scheduled.
type Arch struct {
	// Name identifies the model, e.g. "llama-8b".
	Name string `json:"name"`
	// HeadsQ and HeadsKV are the query and key/value head counts (grouped-query
	// attention when HeadsKV < HeadsQ); HeadDim is D.
	HeadsQ  int `json:"heads_q"`
	HeadsKV int `json:"heads_kv"`
	HeadDim int `json:"head_dim"`
	// Layers is the number of transformer layers; every layer runs core
	// attention on the same tasks.
	Layers int `json:"layers"`
	// Params is the parameter count used for the linear-layer FLOPs
	// (6·Params per token for a training step, 2·Params for a forward pass).
	Params float64 `json:"params"`
	// ElemBytes is the size of one element of Q, K, V, O and their gradients
	// on the wire (2 for bf16).
	ElemBytes int `json:"elem_bytes"`
}

// Llama8B is a Llama-3-8B-shaped model: 32 layers, 32 query heads, 8 key/value
// heads of dimension 128, 8.03e9 parameters, bf16 activations.
var Llama8B = Arch{Name: "llama-8b", HeadsQ: 32, HeadsKV: 8, HeadDim: 128, Layers: 32, Params: 8.03e9, ElemBytes: 2}

// Llama34B is a CodeLlama-34B-shaped model: 48 layers, 64 query heads, 8
// key/value heads of dimension 128, 33.7e9 parameters, bf16 activations.
var Llama34B = Arch{Name: "llama-34b", HeadsQ: 64, HeadsKV: 8, HeadDim: 128, Layers: 48, Params: 33.7e9, ElemBytes: 2}

var knownArchs = map[string]Arch{Llama8B.Name: Llama8B, Llama34B.Name: Llama34B}

// ArchNames lists the names ArchByName knows, sorted.
func ArchNames() []string {
	names := make([]string, 0, len(knownArchs))
	for n := range knownArchs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ArchByName returns a built-in model config by name.
func ArchByName(name string) (Arch, error) {
	m, ok := knownArchs[name]
	if !ok {
		return Arch{}, fmt.Errorf("disagg: unknown model %q (known: %s)", name, strings.Join(ArchNames(), ", "))
	}
	return m, nil
}

// Validate reports the first bad field of m.
func (m Arch) Validate() error {
	switch {
	case m.HeadsQ <= 0:
		return fmt.Errorf("disagg: model %q: heads_q %d must be positive", m.Name, m.HeadsQ)
	case m.HeadsKV <= 0 || m.HeadsQ%m.HeadsKV != 0:
		return fmt.Errorf("disagg: model %q: heads_kv %d must be positive and divide heads_q %d", m.Name, m.HeadsKV, m.HeadsQ)
	case m.HeadDim <= 0:
		return fmt.Errorf("disagg: model %q: head_dim %d must be positive", m.Name, m.HeadDim)
	case m.Layers <= 0:
		return fmt.Errorf("disagg: model %q: layers %d must be positive", m.Name, m.Layers)
	case !(m.Params >= 0):
		return fmt.Errorf("disagg: model %q: params %g must be non-negative", m.Name, m.Params)
	case m.ElemBytes <= 0:
		return fmt.Errorf("disagg: model %q: elem_bytes %d must be positive", m.Name, m.ElemBytes)
	}
	return nil
}

// CausalPairs returns the number of unmasked (query, key) pairs of a
// bottom-right aligned causal segment of qLen queries against kLen keys:
// query i (0-based) sees kLen-qLen+i+1 keys. It returns 0 for qLen <= 0 and
// assumes qLen <= kLen.
func CausalPairs(qLen, kLen int) int64 {
	if qLen <= 0 {
		return 0
	}
	q, k := int64(qLen), int64(kLen)
	return q*(k-q) + q*(q+1)/2
}

// rangePairs is the pair count of query rows [s, e) of a document attending to
// their causal prefix: CausalPairs(e-s, e).
func rangePairs(s, e int) int64 { return CausalPairs(e-s, e) }

// AttentionFLOPs returns one layer's core-attention FLOPs of a bottom-right
// causal segment: 4·D·Hq per pair forward, 2.5 times that backward.
func (m Arch) AttentionFLOPs(qLen, kLen int, pass Pass) float64 {
	return m.pairFLOPs(pass) * float64(CausalPairs(qLen, kLen))
}

func (m Arch) pairFLOPs(pass Pass) float64 {
	fwd := 4 * float64(m.HeadDim) * float64(m.HeadsQ)
	switch pass {
	case PassForward:
		return fwd
	case PassBackward:
		return fwd * BackwardFLOPFactor
	default:
		return fwd * (1 + BackwardFLOPFactor)
	}
}

// LinearFLOPs returns the FLOPs of everything but core attention for tokens
// tokens: 2·Params per token forward, 4·Params backward, 6·Params for both.
func (m Arch) LinearFLOPs(tokens int64, pass Pass) float64 {
	per := 6.0
	switch pass {
	case PassForward:
		per = 2
	case PassBackward:
		per = 4
	}
	return per * m.Params * float64(tokens)
}

// QRowBytes is the traffic, per query row of one layer, of a task that runs
// away from its home rank. Forward: Q in, O and LSE back. Backward: Q, dO, LSE
// and Delta = rowsum(dO∘O) in, dQ back.
func (m Arch) QRowBytes(pass Pass) (in, out int64) {
	row := int64(m.HeadsQ) * int64(m.HeadDim) * int64(m.ElemBytes)
	stat := int64(m.HeadsQ) * statBytes
	fin, fout := row, row+stat
	bin, bout := 2*row+2*stat, row
	switch pass {
	case PassForward:
		return fin, fout
	case PassBackward:
		return bin, bout
	default:
		return fin + bin, fout + bout
	}
}

// KVRowBytes is the traffic, per key/value row of one layer, that a task needs
// from a rank other than the server it runs on. Forward: K and V in.
// Backward: K and V in, dK and dV back.
func (m Arch) KVRowBytes(pass Pass) (in, out int64) {
	row := 2 * int64(m.HeadsKV) * int64(m.HeadDim) * int64(m.ElemBytes)
	switch pass {
	case PassForward:
		return row, 0
	case PassBackward:
		return row, row
	default:
		return 2 * row, row
	}
}
