package disagg

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// ProfileVersion is the version of the profile JSON format this package writes.
const ProfileVersion = 1

// Profile is measured core-attention kernel time over a grid of segment shapes,
// as `coreattn profile` writes it for one adapter. Times are seconds per
// segment of one layer, measured inside a fused batch of identical segments
// (so launch overhead is amortised away). Entries whose q_len exceeds kv_len
// cannot be measured under a causal mask and must be 0; they are ignored.
type Profile struct {
	Version int    `json:"version"`
	Adapter string `json:"adapter,omitempty"`
	DType   string `json:"dtype,omitempty"`
	// HeadsQ, HeadsKV and HeadDim are the head shapes measured. A cost model
	// for another shape scales time by (Hq·D)/(HeadsQ·HeadDim).
	HeadsQ  int `json:"heads_q"`
	HeadsKV int `json:"heads_kv"`
	HeadDim int `json:"head_dim"`
	// QLens and KVLens are the grid axes, strictly ascending and positive,
	// with QLens[0] <= KVLens[0].
	QLens  []int `json:"q_lens"`
	KVLens []int `json:"kv_lens"`
	// Forward[i][j] is the forward time of QLens[i] queries against KVLens[j]
	// keys (bottom-right causal).
	Forward [][]float64 `json:"forward_s"`
	// Backward is the same grid for the backward pass; when absent the
	// backward takes BackwardFLOPFactor times the forward.
	Backward [][]float64 `json:"backward_s,omitempty"`
}

// MinProfileTime and MaxProfileTime bound a profile cell's seconds: a
// nanosecond is below any kernel launch and a day above any one segment, and
// within them no prediction can overflow to Inf or lose itself to 0.
const (
	MinProfileTime = 1e-9
	MaxProfileTime = 86400.0
)

// MaxProfileAxis bounds the grid's axes (entries per axis).
const MaxProfileAxis = 1024

// ReadProfile decodes and validates a profile.
func ReadProfile(r io.Reader) (*Profile, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var p Profile
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("disagg: decode profile: %w", err)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// LoadProfile reads a profile from a JSON file.
func LoadProfile(path string) (*Profile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("disagg: load profile: %w", err)
	}
	defer f.Close()
	p, err := ReadProfile(f)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return p, nil
}

// Write validates p and encodes it as indented JSON.
func (p *Profile) Write(w io.Writer) error {
	if err := p.Validate(); err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(p); err != nil {
		return fmt.Errorf("disagg: encode profile: %w", err)
	}
	return nil
}

// Save writes p to a JSON file.
func (p *Profile) Save(path string) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("disagg: save profile: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("disagg: save profile: %w", cerr)
		}
	}()
	return p.Write(f)
}

// Validate reports the first problem with p.
func (p *Profile) Validate() error {
	if p == nil {
		return errors.New("disagg: profile is nil")
	}
	if p.Version != ProfileVersion {
		return fmt.Errorf("disagg: profile version %d, want %d", p.Version, ProfileVersion)
	}
	if p.HeadsQ < 0 || p.HeadsKV < 0 || p.HeadDim < 0 {
		return fmt.Errorf("disagg: profile heads_q %d, heads_kv %d, head_dim %d must not be negative", p.HeadsQ, p.HeadsKV, p.HeadDim)
	}
	if err := checkAxis("q_lens", p.QLens); err != nil {
		return err
	}
	if err := checkAxis("kv_lens", p.KVLens); err != nil {
		return err
	}
	if p.QLens[0] > p.KVLens[0] {
		return fmt.Errorf("disagg: profile q_lens[0] %d exceeds kv_lens[0] %d: the first column would hold no measurable cell", p.QLens[0], p.KVLens[0])
	}
	if err := p.checkGrid("forward_s", p.Forward); err != nil {
		return err
	}
	if p.Backward != nil {
		if err := p.checkGrid("backward_s", p.Backward); err != nil {
			return err
		}
	}
	return nil
}

