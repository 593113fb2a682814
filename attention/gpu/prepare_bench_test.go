package gpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/shaders"
)

// BenchmarkPrepare times a repeated Prepare of the forward and the
// backward, as the pool's per-batch path calls it: the kernels are compiled
// by the first call, before the timer starts, so an iteration costs what
// finding them again, planning the tiles and uploading the parameters cost.
// The GPU fetch pattern's sources are the larger (their loops unrolled).
func BenchmarkPrepare(b *testing.B) {
	gpuTiling := Options{
		ForwardTiling: shaders.FwdTiling{TX: 16, TY: 16, KC: 16, VC: 16},
		BackwardDQ:    shaders.BwdTiling{TX: 16, TY: 16, KC: 16, VC: 16},
		BackwardDKV:   shaders.BwdTiling{TX: 16, TY: 16, KC: 16, VC: 16, RowRegs: true},
	}
	stored := gpuTiling
	stored.DQ = DQStored
	stored.BackwardDQ.KC, stored.BackwardDQ.VC = 16, 16
	for _, c := range []struct {
		name string
		opts Options
		d    int
	}{
		{"auto", Options{}, 128},
		{"gpu-pattern", gpuTiling, 64},
		{"gpu-pattern-stored-ds", stored, 64},
	} {
		op := testOp(b)
		op.opts = c.opts
		a := &attention.Args{CuSeqlensQ: []int32{0, 100, 228}, CuSeqlensK: []int32{0, 150, 278}, NumHeadsQ: 4, NumHeadsKV: 2, HeadDim: c.d, Causal: true}
		benchPrepare(b, fmt.Sprintf("%s/%%s/D%d", c.name, c.d), op, a)
	}
}

// BenchmarkPrepareTensorCore times the tensor-core Prepare of a training
// step's layer (8 documents of 2048 tokens, 6 query and 2 KV heads of 64)
// in a warm workspace, as the trainer calls it every layer of every step:
// planning, the parameter and tile-table uploads and finding the kernels,
// with the large dS scratch already allocated. It skips on adapters
// without subgroup matrices.
func BenchmarkPrepareTensorCore(b *testing.B) {
	op := testOp(b)
	if _, err := TensorCoreDevice(op.Device().Info()); err != nil {
		b.Skip(err)
	}
	op.opts = Options{Kernels: KernelsTensorCore, DSScratch: 2 << 30}
	op = op.WithWorkspace(NewWorkspace(op.Device()))
	cu := make([]int32, 9)
	for i := range 8 {
		cu[i+1] = cu[i] + 2048
	}
	a := &attention.Args{CuSeqlensQ: cu, CuSeqlensK: cu, NumHeadsQ: 6, NumHeadsKV: 2, HeadDim: 64, Causal: true}
	benchPrepare(b, "%s/8x2048/H6:2/D64", op, a)
}

// benchPrepare runs the forward's and the backward's Prepare on fresh
// random tensors for a, one sub-benchmark each (name's %s is the pass).
func benchPrepare(b *testing.B, name string, op *Op, a *attention.Args) {
	rng := rand.New(rand.NewPCG(3, 4))
	nq, nk := a.TotalQ()*a.NumHeadsQ*a.HeadDim, a.TotalK()*a.NumHeadsKV*a.HeadDim
	dev := op.Device()
	ft := ForwardTensors{
		Q: upload(b, dev, "q", randn(rng, nq)), K: upload(b, dev, "k", randn(rng, nk)), V: upload(b, dev, "v", randn(rng, nk)),
		O: poisoned(b, dev, "o", nq), LSE: poisoned(b, dev, "lse", a.NumHeadsQ*a.TotalQ()),
	}
	bt := BackwardTensors{Q: ft.Q, K: ft.K, V: ft.V, O: ft.O, LSE: ft.LSE,
		DO: upload(b, dev, "do", randn(rng, nq)), DQ: poisoned(b, dev, "dq", nq), DK: poisoned(b, dev, "dk", nk), DV: poisoned(b, dev, "dv", nk)}
	for _, pass := range []struct {
		name    string
		prepare func() (*Call, error)
	}{
		{"forward", func() (*Call, error) { return op.PrepareForward(a, ft) }},
		{"backward", func() (*Call, error) { return op.PrepareBackward(a, bt) }},
	} {
		b.Run(fmt.Sprintf(name, pass.name), func(b *testing.B) {
			call, err := pass.prepare() // compiles (and fills a workspace)
			if err != nil {
				b.Fatal(err)
			}
			call.Release()
			b.ResetTimer()
			for range b.N {
				call, err := pass.prepare()
				if err != nil {
					b.Fatal(err)
				}
				call.Release()
			}
		})
	}
}
