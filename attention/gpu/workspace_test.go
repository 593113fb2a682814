package gpu

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/wgpu"
)

// wsRun is one launch pair (forward, backward) of a workspace test: its
// inputs, its tensors, and the outputs of an Op without a workspace.
type wsRun struct {
	in   bwdInputs
	ft   ForwardTensors
	bt   BackwardTensors
	want [5][]float32 // O, LSE, dQ, dK, dV
}

func newWSRun(t *testing.T, dev *wgpu.Device, plain *Op, c gpuCase, seed uint64) *wsRun {
	t.Helper()
	r := &wsRun{in: newBwdInputs(t, c, seed)}
	r.bt = r.in.tensors(t, dev)
	hq, tq := r.in.a.NumHeadsQ, r.in.a.TotalQ()
	r.ft = ForwardTensors{Q: r.bt.Q, K: r.bt.K, V: r.bt.V, O: poisoned(t, dev, "o", r.in.qElems), LSE: poisoned(t, dev, "lse", hq*tq)}
	fc, err := plain.PrepareForward(r.in.a, r.ft)
	require.NoError(t, err)
	bc, err := plain.PrepareBackward(r.in.a, r.bt)
	require.NoError(t, err)
	_, err = dev.Run(context.Background(), append(fc.Dispatches(), bc.Dispatches()...)...)
	require.NoError(t, err)
	fc.Release()
	bc.Release()
	r.want = r.outputs(t)
	if plain.opts.Kernels == KernelsTensorCore { // f16 products
		for i, w := range [][]float64{r.in.wantDQ, r.in.wantDK, r.in.wantDV} {
			require.LessOrEqual(t, attention.RelError(r.want[2+i], w), tcTolGrad, "gradient %d", i)
		}
		return r
	}
	r.in.checkHost(t, r.want[2], r.want[3], r.want[4])
	return r
}

func (r *wsRun) outputs(t *testing.T) [5][]float32 {
	t.Helper()
	hq, tq := r.in.a.NumHeadsQ, r.in.a.TotalQ()
	return [5][]float32{download(t, r.ft.O, r.in.qElems), download(t, r.ft.LSE, hq*tq),
		download(t, r.bt.DQ, r.in.qElems), download(t, r.bt.DK, r.in.kvElems), download(t, r.bt.DV, r.in.kvElems)}
}

// poison refills the outputs with NaN.
func (r *wsRun) poison(t *testing.T) {
	t.Helper()
	for _, b := range []*wgpu.Buffer{r.ft.O, r.ft.LSE, r.bt.DQ, r.bt.DK, r.bt.DV} {
		require.NoError(t, wgpu.Write(b, 0, nanSlice(int(b.Size()/4))))
	}
}

// TestWorkspaceSameBits runs launches prepared with a workspace over
// several rounds, with arguments that change from round to round and
// differ within one (two launch pairs in one command buffer), in every dQ
// mode (stored dS in passes, so that each pass has its own parameters):
// their outputs, poisoned before each round, must be the bits an Op
// without a workspace computes (itself checked against the reference). A
// round that repeats an earlier one's arguments must create no buffer.
func TestWorkspaceSameBits(t *testing.T) {
	dev := testOp(t).Device()
	a := gpuCase{qLens: []int{70, 33, 1, 128}, hq: 4, hkv: 2, d: 64, causal: true}
	b := gpuCase{qLens: []int{200, 5}, hq: 4, hkv: 2, d: 64, causal: true}
	const tile = 64 * 16 * 16 // a 64 x 64 dS tile, f32
	for _, tt := range []struct {
		name string
		opts Options
	}{
		{"auto", Options{}},
		{"fused", Options{DQ: DQFused}},
		{"separate", Options{DQ: DQSeparate}},
		{"stored in passes", Options{DQ: DQStored, DSScratch: 2 * 16 * tile}},
		{"tensor cores", Options{Kernels: KernelsTensorCore}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := TensorCoreDevice(dev.Info()); err != nil && tt.opts.Kernels == KernelsTensorCore {
				t.Skipf("%v", err)
			}
			plain := NewWithOptions(dev, tt.opts)
			ra, rb := newWSRun(t, dev, plain, a, 1), newWSRun(t, dev, plain, b, 2)
			ws := NewWorkspace(dev)
			t.Cleanup(ws.Release)
			op := plain.WithWorkspace(ws)
			rounds := [][]*wsRun{{ra}, {rb}, {ra, rb}, {rb, ra}, {ra}, {ra}}
			last := len(rounds) - 1 // repeats the round before
			var made, created [2]int64
			for round, runs := range rounds {
				ws.Reset()
				if round == last {
					made[0], created[0] = int64(ws.Buffers()), dev.BuffersCreated()
				}
				var ds []wgpu.Dispatch
				for _, r := range runs {
					r.poison(t)
					fc, err := op.PrepareForward(r.in.a, r.ft)
					require.NoError(t, err)
					bc, err := op.PrepareBackward(r.in.a, r.bt)
					require.NoError(t, err)
					ds = append(ds, fc.Dispatches()...)
					ds = append(ds, bc.Dispatches()...)
					fc.Release() // frees nothing: the workspace's buffers stay
					bc.Release()
				}
				require.NoError(t, dev.Submit(ds...)) // Run would make timestamp buffers
				require.NoError(t, dev.Wait(context.Background()))
				if round == last { // before the downloads, whose staging may grow
					made[1], created[1] = int64(ws.Buffers()), dev.BuffersCreated()
				}
				for _, r := range runs {
					require.Equal(t, r.want, r.outputs(t), "round %d", round)
				}
			}
			require.Equal(t, made[0], made[1], "buffers the workspace made in a repeated round")
			require.Equal(t, created[0], created[1], "buffers created on the device in a repeated round")
			require.NotZero(t, ws.Bytes())
			ws.Release()
			require.Zero(t, ws.Bytes())
		})
	}
}
