package sim

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/disagg"
	"github.com/coreattn/coreattn/disagg/doclens"
)

func run(t *testing.T, dist string, mutate func(*Config)) map[string]Result {
	t.Helper()
	lens, err := doclens.Builtin(dist)
	require.NoError(t, err)
	cfg := DefaultConfig(dist, 64<<10, 32)
	cfg.Batches = 2
	cfg.Epsilons = []float64{0, 0.2}
	if mutate != nil {
		mutate(&cfg)
	}
	res, err := Run(context.Background(), lens, cfg)
	require.NoError(t, err)
	out := map[string]Result{}
	for _, r := range res {
		name := r.Strategy
		if r.Epsilon != nil {
			name = label(r)
		}
		out[name] = r
	}
	return out
}

func label(r Result) string {
	if r.Epsilon == nil {
		return r.Strategy
	}
	if *r.Epsilon == 0 {
		return "cad0"
	}
	return "cad0.2"
}

func TestRun3D(t *testing.T) {
	for _, dist := range []string{DistPretrain, DistProLong} {
		res := run(t, dist, nil)
		require.Len(t, res, 7)
		for name, r := range res {
			assert.False(t, r.OOM, name)
			assert.Positive(t, r.StepTimeS, name)
			assert.GreaterOrEqual(t, r.Imbalance, 1.0, name)
			assert.Equal(t, 4, r.Servers)
		}
		d, w, pack := res[StrategyDistCA], res[StrategyWLBLLM], res[StrategyPacking]
		assert.Less(t, d.StepTimeS, pack.StepTimeS, "%s: CAD beats packing", dist)
		assert.Less(t, d.Imbalance, 1.06, "%s: balanced within the chosen ε", dist)
		assert.Len(t, d.EpsilonPerBatch, 2)
		assert.Positive(t, d.BufferGB)
		assert.LessOrEqual(t, d.BufferGB, 2*1.0737, "fits the 2 GiB buffer")
		assert.Len(t, w.CPPerBatch, 2)
		assert.Less(t, res["cad0.2"].BytesPerStep, res["cad0"].BytesPerStep, "%s: a looser ε moves fewer bytes", dist)
		assert.LessOrEqual(t, res["cad0"].Imbalance, res["cad0.2"].Imbalance)
		assert.Equal(t, 1.0, d.MemoryImbalance, "CAD keeps every server's tokens")
	}
}

func TestBufferRule(t *testing.T) {
	// A buffer too small for any plan: DistCA's rule walks up to ε = 1 and
	// reports the overflow.
	res := run(t, DistProLong, func(c *Config) {
		c.Cluster.BufferBytes = 1 << 20
		c.Strategies = []string{StrategyDistCA}
	})
	d := res[StrategyDistCA]
	assert.True(t, d.BufferOverflow)
	assert.Equal(t, []float64{1, 1}, d.EpsilonPerBatch)
	// A generous one fits at the first candidate.
	res = run(t, DistProLong, func(c *Config) { c.Strategies = []string{StrategyDistCA} })
	assert.Equal(t, []float64{0.05, 0.05}, res[StrategyDistCA].EpsilonPerBatch)
	assert.False(t, res[StrategyDistCA].BufferOverflow)
}

func TestOutOfMemory(t *testing.T) {
	res := run(t, DistPretrain, func(c *Config) { c.Cluster.MemoryBytes = 1e9 })
	for name, r := range res {
		assert.True(t, r.OOM, name)
		assert.Zero(t, r.StepTimeS, "%s: an OOM strategy is not timed", name)
		assert.Greater(t, r.MemoryGB, 1.0)
	}
}

func TestRunPipeline(t *testing.T) {
	res := run(t, DistPretrain, func(c *Config) {
		c.Cluster.GPUs, c.Cluster.PP, c.Batch, c.Microbatches = 64, 2, 16, 4
	})
	for name, r := range res {
		assert.False(t, r.OOM, name)
		assert.Positive(t, r.StepTimeS, name)
		assert.Positive(t, r.IdleFrac, "%s: a pipeline idles somewhere", name)
	}
	assert.Less(t, res[StrategyDistCA].StepTimeS, res[StrategyPacking].StepTimeS)
}

func TestSingleStreamSlower(t *testing.T) {
	on := run(t, DistPretrain, func(c *Config) { c.Strategies = []string{StrategyDistCA}; c.Cluster.InterBW = 5e9 })
	off := run(t, DistPretrain, func(c *Config) {
		c.Strategies, c.SingleStream = []string{StrategyDistCA}, true
		c.Cluster.InterBW = 5e9
	})
	assert.Greater(t, off[StrategyDistCA].CommExposedS, on[StrategyDistCA].CommExposedS, "ping-pong hides communication")
}