func checkAxis(name string, v []int) error {
	if len(v) == 0 {
		return fmt.Errorf("disagg: profile %s is empty", name)
	}
	if len(v) > MaxProfileAxis {
		return fmt.Errorf("disagg: profile %s has %d entries, more than %d", name, len(v), MaxProfileAxis)
	}
	for i, x := range v {
		if x <= 0 {
			return fmt.Errorf("disagg: profile %s[%d] = %d must be positive", name, i, x)
		}
		if i > 0 && x <= v[i-1] {
			return fmt.Errorf("disagg: profile %s[%d] = %d must exceed %s[%d] = %d", name, i, x, name, i-1, v[i-1])
		}
	}
	return nil
}

func (p *Profile) checkGrid(name string, g [][]float64) error {
	if len(g) != len(p.QLens) {
		return fmt.Errorf("disagg: profile %s has %d rows, want %d (len q_lens)", name, len(g), len(p.QLens))
	}
	for i, row := range g {
		if len(row) != len(p.KVLens) {
			return fmt.Errorf("disagg: profile %s[%d] has %d entries, want %d (len kv_lens)", name, i, len(row), len(p.KVLens))
		}
		for j, t := range row {
			if p.QLens[i] > p.KVLens[j] {
				if t != 0 {
					return fmt.Errorf("disagg: profile %s[%d][%d] = %g: q_len %d > kv_len %d must be 0", name, i, j, t, p.QLens[i], p.KVLens[j])
				}
				continue
			}
			if !(t >= MinProfileTime && t <= MaxProfileTime) {
				return fmt.Errorf("disagg: profile %s[%d][%d] = %g (q_len %d, kv_len %d) must be in [%g, %g] seconds", name, i, j, t, p.QLens[i], p.KVLens[j], MinProfileTime, MaxProfileTime)
			}
		}
	}
	return nil
}

// CostModel returns the profile as a cost model for model m. It interpolates
// seconds per (query, key) pair bilinearly over log2(q_len) × log2(kv_len) and
// multiplies by the task's pair count, so outside the grid a task's time grows
// with its FLOPs at the efficiency of the nearest grid edge. Cells with
// q_len > kv_len take the efficiency of the largest measurable q_len of their
// column.
func (p *Profile) CostModel(m Arch) (CostModel, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	pc := &profileCost{scale: 1}
	if p.HeadsQ > 0 && p.HeadDim > 0 {
		pc.scale = float64(m.HeadsQ*m.HeadDim) / float64(p.HeadsQ*p.HeadDim)
	}
	pc.xs = logAxis(p.QLens)
	pc.ys = logAxis(p.KVLens)
	pc.fwd = p.perPair(p.Forward)
	if p.Backward != nil {
		pc.bwd = p.perPair(p.Backward)
	}
	return pc, nil
}

func logAxis(v []int) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = math.Log2(float64(x))
	}
	return out
}

// perPair turns a grid of seconds into seconds per pair, filling cells with
// q_len > kv_len from the largest measurable q_len of the same column.
func (p *Profile) perPair(g [][]float64) [][]float64 {
	out := make([][]float64, len(p.QLens))
	for i := range out {
		out[i] = make([]float64, len(p.KVLens))
	}
	for j, k := range p.KVLens {
		last := 0.0
		for i, q := range p.QLens {
			if q <= k {
				last = g[i][j] / float64(CausalPairs(q, k))
			}
			out[i][j] = last
		}
	}
	return out
}

type profileCost struct {
	xs, ys   []float64
	fwd, bwd [][]float64
	scale    float64
}

func (pc *profileCost) TaskTime(qLen, kLen int, pass Pass) float64 {
	if qLen <= 0 {
		return 0
	}
	pairs := float64(CausalPairs(qLen, kLen)) * pc.scale
	x, y := math.Log2(float64(qLen)), math.Log2(float64(kLen))
	f := bilinear(pc.xs, pc.ys, pc.fwd, x, y) * pairs
	if pass == PassForward {
		return f
	}
	var b float64
	if pc.bwd != nil {
		b = bilinear(pc.xs, pc.ys, pc.bwd, x, y) * pairs
	} else {
		b = f * BackwardFLOPFactor
	}
	if pass == PassBackward {
		return b
	}
	return f + b
}
