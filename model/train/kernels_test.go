package train

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/coreattn/coreattn/model"
	"github.com/coreattn/coreattn/wgpu"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tolerance of every kernel against float64 (f32 storage and math).
const kernelTol = 1e-5

func TestNormKernels(t *testing.T) {
	for _, tt := range []struct {
		name          string
		rows, d, wOff int
		chunk         int
	}{
		{"one row", 1, 64, 0, 256},
		{"rows and offset", 37, 64, 12, 8},
		{"wide rows", 19, 200, 100, 5},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k := newKT(t)
			rng := rand.New(rand.NewPCG(1, uint64(tt.rows)))
			n := tt.rows * tt.d
			x, delta, dh := randn(rng, n, 1), randn(rng, n, 1), randn(rng, n, 1)
			wAll := randn(rng, tt.wOff+tt.d+7, 1)
			w := wAll[tt.wOff : tt.wOff+tt.d]
			s := normShape{rows: tt.rows, d: tt.d, wOff: tt.wOff, gOff: tt.wOff, eps: 1e-5, chunk: tt.chunk}

			xb, db, wb, dhb := k.up("x", x), k.up("delta", delta), k.up("w", wAll), k.up("dh", dh)
			h, rstd := k.out("h", n), k.out("rstd", tt.rows)
			k.run(k.b.normFwd(s, xb, wb, h, rstd))
			wantH, wantR := model.RMSNormForward(x, w, tt.d, 1e-5)
			assert.Less(t, relErr(k.get(h, n), wantH), kernelTol, "norm_fwd h")
			assert.Less(t, relErr(k.get(rstd, tt.rows), wantR), kernelTol, "norm_fwd rstd")

			sum, h2, rstd2 := k.out("sum", n), k.out("h2", n), k.out("rstd2", tt.rows)
			k.run(k.b.addNormFwd(s, xb, db, wb, sum, h2, rstd2))
			xs := make([]float64, n)
			for i := range xs {
				xs[i] = x[i] + delta[i]
			}
			wantH2, wantR2 := model.RMSNormForward(xs, w, tt.d, 1e-5)
			assert.Less(t, relErr(k.get(sum, n), xs), kernelTol, "add_norm_fwd x")
			assert.Less(t, relErr(k.get(h2, n), wantH2), kernelTol, "add_norm_fwd h")
			assert.Less(t, relErr(k.get(rstd2, tt.rows), wantR2), kernelTol, "add_norm_fwd rstd")

			// The backward from the device's rstd, stored then accumulated.
			r := k.get(rstd, tt.rows)
			wantDX, wantDW := model.RMSNormBackward(x, w, r, dh, tt.d)
			dres := k.out("dres", n)
			k.run(k.b.normBwd(s, false, xb, wb, rstd, dhb, dres))
			assert.Less(t, relErr(k.get(dres, n), wantDX), kernelTol, "norm_bwd store")
			prior := randn(rng, n, 1)
			dres2 := k.up("dres2", prior)
			k.run(k.b.normBwd(s, true, xb, wb, rstd, dhb, dres2))
			for i := range prior {
				prior[i] += wantDX[i]
			}
			assert.Less(t, relErr(k.get(dres2, n), prior), kernelTol, "norm_bwd accumulate")

			// The weight's gradient lands at its offset and nowhere else.
			sentinel := randn(rng, len(wAll), 1)
			grads := k.up("grads", sentinel)
			part := k.out("part", ceilDiv(tt.rows, tt.chunk)*tt.d)
			k.run(k.b.normDW(s, xb, rstd, dhb, part, grads)...)
			got := k.get(grads, len(wAll))
			assert.Less(t, relErr(got[tt.wOff:tt.wOff+tt.d], wantDW), kernelTol, "dw")
			assert.Equal(t, sentinel[:tt.wOff], got[:tt.wOff])
			assert.Equal(t, sentinel[tt.wOff+tt.d:], got[tt.wOff+tt.d:])
		})
	}
}