func TestRunStress(t *testing.T) {
	lens, err := doclens.Builtin(DistProLong)
	require.NoError(t, err)
	cfg := DefaultConfig(DistProLong, 64<<10, 16)
	cfg.Cluster.TP = 1
	sc := DefaultSampleConfig(DistProLong, 16, 64<<10)
	cfg.Stress, cfg.Batches, cfg.Strategies = &sc, 1, []string{StrategyPacking, StrategyDistCA}
	res, err := Run(context.Background(), lens, cfg)
	require.NoError(t, err)
	require.Len(t, res, 2)
	assert.Greater(t, res[0].Imbalance, res[1].Imbalance)
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		mutate func(*Config)
		want   string
	}{
		{func(c *Config) { c.Cluster.GPUs = 1_000_000_000 }, "--gpus 1000000000"},
		{func(c *Config) { c.Cluster.TP = 3 }, "--tp 3"},
		{func(c *Config) { c.Cluster.PP = 3 }, "--pp 3"},
		{func(c *Config) { c.Cluster.InterBW = 0 }, "--inter-gbs 0"},
		{func(c *Config) { c.Cluster.BufferBytes = -1 }, "--buffer-gb"},
		{func(c *Config) { c.Batch = 0 }, "--batch 0"},
		{func(c *Config) { c.Batch = 1 << 20; c.Recipe.Context = 1 << 30 }, "too many"},
		{func(c *Config) { c.Batches = -1 }, "--batches -1"},
		{func(c *Config) { c.CPDegree = 3 }, "--cp-degree 3"},
		{func(c *Config) { c.Epsilons = []float64{-1} }, "--epsilons -1"},
		{func(c *Config) { c.Strategies = []string{"magic"} }, "--strategies"},
		{func(c *Config) { c.Recipe.Context = -4 }, "context -4"},
		{func(c *Config) { c.Arch = disagg.Llama34B; c.Cluster.PP = 5; c.Cluster.GPUs = 40 }, "--pp 5"},
	}
	for _, c := range cases {
		cfg := DefaultConfig(DistPretrain, 65536, 32)
		c.mutate(&cfg)
		_, err := Run(context.Background(), []int{100, 200}, cfg)
		assert.ErrorContains(t, err, c.want)
	}
}

func TestOneFOneB(t *testing.T) {
	// Equal microbatches: (m + p - 1) × (f + b).
	f, b := []float64{1, 1, 1, 1}, []float64{2, 2, 2, 2}
	assert.InDelta(t, (4+3-1)*3.0, oneFOneB(f, b, 3), 1e-9)
	assert.InDelta(t, 12.0, oneFOneB(f, b, 1), 1e-9)
	// A heavy microbatch stalls the pipeline by more than its own excess.
	f2, b2 := []float64{1, 4, 1, 1}, []float64{2, 8, 2, 2}
	assert.Greater(t, oneFOneB(f2, b2, 3), oneFOneB(f, b, 3)+9)
}

func TestWLBPack(t *testing.T) {
	docs := []int{100000, 60000, 5000, 5000, 5000, 5000, 30000, 20000}
	bins := wlbPack(docs, 2, sum(docs)/2, 64000)
	assert.Equal(t, sum(docs), sum(bins[0])+sum(bins[1]))
	assert.Equal(t, 100000, bins[0][0], "longest first to the first least-loaded bin")
	// Every bin but the overflow respects the cap.
	one := wlbPack(docs, 1, 0, 64000)
	assert.Equal(t, docs, one[0])
}

func TestPerDocShards(t *testing.T) {
	m := perDocShards([]int{1000, 7}, 4)
	assert.Equal(t, 1007, sum(m.tokens))
	var pairs [4]int64
	for r, ts := range m.tasks {
		for _, s := range ts {
			pairs[r] += disagg.CausalPairs(s.QLen, s.KLen)
		}
	}
	assert.Equal(t, disagg.CausalPairs(1000, 1000)+disagg.CausalPairs(7, 7), pairs[0]+pairs[1]+pairs[2]+pairs[3])
	assert.InDelta(t, float64(pairs[0]), float64(pairs[3]), 0.02*float64(pairs[0]), "head-tail pairs balance")
	s := perSeqShards([][]int{{600, 400}}, 2)
	assert.Equal(t, []int{500, 500}, s.tokens)
}

func TestTimelineOverlap(t *testing.T) {
	nb := nano{lin: []float64{1, 1}, ca: []float64{1, 1}, disp: 0.5, ret: 0.5}
	over, _ := timeline([]nano{nb, nb}, 4, true)
	single, _ := timeline([]nano{nb, nb}, 4, false)
	free, busy := timeline([]nano{{lin: nb.lin, ca: nb.ca}, {lin: nb.lin, ca: nb.ca}}, 4, true)
	assert.InDelta(t, 16.0, free, 1e-9, "4 layers × 2 nano-batches × (1 + 1)")
	assert.Equal(t, []float64{16, 16}, busy)
	assert.Less(t, over, single)
	assert.InDelta(t, 16.0+16*0.5, single, 1e-9, "a single stream exposes every transfer")
	assert.Less(t, over-free, 2.0, "ping-pong hides most of it")
}
