package train

import (
	"fmt"

	"github.com/coreattn/coreattn/gemm"
	"github.com/coreattn/coreattn/model"
	"github.com/coreattn/coreattn/wgpu"
)

// allocator hands out device buffers of n 4-byte elements; the counting
// one (for [Requirements]) returns nil buffers.
type allocator func(label string, n int) (*wgpu.Buffer, error)

// rank holds what one rank of a step owns: the batch of its T tokens, the
// activations the backward reads (the residual stream, every normed input
// of a product, Q, K, V, O, LSE and the SwiGLU tensors of every layer) and
// the scratch of the backward, plus the step's recorded segments on its
// stream. A single-device trainer has one rank.
type rank struct {
	tokens int
	stream *Stream

	batch *wgpu.Buffer // tokens, targets, positions (see batch.go)
	index *wgpu.Buffer // the embedding gradient's CSR index

	xs, hs, rstd               []*wgpu.Buffer // 2L+1 residual states, their normed copies and rstd
	q, k, v, o, lse, gu, act   []*wgpu.Buffer // per layer
	qkv, proj, logits, rowloss *wgpu.Buffer   // forward temporaries
	dres, dh, dqkv, dgu, dact  *wgpu.Buffer   // backward temporaries
	dq, dk, dv, do             *wgpu.Buffer
	part                       *wgpu.Buffer // norm weight-gradient partials

	// The step's non-attention work, recorded once (see record).
	embed             segment   // gather, then layer 0's attention norm
	fwdPre, fwdPost   []segment // per layer: before and after attention
	head, loss        segment   // LM head; cross-entropy and the loss sum
	bwdHead           segment   // LM head and final norm backward
	bwdPost, bwdPre   []segment // per layer: MLP and Wo backward; RoPE, QKV and norm backward
	embedBwd          segment
	normChunk, nchunk int
}

// normChunk is the number of rows per block of the norm weight-gradient
// partials: enough blocks to spread the sum, few enough to keep the
// second pass short.
func normChunkRows(tokens int) int { return max(64, ceilDiv(tokens, 256)) }

// newRank allocates a rank's buffers for tokens tokens.
func newRank(c model.Config, tokens int, alloc allocator) (*rank, error) {
	T, d, L := tokens, c.Dim, c.Layers
	r := &rank{tokens: T, normChunk: normChunkRows(T)}
	r.nchunk = ceilDiv(T, r.normChunk)
	var err error
	buf := func(label string, n int) *wgpu.Buffer {
		if err != nil {
			return nil
		}
		var b *wgpu.Buffer
		b, err = alloc(label, n)
		return b
	}
	r.batch = buf("batch", 3*T)
	r.index = buf("embedding index", model.Vocab+1+T)
	for k := range 2*L + 1 {
		r.xs = append(r.xs, buf(fmt.Sprintf("x%d", k), T*d))
		r.hs = append(r.hs, buf(fmt.Sprintf("h%d", k), T*d))
		r.rstd = append(r.rstd, buf(fmt.Sprintf("rstd%d", k), T))
	}
	for l := range L {
		name := func(s string) string { return fmt.Sprintf("layers.%d.%s", l, s) }
		r.q = append(r.q, buf(name("q"), T*c.QDim()))
		r.k = append(r.k, buf(name("k"), T*c.KVDim()))
		r.v = append(r.v, buf(name("v"), T*c.KVDim()))
		r.o = append(r.o, buf(name("o"), T*c.QDim()))
		r.lse = append(r.lse, buf(name("lse"), T*c.HeadsQ))
		r.gu = append(r.gu, buf(name("gate|up"), T*2*c.FFN))
		r.act = append(r.act, buf(name("swiglu"), T*c.FFN))
	}
	qkvW := c.QDim() + 2*c.KVDim()
	r.qkv = buf("qkv", T*qkvW)
	r.proj = buf("projection", T*d)
	r.logits = buf("logits", T*model.Vocab)
	r.rowloss = buf("row losses", T)
	r.dres = buf("d residual", T*d)
	r.dh = buf("d normed", T*d)
	r.dqkv = buf("d qkv", T*qkvW)
	r.dgu = buf("d gate|up", T*2*c.FFN)
	r.dact = buf("d swiglu", T*c.FFN)
	r.dq = buf("dq", T*c.QDim())
	r.dk = buf("dk", T*c.KVDim())
	r.dv = buf("dv", T*c.KVDim())
	r.do = buf("do", T*c.QDim())
	r.part = buf("norm partials", r.nchunk*d)
	return r, err
}

// weightsOf are the flat buffers a rank's products read and write.
type weightsOf struct {
	params, grads *wgpu.Buffer
	layout        paramLayout
	table         *wgpu.Buffer // RoPE (cos, sin)
	step, scalars *wgpu.Buffer
	partials      *wgpu.Buffer // loss partial sums
}

