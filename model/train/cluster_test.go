package train

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/model"
	"github.com/coreattn/coreattn/wgpu"
)

func newTestCluster(t *testing.T, devs []*wgpu.Device, c model.Config, o ClusterOptions, seed uint64) *Cluster {
	t.Helper()
	cl, err := NewCluster(devs, c, o)
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	w, err := model.Init(c, seed)
	require.NoError(t, err)
	require.NoError(t, cl.SetWeights(w))
	return cl
}

// equivBatches are global batches of real text for 4 ranks of 64 tokens:
// documents continue across ranks, and one long document (160 of the
// 256 tokens, over three ranks) makes attention unequal.
func equivBatches(t *testing.T) []model.Batch {
	return []model.Batch{
		realBatch(t, 256, 160, 30, 5, 40),
		realBatch(t, 256, 20, 170, 1, 33),
		realBatch(t, 256, 64, 64, 100),
	}
}

func relDiff(a, b float64) float64 { return math.Abs(a-b) / math.Abs(b) }

// TestClusterOneRankIsTheTrainer: a cluster of one rank without ping-pong
// computes what the single-device trainer does, bit for bit.
func TestClusterOneRankIsTheTrainer(t *testing.T) {
	c := tinyConfig(t)
	const tokens, steps = 256, 3
	tr := newTestTrainer(t, c, tokens, 7)
	cl := newTestCluster(t, []*wgpu.Device{testDev}, c, ClusterOptions{Ranks: 1, TokensPerRank: tokens, NanoBatches: 1, Packing: true}, 7)
	s := model.NewSchedule(3e-3, steps)
	ctx := context.Background()
	for i, b := range equivBatches(t)[:steps] {
		want, err := tr.Step(ctx, b, s.At(i+1))
		require.NoError(t, err)
		got, err := cl.Step(ctx, b, s.At(i+1))
		require.NoError(t, err)
		assert.InDelta(t, want.Loss, got.Loss, 1e-6*want.Loss, "step %d loss", i+1)
		assert.Equal(t, want.GradNorm, got.GradNorm, "step %d gradient norm", i+1)
	}
	want, err := tr.Weights(ctx)
	require.NoError(t, err)
	got, err := cl.Weights(ctx)
	require.NoError(t, err)
	assert.Equal(t, want.Tensors, got.Tensors, "weights")
}

// trainLosses trains for steps steps over batches (in turn) and returns
// each step's loss, and the last step's statistics.
func clusterLosses(t *testing.T, cl *Cluster, batches []model.Batch, steps int) ([]float64, []StepStats) {
	t.Helper()
	s := model.NewSchedule(3e-3, steps)
	var out []float64
	var stats []StepStats
	for i := range steps {
		res, err := cl.Step(context.Background(), batches[i%len(batches)], s.At(i+1))
		require.NoError(t, err)
		out = append(out, res.Loss)
		stats = append(stats, res.Stats)
	}
	return out, stats
}

