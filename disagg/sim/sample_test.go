package sim

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSamplerPool(t *testing.T) {
	// 6 short documents (< 100) and 2 long ones.
	lens := []int{10, 20, 30, 40, 50, 60, 100, 200}
	cfg := SampleConfig{Servers: 1, TokensPerServer: 50, LongThreshold: 100, UpsampleLong: 4, KeepShort: 0.5,
		SampleSize: 3, ElongateBase: 50, ReplaceLongLen: 7}
	s, err := NewSampler(lens, cfg, 1)
	require.NoError(t, err)
	assert.Equal(t, []int{10, 20, 30, 100, 200, 100, 200, 100, 200, 100, 200}, s.pool, "first half of the short, long ×4")

	cfg.ReplaceLongProb = 1
	s, err = NewSampler(lens, cfg, 1)
	require.NoError(t, err)
	assert.Equal(t, []int{10, 20, 30, 7, 7, 7, 7, 7, 7, 7, 7}, s.pool, "every long document replaced")

	cfg.ReplaceLongProb = 0.5
	s, err = NewSampler(lens, cfg, 1)
	require.NoError(t, err)
	assert.Contains(t, s.pool, 7)
	assert.True(t, containsAny(s.pool, 100, 200))
}

func containsAny(v []int, xs ...int) bool {
	for _, a := range v {
		for _, x := range xs {
			if a == x {
				return true
			}
		}
	}
	return false
}

func TestSamplerBatches(t *testing.T) {
	lens := make([]int, 200)
	for i := range lens {
		lens[i] = 100 + 37*i
	}
	cfg := DefaultSampleConfig("pretrain", 4, 131072) // elongate ×2
	cfg.LongThreshold = 5000
	cfg.SampleSize = 20
	s1, err := NewSampler(lens, cfg, 42)
	require.NoError(t, err)
	s2, err := NewSampler(lens, cfg, 42)
	require.NoError(t, err)
	for range 3 {
		b := s1.Next()
		assert.Equal(t, b, s2.Next(), "deterministic for a seed")
		assert.Equal(t, 4*131072, sum(b), "a batch fills every server exactly")
		for _, n := range b[:len(b)-1] {
			assert.Zero(t, n%2, "lengths are elongated ×2")
		}
	}
	s3, err := NewSampler(lens, cfg, 43)
	require.NoError(t, err)
	assert.NotEqual(t, s1.Next(), s3.Next(), "another seed, another batch")

	cfg.MaxDoc = 1000
	s4, err := NewSampler(lens, cfg, 1)
	require.NoError(t, err)
	b := s4.Next()
	for _, n := range b {
		assert.LessOrEqual(t, n, 1000)
	}
	assert.Equal(t, 4*131072, sum(b))
}

func TestSampleConfigValidate(t *testing.T) {
	cases := []struct {
		mutate func(*SampleConfig)
		want   string
	}{
		{func(c *SampleConfig) { c.Servers = 0 }, "servers 0"},
		{func(c *SampleConfig) { c.TokensPerServer = -1 }, "tokens per server -1"},
		{func(c *SampleConfig) { c.LongThreshold = 0 }, "long threshold 0"},
		{func(c *SampleConfig) { c.UpsampleLong = 0 }, "upsampling 0"},
		{func(c *SampleConfig) { c.KeepShort = 1.5 }, "keep fraction 1.5"},
		{func(c *SampleConfig) { c.SampleSize = 0 }, "sample size 0"},
		{func(c *SampleConfig) { c.ElongateBase = 0 }, "elongate base 0"},
		{func(c *SampleConfig) { c.ReplaceLongProb = -0.1 }, "probability -0.1"},
		{func(c *SampleConfig) { c.ReplaceLongProb = 0.3; c.ReplaceLongLen = 0 }, "replacement length 0"},
		{func(c *SampleConfig) { c.MaxDoc = -2 }, "max document length -2"},
	}
	for _, c := range cases {
		cfg := DefaultSampleConfig("prolong", 2, 1024)
		c.mutate(&cfg)
		_, err := NewSampler([]int{1, 2, 3}, cfg, 1)
		assert.ErrorContains(t, err, c.want)
	}
	_, err := NewSampler([]int{1, -2}, DefaultSampleConfig("prolong", 2, 1024), 1)
	assert.ErrorContains(t, err, "length -2 at index 1")
	cfg := DefaultSampleConfig("pretrain", 2, 1024)
	cfg.KeepShort = 0
	_, err = NewSampler([]int{1, 2}, cfg, 1)
	assert.ErrorContains(t, err, "pool is empty")
	assert.Equal(t, 0.3, DefaultSampleConfig("prolong", 1, 1).ReplaceLongProb)
	assert.Zero(t, DefaultSampleConfig("pretrain", 1, 1).ReplaceLongProb)
	assert.Equal(t, 8.0, DefaultSampleConfig("prolong", 1, 524288).Elongate())
}