func TestRopeKernels(t *testing.T) {
	k := newKT(t)
	rng := rand.New(rand.NewPCG(2, 3))
	const hq, hkv, dh = 4, 2, 16
	b := model.Batch{CuSeqlens: []int32{0, 5, 6, 40}}
	rows := 40
	for range rows {
		b.Tokens = append(b.Tokens, int32(rng.IntN(256)))
	}
	pos := b.Positions()
	width := (hq + 2*hkv) * dh
	qkv := randn(rng, rows*width, 1)
	batch := upInts(k, "batch", batchInts(b))
	table := k.up("table", ropeTable(rows, dh, 10000))
	s := ropeShape{rows: rows, hq: hq, hkv: hkv, dh: dh, posOff: 2 * rows}
	q, kk, v := k.out("q", rows*hq*dh), k.out("k", rows*hkv*dh), k.out("v", rows*hkv*dh)
	k.run(k.b.ropeFwd(s, batch, table, k.up("qkv", qkv), q, kk, v))
	cols := func(x []float64, from, to int) []float64 {
		var out []float64
		for r := range rows {
			out = append(out, x[r*width+from:r*width+to]...)
		}
		return out
	}
	wantQ := model.RopeForward(cols(qkv, 0, hq*dh), pos, hq, dh, 10000)
	wantK := model.RopeForward(cols(qkv, hq*dh, (hq+hkv)*dh), pos, hkv, dh, 10000)
	assert.Less(t, relErr(k.get(q, rows*hq*dh), wantQ), kernelTol)
	assert.Less(t, relErr(k.get(kk, rows*hkv*dh), wantK), kernelTol)
	assert.Equal(t, cols(qkv, (hq+hkv)*dh, width), k.get(v, rows*hkv*dh), "v is copied")

	dq, dk, dv := randn(rng, rows*hq*dh, 1), randn(rng, rows*hkv*dh, 1), randn(rng, rows*hkv*dh, 1)
	dqkv := k.out("dqkv", rows*width)
	k.run(k.b.ropeBwd(s, batch, table, k.up("dq", dq), k.up("dk", dk), k.up("dv", dv), dqkv))
	got := k.get(dqkv, rows*width)
	assert.Less(t, relErr(cols(got, 0, hq*dh), model.RopeBackward(dq, pos, hq, dh, 10000)), kernelTol)
	assert.Less(t, relErr(cols(got, hq*dh, (hq+hkv)*dh), model.RopeBackward(dk, pos, hkv, dh, 10000)), kernelTol)
	assert.Equal(t, dv, cols(got, (hq+hkv)*dh, width))
}

func TestSwiGLUKernels(t *testing.T) {
	k := newKT(t)
	rng := rand.New(rand.NewPCG(4, 5))
	const rows, f = 13, 12
	gu := randn(rng, rows*2*f, 3)
	gu[0], gu[1] = -100, 100 // the sigmoid's tails
	var gate, up []float64
	for r := range rows {
		gate = append(gate, gu[r*2*f:r*2*f+f]...)
		up = append(up, gu[r*2*f+f:(r+1)*2*f]...)
	}
	gub := k.up("gu", gu)
	act := k.out("act", rows*f)
	k.run(k.b.swigluFwd(rows, f, gub, act))
	assert.Less(t, relErr(k.get(act, rows*f), model.SwiGLUForward(gate, up)), kernelTol)

	da := randn(rng, rows*f, 1)
	dgu := k.out("dgu", rows*2*f)
	k.run(k.b.swigluBwd(rows, f, gub, k.up("da", da), dgu))
	wantG, wantU := model.SwiGLUBackward(gate, up, da)
	got := k.get(dgu, rows*2*f)
	var gotG, gotU []float64
	for r := range rows {
		gotG = append(gotG, got[r*2*f:r*2*f+f]...)
		gotU = append(gotU, got[r*2*f+f:(r+1)*2*f]...)
	}
	assert.Less(t, relErr(gotG, wantG), kernelTol)
	assert.Less(t, relErr(gotU, wantU), kernelTol)
}

func TestXentAndLossKernels(t *testing.T) {
	k := newKT(t)
	rng := rand.New(rand.NewPCG(6, 7))
	b := model.Batch{CuSeqlens: []int32{0, 7, 8, 29}}
	rows := 29
	for range rows {
		b.Tokens = append(b.Tokens, int32(rng.IntN(256)))
	}
	logits := randn(rng, rows*model.Vocab, 2)
	wantLoss, wantD := model.CrossEntropy(logits, b.Targets(), model.Vocab)
	step := k.up("step", to64(stepValues(b.NumTargets(), 0, model.DefaultOptimizer(), 1, 1)))
	lb, rowloss := k.up("logits", logits), k.out("rowloss", rows)
	part, scalars := k.out("part", 1024), k.out("scalars", 4)
	ds := append([]wgpu.Dispatch{k.b.xent(rows, model.Vocab, rows, upInts(k, "batch", batchInts(b)), step, lb, rowloss)},
		k.b.sum("finish_loss", rows, false, 0, rowloss, part, step, scalars)...)
	k.run(ds...)
	assert.Less(t, relErr(k.get(lb, rows*model.Vocab), wantD), kernelTol, "dlogits")
	got := k.get(scalars, 2)
	assert.InDelta(t, wantLoss, got[0], kernelTol*wantLoss, "mean loss")
	assert.InDelta(t, wantLoss*float64(b.NumTargets()), got[1], kernelTol*got[1], "loss sum")
	rl := k.get(rowloss, rows)
	assert.Zero(t, rl[6], "the last row of a document has no loss")
	assert.Zero(t, rl[7])
}