// TestClusterEquivalence is issue 22's check: the same seed and global
// batches trained for 20 steps on one rank, on 4 ranks with packing and on
// 4 ranks with CAD (with and without ping-pong) give the same loss at
// every step to 1e-5 relative.
func TestClusterEquivalence(t *testing.T) {
	c := tinyConfig(t)
	const steps, seed = 20, 3
	batches := equivBatches(t)
	tr := newTestTrainer(t, c, 256, seed)
	s := model.NewSchedule(3e-3, steps)
	var want []float64
	for i := range steps {
		res, err := tr.Step(context.Background(), batches[i%len(batches)], s.At(i+1))
		require.NoError(t, err)
		want = append(want, res.Loss)
	}
	imbalance := map[string]float64{}
	for _, tt := range []struct {
		name string
		o    ClusterOptions
	}{
		{"packing", ClusterOptions{Packing: true}},
		{"CAD", ClusterOptions{BlockSize: 8}},
		{"CAD without ping-pong", ClusterOptions{BlockSize: 8, NanoBatches: 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.o
			o.Ranks, o.TokensPerRank = 4, 64
			cl := newTestCluster(t, []*wgpu.Device{testDev}, c, o, seed)
			got, stats := clusterLosses(t, cl, batches, steps)
			worst := 0.0
			for i := range want {
				worst = max(worst, relDiff(got[i], want[i]))
				assert.InDelta(t, want[i], got[i], 1e-5*want[i], "step %d", i+1)
			}
			t.Logf("%s: loss %.4f -> %.4f, largest relative difference from one rank %.2g; predicted imbalance %.3f, moved %d bytes",
				tt.name, got[0], got[steps-1], worst, stats[0].PredictedImbalance, stats[0].BytesMoved)
			assert.Less(t, got[steps-1], got[0]-0.5, "the loss falls")
			imbalance[tt.name] = stats[0].PredictedImbalance
			if !o.Packing {
				assert.Positive(t, stats[0].BytesMoved, "CAD moves rows")
			}
		})
	}
	assert.Less(t, imbalance["CAD"], imbalance["packing"]-0.2, "CAD balances the ranks' attention")
	assert.Less(t, imbalance["CAD without ping-pong"], imbalance["packing"]-0.2, "CAD balances the ranks' attention")
}

// TestClusterServerLost: a rank's attention server lost in the middle of
// a step (forward or backward, through the fault hook) is re-planned onto
// the others; the step finishes with the loss of a run without the fault,
// and later steps leave the server out.
func TestClusterServerLost(t *testing.T) {
	c := tinyConfig(t)
	const steps, seed = 4, 5
	batches := equivBatches(t)
	o := ClusterOptions{Ranks: 4, TokensPerRank: 64, BlockSize: 8}
	want, _ := clusterLosses(t, newTestCluster(t, []*wgpu.Device{testDev}, c, o, seed), batches, steps)
	for _, tt := range []struct {
		name string
		at   Fault
	}{
		{"forward", Fault{Step: 2, Layer: 1, Rank: 2}},
		{"backward", Fault{Step: 2, Layer: 0, Rank: 1, Backward: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := o
			calls := 0
			o.ServerFault = func(f Fault) error {
				calls++
				if f == tt.at {
					return fmt.Errorf("%w: injected at %+v", ErrServerLost, f)
				}
				return nil
			}
			cl := newTestCluster(t, []*wgpu.Device{testDev}, c, o, seed)
			got, stats := clusterLosses(t, cl, batches, steps)
			assert.Positive(t, calls)
			assert.Equal(t, []int{tt.at.Rank}, cl.Lost())
			assert.Zero(t, stats[0].Replans)
			assert.Equal(t, 1, stats[1].Replans, "step 2 was re-planned once")
			for _, st := range stats[1:] {
				for j, ts := range st.Plan.Tasks {
					if j%o.Ranks == tt.at.Rank {
						assert.Empty(t, ts, "the lost server runs nothing")
					}
				}
			}
			assert.InDelta(t, want[1], got[1], 1e-6*want[1], "the step with the fault has the loss of one without")
			for i := range want {
				assert.InDelta(t, want[i], got[i], 1e-5*want[i], "step %d", i+1)
			}
			t.Logf("step 2: loss %.7f with the fault, %.7f without (relative difference %.2g)", got[1], want[1], relDiff(got[1], want[1]))
		})
	}
}

// TestClusterTwoAdapters puts 2 ranks on two devices (lavapipe opened
// twice in CI): rows cross through the host and the gradients are summed
// across the devices, with the losses of the one-device cluster.
func TestClusterTwoAdapters(t *testing.T) {
	second, err := wgpu.OpenBest(wgpu.Options{})
	require.NoError(t, err)
	defer second.Close()
	c := tinyConfig(t)
	const steps, seed = 3, 9
	batches := equivBatches(t)
	o := ClusterOptions{Ranks: 2, TokensPerRank: 128, BlockSize: 8, Timed: true}
	want, _ := clusterLosses(t, newTestCluster(t, []*wgpu.Device{testDev}, c, o, seed), batches, steps)
	cl := newTestCluster(t, []*wgpu.Device{testDev, second}, c, o, seed)
	require.Equal(t, 2, cl.Devices())
	got, stats := clusterLosses(t, cl, batches, steps)
	for i := range want {
		assert.InDelta(t, want[i], got[i], 1e-5*want[i], "step %d", i+1)
	}
	assert.Positive(t, stats[0].BytesHost, "rows crossed adapters")
	assert.False(t, stats[0].WaitProjected, "one rank per adapter: waits are measured")
	for r, rt := range stats[0].Ranks {
		assert.Positive(t, rt.Transfer, "rank %d's transfers", r)
	}
	w0, err := cl.Weights(context.Background())
	require.NoError(t, err)
	w1, err := cl.download(context.Background(), cl.devs[1].params)
	require.NoError(t, err)
	assert.Equal(t, w0.Tensors, w1, "the replicas hold the same weights")
}

