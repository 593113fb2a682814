package gpu

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/coreattn/coreattn/attention"
)

// BenchmarkForward times the forward on the best adapter at a causal
// sequence per head dimension, sized for lavapipe; `coreattn bench` has the
// full shapes. It reports TFLOP/s beside ns/op.
func BenchmarkForward(b *testing.B) {
	for _, c := range []struct{ s, d, h int }{{512, 64, 4}, {1024, 128, 2}} {
		b.Run(fmt.Sprintf("S%d_D%d_H%d", c.s, c.d, c.h), func(b *testing.B) {
			op := testOp(b)
			a := &attention.Args{CuSeqlensQ: []int32{0, int32(c.s)}, CuSeqlensK: []int32{0, int32(c.s)}, NumHeadsQ: c.h, NumHeadsKV: c.h, HeadDim: c.d, Causal: true}
			rng := rand.New(rand.NewPCG(1, 2))
			n := c.s * c.h * c.d
			ft := ForwardTensors{
				Q: upload(b, op.Device(), "q", randn(rng, n)), K: upload(b, op.Device(), "k", randn(rng, n)), V: upload(b, op.Device(), "v", randn(rng, n)),
				O: poisoned(b, op.Device(), "o", n), LSE: poisoned(b, op.Device(), "lse", c.s*c.h),
			}
			call, err := op.PrepareForward(a, ft)
			if err != nil {
				b.Fatal(err)
			}
			defer call.Release()
			ctx := context.Background()
			if _, err := op.Device().Run(ctx, call.Dispatches()...); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if err := op.Device().Submit(call.Dispatches()...); err != nil {
					b.Fatal(err)
				}
			}
			if err := op.Device().Wait(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(a.FLOPs()*float64(b.N)/b.Elapsed().Seconds()/1e12, "TFLOP/s")
		})
	}
}