func TestReduceKernels(t *testing.T) {
	for _, n := range []int{1, 1000, 100003, 3 << 20} {
		k := newKT(t)
		rng := rand.New(rand.NewPCG(8, uint64(n)))
		x := randn(rng, n, 1)
		step := k.up("step", to64(stepValues(1, 0, model.DefaultOptimizer(), 1, 1)))
		part, scalars := k.out("part", 1024), k.up("scalars", []float64{7, 7, math.NaN(), math.NaN()})
		k.run(k.b.sum("finish_norm", n, true, 1, k.up("x", x), part, step, scalars)...)
		ss := 0.0
		for _, v := range x {
			ss += v * v
		}
		got := k.get(scalars, 4)
		assert.InDelta(t, math.Sqrt(ss), got[2], 1e-6*math.Sqrt(ss), "n=%d", n)
		assert.InDelta(t, min(1, 1/(math.Sqrt(ss)+1e-6)), got[3], 1e-6, "clip, n=%d", n)
		assert.Equal(t, []float64{7, 7}, got[:2], "the norm leaves the loss alone")
	}
}

func TestEmbedKernels(t *testing.T) {
	k := newKT(t)
	rng := rand.New(rand.NewPCG(9, 10))
	const d, off = 68, 40
	b := model.Batch{CuSeqlens: []int32{0, 50, 90}}
	for range 90 {
		b.Tokens = append(b.Tokens, int32(rng.IntN(20)+100)) // repeats, and absent ids
	}
	rows := len(b.Tokens)
	wAll := randn(rng, off+model.Vocab*d, 1)
	x := k.out("x", rows*d)
	k.run(k.b.embedFwd(rows, d, off, upInts(k, "batch", batchInts(b)), k.up("w", wAll), x))
	var want []float64
	for _, tok := range b.Tokens {
		want = append(want, wAll[off+int(tok)*d:off+int(tok+1)*d]...)
	}
	assert.Equal(t, want, k.get(x, rows*d))

	dx := randn(rng, rows*d, 1)
	sentinel := randn(rng, off+model.Vocab*d, 1)
	grads := k.up("grads", sentinel)
	k.run(k.b.embedBwd(rows, d, off, model.Vocab, upInts(k, "index", embedIndex(b.Tokens)), k.up("dx", dx), grads))
	wantG := make([]float64, model.Vocab*d)
	for r, tok := range b.Tokens {
		for i := range d {
			wantG[int(tok)*d+i] += dx[r*d+i]
		}
	}
	got := k.get(grads, off+model.Vocab*d)
	assert.Less(t, relErr(got[off:], wantG), kernelTol)
	assert.Equal(t, sentinel[:off], got[:off])
	assert.Zero(t, got[off+5*d], "an id absent from the batch gets a zero gradient")
}

func TestEmbedIndex(t *testing.T) {
	idx := embedIndex([]int32{3, 1, 3, 255, 3})
	require.Len(t, idx, model.Vocab+1+5)
	off := idx[:model.Vocab+1]
	assert.Equal(t, []uint32{0, 0, 1, 1, 4}, off[:5])
	assert.Equal(t, uint32(5), off[model.Vocab])
	rows := idx[model.Vocab+1:]
	assert.Equal(t, []uint32{1}, rows[off[1]:off[2]])
	assert.Equal(t, []uint32{0, 2, 4}, rows[off[3]:off[4]], "rows in increasing order")
	assert.Equal(t, []uint32{3}, rows[off[255]:off[256]])
}

func TestFMAPeak(t *testing.T) {
	peak, err := FMAPeak(context.Background(), testDev)
	require.NoError(t, err)
	// Any adapter, lavapipe on a busy CI machine included, does more than
	// 10 MFLOP/s and less than 10 PFLOP/s of float32.
	assert.Greater(t, peak, 1e7)
	assert.Less(t, peak, 1e16)
	t.Logf("FMA peak %.3g FLOP/s", peak)
}
