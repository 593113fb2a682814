package model

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPresets(t *testing.T) {
	for _, tt := range []struct {
		name                   string
		d, l, hq, hkv, dh, ffn int
		params                 int
	}{
		// Parameter counts summed by hand from MODEL_SPEC's shapes.
		{"tiny", 64, 2, 4, 2, 16, 192, 131392},
		{"small", 384, 6, 6, 2, 64, 1024, 9638784},
		{"base", 768, 12, 12, 4, 64, 2048, 75909888},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Preset(tt.name)
			require.NoError(t, err)
			assert.Equal(t, Config{Dim: tt.d, Layers: tt.l, HeadsQ: tt.hq, HeadsKV: tt.hkv, HeadDim: tt.dh, FFN: tt.ffn, RopeTheta: 10000, NormEps: 1e-5}, c)
			require.NoError(t, c.Validate())
			assert.Equal(t, tt.params, c.NumParams())
			sum := 0
			for _, p := range c.Params() {
				sum += p.Size()
			}
			assert.Equal(t, tt.params, sum, "NumParams must equal the sum of the shapes")
			assert.Len(t, c.Params(), c.NumTensors())
		})
	}
	assert.Equal(t, []string{"tiny", "small", "base"}, PresetNames())
	_, err := Preset("huge")
	assert.ErrorIs(t, err, ErrUnknownPreset)
}

func TestParamsOrder(t *testing.T) {
	c, err := Preset("tiny")
	require.NoError(t, err)
	ps := c.Params()
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name
	}
	assert.Equal(t, []string{
		"tok_emb",
		"layers.0.attn_norm", "layers.0.wq", "layers.0.wk", "layers.0.wv", "layers.0.wo", "layers.0.mlp_norm", "layers.0.w1", "layers.0.w3", "layers.0.w2",
		"layers.1.attn_norm", "layers.1.wq", "layers.1.wk", "layers.1.wv", "layers.1.wo", "layers.1.mlp_norm", "layers.1.w1", "layers.1.w3", "layers.1.w2",
		"norm", "lm_head",
	}, names)
	assert.Equal(t, []int{32, 64}, ps[c.LayerParam(1, LayerWK)].Shape)
	assert.Equal(t, []int{64, 192}, ps[c.LayerParam(0, LayerW2)].Shape)
	assert.Equal(t, "norm", ps[c.NormParam()].Name)
	assert.Equal(t, "lm_head", ps[c.LMHeadParam()].Name)
	for _, p := range ps {
		assert.Equal(t, len(p.Shape) == 2, p.Decay, p.Name)
	}
}

func TestConfigValidate(t *testing.T) {
	good, err := Preset("tiny")
	require.NoError(t, err)
	for _, tt := range []struct {
		name string
		edit func(*Config)
	}{
		{"zero dim", func(c *Config) { c.Dim = 0 }},
		{"negative layers", func(c *Config) { c.Layers = -1 }},
		{"no kv heads", func(c *Config) { c.HeadsKV = 0 }},
		{"heads not a multiple", func(c *Config) { c.HeadsQ, c.HeadsKV = 6, 4 }},
		{"odd head dim", func(c *Config) { c.HeadDim = 6 }},
		{"head dim too large", func(c *Config) { c.HeadDim = 260 }},
		{"dim not a multiple of 4", func(c *Config) { c.Dim = 66 }},
		{"ffn not a multiple of 4", func(c *Config) { c.FFN = 190 }},
		{"huge dim", func(c *Config) { c.Dim = 1 << 20 }},
		{"theta", func(c *Config) { c.RopeTheta = 0 }},
		{"eps", func(c *Config) { c.NormEps = -1 }},
		{"too many parameters", func(c *Config) { c.Dim, c.FFN, c.Layers = 1<<14, 1<<16, 1<<10 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.edit(&c)
			err := c.Validate()
			require.Error(t, err)
			assert.True(t, errors.Is(err, ErrConfig), "%v", err)
			assert.NotContains(t, err.Error(), "\n")
		})
	}
}

func TestInit(t *testing.T) {
	c, err := Preset("tiny")
	require.NoError(t, err)
	a, err := Init(c, 7)
	require.NoError(t, err)
	b, err := Init(c, 7)
	require.NoError(t, err)
	assert.Equal(t, a.Tensors, b.Tensors, "the same seed gives the same weights")
	other, err := Init(c, 8)
	require.NoError(t, err)
	assert.NotEqual(t, a.Tensors[TokEmb], other.Tensors[TokEmb])

	for i, p := range c.Params() {
		x := a.Tensors[i]
		require.Len(t, x, p.Size())
		if !p.Decay {
			for _, v := range x {
				require.Equal(t, float32(1), v, p.Name)
			}
			continue
		}
		mean, sq := 0.0, 0.0
		for _, v := range x {
			mean += float64(v)
			sq += float64(v) * float64(v)
		}
		mean /= float64(len(x))
		std := sqrt(sq/float64(len(x)) - mean*mean)
		want := InitStd
		if hasSuffix(p.Name, ".wo") || hasSuffix(p.Name, ".w2") {
			want /= 2 // 1/sqrt(2L) with L = 2
		}
		assert.InDelta(t, want, std, 0.05*want, p.Name)
		assert.InDelta(t, 0, mean, 4*want/sqrt(float64(len(x))), p.Name)
	}

	// A third layer leaves the tensors before it alone.
	deeper := c
	deeper.Layers = 3
	d, err := Init(deeper, 7)
	require.NoError(t, err)
	for i := range c.LayerParam(1, LayerW2) + 1 {
		if p := c.Params()[i]; hasSuffix(p.Name, ".wo") || hasSuffix(p.Name, ".w2") {
			continue // scaled by 1/sqrt(2L)
		}
		assert.Equal(t, a.Tensors[i], d.Tensors[i], c.Params()[i].Name)
	}
	_, err = Init(Config{}, 1)
	assert.ErrorIs(t, err, ErrConfig)
}

func TestBatchHelpers(t *testing.T) {
	b := Batch{Tokens: []int32{10, 11, 12, 20, 30, 31}, CuSeqlens: []int32{0, 3, 4, 6}}
	require.NoError(t, b.Validate())
	assert.Equal(t, []int32{0, 1, 2, 0, 0, 1}, b.Positions())
	assert.Equal(t, []int32{11, 12, -1, -1, 31, -1}, b.Targets())
	assert.Equal(t, 3, b.NumTargets())
	assert.Equal(t, int64(6+1+3), b.AttentionPairs())
	for _, bad := range []Batch{
		{},
		{Tokens: []int32{1, 2}, CuSeqlens: []int32{0, 1}},
		{Tokens: []int32{1, 2}, CuSeqlens: []int32{0, 0, 2}},
		{Tokens: []int32{1, 256}, CuSeqlens: []int32{0, 2}},
		{Tokens: []int32{1, -1}, CuSeqlens: []int32{0, 2}},
	} {
		assert.ErrorIs(t, bad.Validate(), ErrBatch, "%+v", bad)
	}
}
