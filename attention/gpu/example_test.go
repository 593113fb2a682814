package gpu_test

import (
	"context"
	"fmt"
	"log"
	"math/rand/v2"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/attention/gpu"
	"github.com/coreattn/coreattn/wgpu"
)

// Example runs the forward and backward of a packed varlen batch on the best
// adapter (lavapipe in CI) and checks them against the float64 reference.
// README.md shows this code.
func Example() {
	ctx := context.Background()
	dev, err := wgpu.OpenBest(wgpu.Options{}) // or wgpu.Open(index, opts); wgpu.Adapters lists them
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()
	op := gpu.New(dev) // gpu.NewWithOptions(dev, gpu.Options{...}) to choose the dQ mode, split-KV, ...

	// Two segments: a 3-token document, and a 2-query shard over a 6-key prefix.
	a := &attention.Args{
		CuSeqlensQ: []int32{0, 3, 5},
		CuSeqlensK: []int32{0, 3, 9},
		NumHeadsQ:  8, // GQA 4:1
		NumHeadsKV: 2,
		HeadDim:    64,
		Causal:     true, // SoftmaxScale 0 selects 1/sqrt(64)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	randn := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		return x
	}
	q := randn(a.TotalQ() * a.NumHeadsQ * a.HeadDim)  // [total_q, Hq, D]
	k := randn(a.TotalK() * a.NumHeadsKV * a.HeadDim) // [total_k, Hkv, D]
	v := randn(len(k))
	do := randn(len(q)) // the upstream gradient of O

	o, lse, err := op.Forward(ctx, a, q, k, v) // o [total_q, Hq, D], lse [Hq, total_q]
	if err != nil {
		log.Fatal(err) // bad arguments come back as errors naming the value
	}
	dq, dk, dv, err := op.Backward(ctx, a, q, k, v, o, lse, do)
	if err != nil {
		log.Fatal(err)
	}

	// The float64 reference computes the same function on the CPU.
	wantO, wantLSE, err := attention.ReferenceForward(a, q, k, v)
	if err != nil {
		log.Fatal(err)
	}
	wantDQ, wantDK, wantDV, err := attention.ReferenceBackward(a, q, k, v, do)
	if err != nil {
		log.Fatal(err)
	}
	worst := max(attention.RelError(o, wantO), attention.RelError(lse, wantLSE), attention.RelError(dq, wantDQ),
		attention.RelError(dk, wantDK), attention.RelError(dv, wantDV))
	fmt.Printf("O %d, LSE %d, dQ %d, dK %d, dV %d values; within 1e-4 of float64: %v\n",
		len(o), len(lse), len(dq), len(dk), len(dv), worst <= 1e-4)
	// Output:
	// O 2560, LSE 40, dQ 2560, dK 1152, dV 1152 values; within 1e-4 of float64: true
}