// recorder builds a rank's segments: kernels through b, products through
// g (their launches kept in launches for Release).
type recorder struct {
	c        model.Config
	b        *builder
	g        *gemm.Op
	w        weightsOf
	launches []*gemm.Launch
	err      error
}

// mat is a dense row-major matrix at the start of buf.
func mat(buf *wgpu.Buffer, rows, cols int) gemm.Matrix {
	return gemm.Matrix{Buf: buf, Rows: rows, Cols: cols}
}

// param is the parameter (or gradient) block of rows×cols starting at
// canonical parameter i.
func (rc *recorder) param(buf *wgpu.Buffer, i, rows, cols int) gemm.Matrix {
	return gemm.Matrix{Buf: buf, Offset: rc.w.layout.offsets[i], Rows: rows, Cols: cols}
}

// gemm records C = op(A)·op(B).
func (rc *recorder) gemm(seg *segment, s gemm.Spec) {
	if rc.err != nil {
		return
	}
	l, err := rc.g.Prepare(s)
	if err != nil {
		rc.err = fmt.Errorf("train: product %s = %s·%s: %w", s.C.Buf.Label(), s.A.Buf.Label(), s.B.Buf.Label(), err)
		return
	}
	rc.launches = append(rc.launches, l)
	seg.add(ClassGEMM, l.Dispatches()...)
}

// norm is the norm shape of residual state k (its weight and gradient).
func (rc *recorder) norm(r *rank, k int) normShape {
	off := rc.w.layout.offsets[normParam(rc.c, k)]
	return normShape{rows: r.tokens, d: rc.c.Dim, wOff: off, gOff: off, eps: rc.c.NormEps, chunk: r.normChunk}
}

// normParam is the canonical index of the norm applied to residual state
// k: layer k/2's attention norm (k even), its MLP norm (k odd), the final
// norm (k = 2L).
func normParam(c model.Config, k int) int {
	switch {
	case k == 2*c.Layers:
		return c.NormParam()
	case k%2 == 0:
		return c.LayerParam(k/2, model.LayerAttnNorm)
	}
	return c.LayerParam(k/2, model.LayerMLPNorm)
}

