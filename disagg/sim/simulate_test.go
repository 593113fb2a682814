package sim

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/disagg/doclens"
)

// TestSimulateAcceptance is the acceptance run at a reduced size:
// 64 servers × 128K tokens (documents elongated ×2) instead of 512 × 512K.
func TestSimulateAcceptance(t *testing.T) {
	for _, dist := range doclens.Names() {
		t.Run(dist, func(t *testing.T) {
			lens, err := doclens.Builtin(dist)
			require.NoError(t, err)
			cfg := DefaultConfig(dist, 64, 128<<10)
			cfg.Batches = 2
			calls := 0
			cfg.Progress = func(done, total int) {
				calls++
				assert.Equal(t, calls, done)
				assert.Equal(t, 2, total)
			}
			res, err := Run(context.Background(), lens, cfg)
			require.NoError(t, err)
			assert.Equal(t, 2, calls)
			byName := map[string]Result{}
			cad := map[float64]Result{}
			for _, r := range res {
				assert.Equal(t, 2, r.Batches)
				assert.Positive(t, r.StepTimeS)
				assert.GreaterOrEqual(t, r.Imbalance, 1.0)
				if r.Strategy == StrategyCAD {
					require.NotNil(t, r.Epsilon)
					cad[*r.Epsilon] = r
					assert.Equal(t, *r.Epsilon == 0.1, r.Headline)
					assert.Equal(t, 1.0, r.MemoryImbalance, "CAD keeps every rank's tokens")
				} else {
					assert.Nil(t, r.Epsilon)
					byName[r.Strategy] = r
				}
			}
			require.Len(t, cad, 4)
			packing, cp, wlb := byName[StrategyPacking], byName[StrategyPerDocCP], byName[StrategyWLB]
			assert.Greater(t, packing.Imbalance, 2.0, "plain packing is far from balanced")
			assert.LessOrEqual(t, cad[0.1].WorstImbalance, 1.1+1e-9)
			assert.LessOrEqual(t, cad[0].WorstImbalance, 1.02)
			assert.LessOrEqual(t, cad[0.2].WorstImbalance, 1.2+1e-9)
			assert.Less(t, cad[0.1].BytesPerStep, cp.BytesPerStep, "CAD moves fewer bytes than per-document CP")
			assert.Less(t, cad[0.1].StepTimeS, packing.StepTimeS)
			assert.Greater(t, wlb.MemoryImbalance, 1.0, "WLB pays in memory")
			assert.InDelta(t, 1.0, cp.Imbalance, 0.01)
		})
	}
}

func TestSimulateDeterministic(t *testing.T) {
	lens, err := doclens.Builtin("prolong")
	require.NoError(t, err)
	cfg := DefaultConfig("prolong", 16, 32<<10)
	cfg.Batches = 1
	cfg.Epsilons = []float64{0.2}
	cfg.Headline = 0.05
	a, err := Run(context.Background(), lens, cfg)
	require.NoError(t, err)
	b, err := Run(context.Background(), lens, cfg)
	require.NoError(t, err)
	require.Len(t, a, 5, "three baselines, the sweep and the headline")
	for i := range a {
		a[i].PlanMS, b[i].PlanMS = 0, 0 // wall time
	}
	assert.Equal(t, a, b)
	assert.Equal(t, 0.05, *a[3].Epsilon)
	assert.True(t, a[3].Headline)
	assert.False(t, a[4].Headline)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Run(ctx, lens, cfg)
	assert.ErrorIs(t, err, context.Canceled)
}

func TestSimulateConfigErrors(t *testing.T) {
	cases := []struct {
		mutate func(*Config)
		want   string
	}{
		{func(c *Config) { c.Batches = 0 }, "batches 0"},
		{func(c *Config) { c.Bandwidth = 0 }, "bandwidth 0"},
		{func(c *Config) { c.LinearFLOPS = -1 }, "linear throughput -1"},
		{func(c *Config) { c.AttnFLOPS = 0 }, "attention throughput 0"},
		{func(c *Config) { c.CPDegree = 3 }, "cp degree 3"},
		{func(c *Config) { c.Epsilons = []float64{-1} }, "epsilon -1"},
		{func(c *Config) { c.WLBMaxTokens = -2 }, "wlb token cap -2"},
		{func(c *Config) { c.Pass = 5 }, "unknown pass"},
		{func(c *Config) { c.Arch.Layers = 0 }, "layers"},
		{func(c *Config) { c.Sample.Servers = 0 }, "servers 0"},
	}
	for _, c := range cases {
		cfg := DefaultConfig("pretrain", 8, 4096)
		c.mutate(&cfg)
		_, err := Run(context.Background(), []int{100, 200}, cfg)
		assert.ErrorContains(t, err, c.want)
	}
}

func TestStepTime(t *testing.T) {
	cfg := DefaultConfig("pretrain", 2, 1000)
	cfg.Arch.Params = 1e9
	cfg.LinearFLOPS = 1e12 // 6e9 FLOPs per token: 1000 tokens take 6 s
	cfg.Bandwidth = 1e9
	st := Stats{Load: []float64{0.1, 0.2}, Tokens: []int64{1000, 1000}, BytesIn: []int64{0, 4e8}, BytesOut: []int64{4e8, 0}}
	layers := float64(cfg.Arch.Layers)
	step, attn, lin, comm := cfg.stepTime(st, false)
	assert.InDelta(t, 0.2*layers, attn, 1e-9)
	assert.InDelta(t, 6, lin, 1e-9)
	assert.InDelta(t, 0.4*layers, comm, 1e-9)
	assert.InDelta(t, 6+0.2*layers+0.4*layers, step, 1e-9)
	step, _, _, comm = cfg.stepTime(st, true) // 12.8 s of traffic, 6 s hidden
	assert.InDelta(t, 0.4*layers-6, comm, 1e-9)
	assert.InDelta(t, 0.2*layers+0.4*layers, step, 1e-9)
}