// TestClusterBreakdown: a timed step splits every rank's time into
// linear, attention and transfer work by timestamp queries (or host
// clocks), projects the waits of ranks that share the adapter, and the
// projected parallel step is no shorter than the busiest rank's work and
// no longer than the ranks' work one after another.
func TestClusterBreakdown(t *testing.T) {
	c := tinyConfig(t)
	o := ClusterOptions{Ranks: 4, TokensPerRank: 64, BlockSize: 8, Timed: true}
	cl := newTestCluster(t, []*wgpu.Device{testDev}, c, o, 1)
	assert.Equal(t, c, cl.Config())
	assert.Equal(t, 4, cl.Ranks())
	assert.Equal(t, 256, cl.Tokens())
	before := cl.DeviceBytes()
	res, err := cl.Gradients(context.Background(), equivBatches(t)[0])
	require.NoError(t, err)
	assert.Greater(t, cl.DeviceBytes(), before, "the staging buffers grew")
	st := res.Stats
	assert.True(t, st.WaitProjected)
	assert.Equal(t, testDev.Info().Timestamps, st.Timestamps)
	// Per layer and pass, one stretch per nano-batch's attention phase,
	// and the stretch after the last.
	assert.Len(t, st.Intervals, 2*c.Layers*2+1)
	var serial, busiest time.Duration
	for r, rt := range st.Ranks {
		assert.Positive(t, rt.Linear, "rank %d", r)
		assert.Positive(t, rt.Attention, "rank %d", r)
		assert.GreaterOrEqual(t, rt.Wait, time.Duration(0), "rank %d", r)
		work := rt.Linear + rt.Attention + rt.Transfer
		serial += work
		busiest = max(busiest, work)
	}
	proj := st.Projected(0)
	assert.GreaterOrEqual(t, proj, busiest)
	assert.LessOrEqual(t, proj, serial+st.Reduce)
	assert.Greater(t, st.Projected(1e6), proj, "moving bytes at 1 MB/s takes time")
	assert.GreaterOrEqual(t, st.MeasuredImbalance, 1.0)
	assert.Len(t, st.PlanLoad, 4)
}

// TestClusterWarmAttentionAllocatesNothing: once a cluster of 4 ranks (CAD
// with ping-pong) has stepped on the equivalence batches, stepping on them
// again makes no attention buffer: every server's launches, in place and
// staged, take theirs from the adapter's workspace.
func TestClusterWarmAttentionAllocatesNothing(t *testing.T) {
	c := tinyConfig(t)
	cl := newTestCluster(t, []*wgpu.Device{testDev}, c, ClusterOptions{Ranks: 4, TokensPerRank: 64}, 7)
	ctx := context.Background()
	batches := equivBatches(t)
	for _, b := range batches {
		_, err := cl.Step(ctx, b, 1e-3)
		require.NoError(t, err)
	}
	ws := cl.devs[0].ws
	made, bytes := ws.Buffers(), ws.Bytes()
	require.NotZero(t, made)
	for _, b := range batches {
		_, err := cl.Step(ctx, b, 1e-3)
		require.NoError(t, err)
	}
	assert.Equal(t, made, ws.Buffers(), "attention buffers made by warm steps")
	assert.Equal(t, bytes, ws.Bytes())
}