// record builds every segment of r's step.
func (rc *recorder) record(r *rank) error {
	c, b, w := rc.c, rc.b, rc.w
	T, d, L, F := r.tokens, c.Dim, c.Layers, c.FFN
	qkvW := c.QDim() + 2*c.KVDim()
	P, G := w.params, w.grads
	rope := ropeShape{rows: T, hq: c.HeadsQ, hkv: c.HeadsKV, dh: c.HeadDim, posOff: 2 * T}
	lp := func(l, which int) int { return c.LayerParam(l, which) }

	// Forward.
	r.embed.add(ClassOther,
		b.embedFwd(T, d, w.layout.offsets[model.TokEmb], r.batch, P, r.xs[0]),
		b.normFwd(rc.norm(r, 0), r.xs[0], P, r.hs[0], r.rstd[0]))
	r.fwdPre, r.fwdPost = make([]segment, L), make([]segment, L)
	r.bwdPost, r.bwdPre = make([]segment, L), make([]segment, L)
	for l := range L {
		pre, post := &r.fwdPre[l], &r.fwdPost[l]
		// qkv = h Wqkvᵀ, then RoPE splits it into Q, K, V.
		rc.gemm(pre, gemm.Spec{C: mat(r.qkv, T, qkvW), A: mat(r.hs[2*l], T, d), B: rc.param(P, lp(l, model.LayerWQ), qkvW, d), TransB: true})
		pre.add(ClassOther, b.ropeFwd(rope, r.batch, w.table, r.qkv, r.q[l], r.k[l], r.v[l]))
		// x' = x + o Woᵀ, normed for the MLP.
		rc.gemm(post, gemm.Spec{C: mat(r.proj, T, d), A: mat(r.o[l], T, c.QDim()), B: rc.param(P, lp(l, model.LayerWO), d, c.QDim()), TransB: true})
		post.add(ClassOther, b.addNormFwd(rc.norm(r, 2*l+1), r.xs[2*l], r.proj, P, r.xs[2*l+1], r.hs[2*l+1], r.rstd[2*l+1]))
		// x'' = x' + swiglu(h W13ᵀ) W2ᵀ, normed for what follows.
		rc.gemm(post, gemm.Spec{C: mat(r.gu[l], T, 2*F), A: mat(r.hs[2*l+1], T, d), B: rc.param(P, lp(l, model.LayerW1), 2*F, d), TransB: true})
		post.add(ClassOther, b.swigluFwd(T, F, r.gu[l], r.act[l]))
		rc.gemm(post, gemm.Spec{C: mat(r.proj, T, d), A: mat(r.act[l], T, F), B: rc.param(P, lp(l, model.LayerW2), d, F), TransB: true})
		post.add(ClassOther, b.addNormFwd(rc.norm(r, 2*l+2), r.xs[2*l+1], r.proj, P, r.xs[2*l+2], r.hs[2*l+2], r.rstd[2*l+2]))
	}
	lm := c.LMHeadParam()
	rc.gemm(&r.head, gemm.Spec{C: mat(r.logits, T, model.Vocab), A: mat(r.hs[2*L], T, d), B: rc.param(P, lm, model.Vocab, d), TransB: true})
	r.loss.add(ClassOther, b.xent(T, model.Vocab, T, r.batch, w.step, r.logits, r.rowloss))
	r.loss.add(ClassOther, b.sum("finish_loss", T, false, 0, r.rowloss, w.partials, w.step, w.scalars)...)

	// Backward: the logits now hold dlogits.
	rc.gemm(&r.bwdHead, gemm.Spec{C: rc.param(G, lm, model.Vocab, d), A: mat(r.logits, T, model.Vocab), B: mat(r.hs[2*L], T, d), TransA: true})
	rc.gemm(&r.bwdHead, gemm.Spec{C: mat(r.dh, T, d), A: mat(r.logits, T, model.Vocab), B: rc.param(P, lm, model.Vocab, d)})
	rc.normBack(r, &r.bwdHead, 2*L, false)
	for l := L - 1; l >= 0; l-- {
		post, pre := &r.bwdPost[l], &r.bwdPre[l]
		// MLP: dres is d x'' (read by the products before the norm's
		// backward adds the branch's gradient into it).
		rc.gemm(post, gemm.Spec{C: rc.param(G, lp(l, model.LayerW2), d, F), A: mat(r.dres, T, d), B: mat(r.act[l], T, F), TransA: true})
		rc.gemm(post, gemm.Spec{C: mat(r.dact, T, F), A: mat(r.dres, T, d), B: rc.param(P, lp(l, model.LayerW2), d, F)})
		post.add(ClassOther, b.swigluBwd(T, F, r.gu[l], r.dact, r.dgu))
		rc.gemm(post, gemm.Spec{C: rc.param(G, lp(l, model.LayerW1), 2*F, d), A: mat(r.dgu, T, 2*F), B: mat(r.hs[2*l+1], T, d), TransA: true})
		rc.gemm(post, gemm.Spec{C: mat(r.dh, T, d), A: mat(r.dgu, T, 2*F), B: rc.param(P, lp(l, model.LayerW1), 2*F, d)})
		rc.normBack(r, post, 2*l+1, true)
		// Attention output projection: dres is now d x'.
		rc.gemm(post, gemm.Spec{C: rc.param(G, lp(l, model.LayerWO), d, c.QDim()), A: mat(r.dres, T, d), B: mat(r.o[l], T, c.QDim()), TransA: true})
		rc.gemm(post, gemm.Spec{C: mat(r.do, T, c.QDim()), A: mat(r.dres, T, d), B: rc.param(P, lp(l, model.LayerWO), d, c.QDim())})
		// After attention's backward: RoPE back, QKV products, the norm.
		pre.add(ClassOther, b.ropeBwd(rope, r.batch, w.table, r.dq, r.dk, r.dv, r.dqkv))
		rc.gemm(pre, gemm.Spec{C: rc.param(G, lp(l, model.LayerWQ), qkvW, d), A: mat(r.dqkv, T, qkvW), B: mat(r.hs[2*l], T, d), TransA: true})
		rc.gemm(pre, gemm.Spec{C: mat(r.dh, T, d), A: mat(r.dqkv, T, qkvW), B: rc.param(P, lp(l, model.LayerWQ), qkvW, d)})
		rc.normBack(r, pre, 2*l, true)
	}
	r.embedBwd.add(ClassOther, b.embedBwd(T, d, w.layout.offsets[model.TokEmb], model.Vocab, r.index, r.dres, G))
	if rc.err != nil {
		return rc.err
	}
	return b.err
}

// normBack records the backward of the norm of residual state k: its
// input gradient into dres (added, or stored for the final norm) and its
// weight's gradient.
func (rc *recorder) normBack(r *rank, seg *segment, k int, accumulate bool) {
	s := rc.norm(r, k)
	seg.add(ClassOther, rc.b.normBwd(s, accumulate, r.xs[k], rc.w.params, r.rstd[k], r.dh, r.dres))
	seg.add(ClassOther, rc.b.normDW(s, r.xs[k], r.rstd[k], r.dh, r.part, rc.w.grads)...)
}
