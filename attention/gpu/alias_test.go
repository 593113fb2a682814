package gpu

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/attention"
)

// TestForwardAliasing: an output that shares its buffer with the other
// output or an input is ErrAliased, before anything runs; inputs may share
// one buffer (Q = K = V gives the reference's result).
func TestForwardAliasing(t *testing.T) {
	op := testOp(t)
	dev := op.Device()
	c := gpuCase{qLens: []int{6}, hq: 1, hkv: 1, d: 8, causal: true}
	a := c.args()
	rng := rand.New(rand.NewPCG(3, 0xa1))
	x := randn(rng, a.TotalQ()*a.NumHeadsQ*a.HeadDim)
	fresh := func() ForwardTensors {
		return ForwardTensors{
			Q: upload(t, dev, "q", x), K: upload(t, dev, "k", x), V: upload(t, dev, "v", x),
			O: poisoned(t, dev, "o", len(x)), LSE: poisoned(t, dev, "lse", len(x)),
		}
	}
	for _, tc := range []struct {
		name string
		edit func(*ForwardTensors)
	}{
		{"o is lse", func(ft *ForwardTensors) { ft.LSE = ft.O }},
		{"o is q", func(ft *ForwardTensors) { ft.O = ft.Q }},
		{"o is v", func(ft *ForwardTensors) { ft.O = ft.V }},
		{"lse is k", func(ft *ForwardTensors) { ft.LSE = ft.K }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ft := fresh()
			tc.edit(&ft)
			_, err := op.PrepareForward(a, ft)
			require.ErrorIs(t, err, ErrAliased)
			require.ErrorIs(t, op.ForwardBuffers(context.Background(), a, ft), ErrAliased)
		})
	}
	t.Run("inputs share a buffer", func(t *testing.T) {
		ft := fresh()
		ft.K, ft.V = ft.Q, ft.Q
		require.NoError(t, op.ForwardBuffers(context.Background(), a, ft))
		wantO, wantLSE, err := attention.ReferenceForward(a, x, x, x)
		require.NoError(t, err)
		require.LessOrEqual(t, attention.RelError(download(t, ft.O, len(x)), wantO), 1e-4)
		require.LessOrEqual(t, attention.RelError(download(t, ft.LSE, len(wantLSE)), wantLSE), 1e-4)
	})
}

// TestBackwardAliasing: an output gradient that shares its buffer with
// another output or an input is ErrAliased; inputs may share buffers.
func TestBackwardAliasing(t *testing.T) {
	op := testOp(t)
	dev := op.Device()
	in := newBwdInputs(t, gpuCase{qLens: []int{5, 3}, hq: 2, hkv: 2, d: 8, causal: true}, 11)
	for _, tc := range []struct {
		name string
		edit func(*BackwardTensors)
	}{
		{"dq is dk", func(bt *BackwardTensors) { bt.DK = bt.DQ }},
		{"dv is dk", func(bt *BackwardTensors) { bt.DV = bt.DK }},
		{"dq is o", func(bt *BackwardTensors) { bt.DQ = bt.O }},
		{"dv is do", func(bt *BackwardTensors) { bt.DV = bt.DO }},
		{"lse is dk", func(bt *BackwardTensors) { bt.LSE = bt.DK }},
		{"dk is k", func(bt *BackwardTensors) { bt.DK = bt.K }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bt := in.tensors(t, dev)
			tc.edit(&bt)
			_, err := op.PrepareBackward(in.a, bt)
			require.ErrorIs(t, err, ErrAliased)
			require.ErrorIs(t, op.BackwardBuffers(context.Background(), in.a, bt), ErrAliased)
		})
	}
	t.Run("inputs share a buffer", func(t *testing.T) {
		bt := in.tensors(t, dev)
		bt.K, bt.V, bt.DO = bt.Q, bt.Q, bt.O // same shapes here: Hq = Hkv, total_q = total_k
		require.NoError(t, op.BackwardBuffers(context.Background(), in.a, bt))
	})
}
