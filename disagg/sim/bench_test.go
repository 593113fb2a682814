package sim

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/disagg"
	"github.com/coreattn/coreattn/disagg/doclens"
)

// BenchmarkPlan512x512K schedules one ProLong-sampled global batch of 512
// servers × 512K tokens, the paper's largest configuration.
func BenchmarkPlan512x512K(b *testing.B) {
	lens, err := doclens.Builtin("prolong")
	require.NoError(b, err)
	s, err := NewSampler(lens, DefaultSampleConfig("prolong", 512, 512<<10), 1)
	require.NoError(b, err)
	l, err := disagg.Place(s.Next(), 512, 512<<10)
	require.NoError(b, err)
	costs := []disagg.CostModel{flopCost(b)}
	for _, eps := range []float64{disagg.DefaultEpsilon, 0} {
		name := "eps=0.1"
		if eps == 0 {
			name = "eps=0"
		}
		b.Run(name, func(b *testing.B) {
			var p *disagg.Plan
			for b.Loop() {
				var err error
				if p, err = disagg.Schedule(l, costs, disagg.Options{Arch: disagg.Llama8B, Epsilon: eps}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(p.Imbalance(), "imbalance")
			b.ReportMetric(float64(p.Moves), "moves")
		})
	}
}

func flopCost(t testing.TB) disagg.CostModel {
	c, err := disagg.NewFLOPModel(disagg.Llama8B, 400e12)
	require.NoError(t, err)
	return c
}
