package model

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
)

// Vocab is the vocabulary size: tokens are the 256 byte values.
const Vocab = 256

// Defaults of the fields a preset does not vary.
const (
	DefaultRopeTheta = 10000
	DefaultNormEps   = 1e-5
)

// ErrConfig is wrapped by every error [Config.Validate] returns.
var ErrConfig = errors.New("model: invalid config")

// ErrUnknownPreset is wrapped by the error of [Preset] for a name it does
// not know.
var ErrUnknownPreset = errors.New("model: unknown preset")

// Config is every dimension of the network. The JSON names are those of a
// checkpoint's config.json.
type Config struct {
	Dim       int     `json:"dim"`        // d: width of the residual stream
	Layers    int     `json:"layers"`     // L
	HeadsQ    int     `json:"heads_q"`    // Hq: query heads
	HeadsKV   int     `json:"heads_kv"`   // Hkv: key/value heads; Hq is a multiple
	HeadDim   int     `json:"head_dim"`   // Dh: a multiple of 4 in [4, 256] (the attention kernels' rule)
	FFN       int     `json:"ffn"`        // F: SwiGLU hidden width
	RopeTheta float64 `json:"rope_theta"` // RoPE base, 10000
	NormEps   float64 `json:"norm_eps"`   // RMSNorm epsilon, 1e-5
}

// presets are the named configurations (MODEL_SPEC's table).
var presets = map[string]Config{
	"tiny":  {Dim: 64, Layers: 2, HeadsQ: 4, HeadsKV: 2, HeadDim: 16, FFN: 192},
	"small": {Dim: 384, Layers: 6, HeadsQ: 6, HeadsKV: 2, HeadDim: 64, FFN: 1024},
	"base":  {Dim: 768, Layers: 12, HeadsQ: 12, HeadsKV: 4, HeadDim: 64, FFN: 2048},
}

// PresetNames lists the presets in order of size.
func PresetNames() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return presets[names[i]].NumParams() < presets[names[j]].NumParams() })
	return names
}

// Preset returns the named configuration: "tiny" (CI, ~0.13M parameters),
// "small" (~9.6M) or "base" (~75.9M).
func Preset(name string) (Config, error) {
	c, ok := presets[name]
	if !ok {
		return Config{}, fmt.Errorf("%w %q: want one of %s", ErrUnknownPreset, name, strings.Join(PresetNames(), ", "))
	}
	c.RopeTheta, c.NormEps = DefaultRopeTheta, DefaultNormEps
	return c, nil
}

// Validate checks every dimension and returns an error naming the first bad
// value; it wraps [ErrConfig].
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"dim", c.Dim}, {"layers", c.Layers}, {"heads_q", c.HeadsQ}, {"heads_kv", c.HeadsKV}, {"head_dim", c.HeadDim}, {"ffn", c.FFN}} {
		if f.v < 1 {
			return bad("%s = %d, want >= 1", f.name, f.v)
		}
		if f.v > maxDim {
			return bad("%s = %d, want <= %d", f.name, f.v, maxDim)
		}
	}
	if c.HeadsQ%c.HeadsKV != 0 {
		return bad("heads_q = %d is not a multiple of heads_kv = %d", c.HeadsQ, c.HeadsKV)
	}
	if c.HeadDim%4 != 0 || c.HeadDim > 256 {
		return bad("head_dim = %d, want a multiple of 4 in [4, 256]", c.HeadDim)
	}
	// The device kernels read rows as vec4.
	if c.Dim%4 != 0 {
		return bad("dim = %d, want a multiple of 4", c.Dim)
	}
	if c.FFN%4 != 0 {
		return bad("ffn = %d, want a multiple of 4", c.FFN)
	}
	if t := c.RopeTheta; !(t > 1) || math.IsInf(t, 0) {
		return bad("rope_theta = %v, want a finite number > 1", t)
	}
	if e := c.NormEps; !(e > 0) || e > 1 {
		return bad("norm_eps = %v, want a number in (0, 1]", e)
	}
	if n := c.NumParams(); n > math.MaxInt32 {
		return bad("%d parameters, want at most %d", n, math.MaxInt32)
	}
	return nil
}

// maxDim bounds each dimension so that products of a few of them stay far
// from overflow.
const maxDim = 1 << 16

// QDim is Hq*Dh, the width of Q and of the attention output.
func (c Config) QDim() int { return c.HeadsQ * c.HeadDim }

// KVDim is Hkv*Dh, the width of K and of V.
func (c Config) KVDim() int { return c.HeadsKV * c.HeadDim }

// String formats the dimensions on one line.
func (c Config) String() string {
	return fmt.Sprintf("d=%d L=%d Hq=%d Hkv=%d Dh=%d F=%d (%s parameters)", c.Dim, c.Layers, c.HeadsQ, c.HeadsKV, c.HeadDim, c.FFN, humanCount(c.NumParams()))
}

func humanCount(n int) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fK", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}
