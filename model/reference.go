package model

import "fmt"

// Reference is the whole model in float64 on the CPU, for tests: its
// weights W are float64 copies in canonical order (tests perturb them for
// finite differences).
type Reference struct {
	Config Config
	W      [][]float64
}

// NewReference converts w to float64.
func NewReference(w *Weights) (*Reference, error) {
	if err := w.Config.Validate(); err != nil {
		return nil, err
	}
	ps := w.Config.Params()
	if len(w.Tensors) != len(ps) {
		return nil, fmt.Errorf("model: weights hold %d tensors, the config has %d", len(w.Tensors), len(ps))
	}
	r := &Reference{Config: w.Config, W: make([][]float64, len(ps))}
	for i, t := range w.Tensors {
		if len(t) != ps[i].Size() {
			return nil, fmt.Errorf("model: %s holds %d values, want %d (shape %v)", ps[i].Name, len(t), ps[i].Size(), ps[i].Shape)
		}
		r.W[i] = make([]float64, len(t))
		for j, v := range t {
			r.W[i][j] = float64(v)
		}
	}
	return r, nil
}

// pass holds what the forward keeps for the backward.
type pass struct {
	b       Batch
	pos     []int32
	xs      [][]float64 // 2L+1 residual states [T, d]: layer l reads xs[2l], its attention writes xs[2l+1], its MLP xs[2l+2]
	rstd    [][]float64 // rstd of the norm applied to each xs[k]
	hs      [][]float64 // the normed xs[k] [T, d]
	q, k, v [][]float64 // per layer, after RoPE
	o       [][]float64 // per layer, attention output [T, Hq*Dh]
	gate    [][]float64 // per layer [T, F]
	up      [][]float64
	act     [][]float64 // silu(gate)*up
	logits  []float64
	dlogits []float64
	loss    float64
}

// normWeight is the canonical index of the norm applied to xs[k].
func (c Config) normWeight(k int) int {
	switch {
	case k == 2*c.Layers:
		return c.NormParam()
	case k%2 == 0:
		return c.LayerParam(k/2, LayerAttnNorm)
	default:
		return c.LayerParam(k/2, LayerMLPNorm)
	}
}

func (r *Reference) forward(b Batch) (*pass, error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	c, w := r.Config, r.W
	T, d := len(b.Tokens), c.Dim
	p := &pass{b: b, pos: b.Positions()}
	x := make([]float64, T*d)
	for t, tok := range b.Tokens {
		copy(x[t*d:(t+1)*d], w[TokEmb][int(tok)*d:])
	}
	norm := func(k int) []float64 {
		h, s := RMSNormForward(p.xs[k], w[c.normWeight(k)], d, c.NormEps)
		p.rstd, p.hs = append(p.rstd, s), append(p.hs, h)
		return h
	}
	add := func(x, y []float64) []float64 {
		z := make([]float64, len(x))
		for i := range x {
			z[i] = x[i] + y[i]
		}
		return z
	}
	p.xs = append(p.xs, x)
	for l := range c.Layers {
		lw := func(which int) []float64 { return w[c.LayerParam(l, which)] }
		h := norm(2 * l)
		q := RopeForward(MatMulT(h, lw(LayerWQ), d, c.QDim()), p.pos, c.HeadsQ, c.HeadDim, c.RopeTheta)
		k := RopeForward(MatMulT(h, lw(LayerWK), d, c.KVDim()), p.pos, c.HeadsKV, c.HeadDim, c.RopeTheta)
		v := MatMulT(h, lw(LayerWV), d, c.KVDim())
		o := AttentionForward(q, k, v, b.CuSeqlens, c.HeadsQ, c.HeadsKV, c.HeadDim)
		p.q, p.k, p.v, p.o = append(p.q, q), append(p.k, k), append(p.v, v), append(p.o, o)
		p.xs = append(p.xs, add(p.xs[2*l], MatMulT(o, lw(LayerWO), c.QDim(), d)))
		h = norm(2*l + 1)
		gate, up := MatMulT(h, lw(LayerW1), d, c.FFN), MatMulT(h, lw(LayerW3), d, c.FFN)
		act := SwiGLUForward(gate, up)
		p.gate, p.up, p.act = append(p.gate, gate), append(p.up, up), append(p.act, act)
		p.xs = append(p.xs, add(p.xs[2*l+1], MatMulT(act, lw(LayerW2), c.FFN, d)))
	}
	h := norm(2 * c.Layers)
	p.logits = MatMulT(h, w[c.LMHeadParam()], d, Vocab)
	p.loss, p.dlogits = CrossEntropy(p.logits, b.Targets(), Vocab)
	return p, nil
}

// Loss is the mean next-byte cross-entropy (natural log) of b.
func (r *Reference) Loss(b Batch) (float64, error) {
	p, err := r.forward(b)
	if err != nil {
		return 0, err
	}
	return p.loss, nil
}

// Logits returns the logits of every row of b, [len(b.Tokens), Vocab].
func (r *Reference) Logits(b Batch) ([]float64, error) {
	p, err := r.forward(b)
	if err != nil {
		return nil, err
	}
	return p.logits, nil
}

// Gradients returns the loss of b and its gradient with respect to every
// parameter, in canonical order.
func (r *Reference) Gradients(b Batch) (loss float64, grads [][]float64, err error) {
	p, err := r.forward(b)
	if err != nil {
		return 0, nil, err
	}
	c, w := r.Config, r.W
	d := c.Dim
	grads = make([][]float64, len(w))
	// normBack adds the gradient through the norm of xs[k] to dres.
	normBack := func(k int, dh, dres []float64) {
		dx, dw := RMSNormBackward(p.xs[k], w[c.normWeight(k)], p.rstd[k], dh, d)
		grads[c.normWeight(k)] = dw
		for i := range dres {
			dres[i] += dx[i]
		}
	}
	dh, gl := MatMulTBackward(p.hs[2*c.Layers], w[c.LMHeadParam()], p.dlogits, d, Vocab)
	grads[c.LMHeadParam()] = gl
	dres := make([]float64, len(dh))
	normBack(2*c.Layers, dh, dres)
	for l := c.Layers - 1; l >= 0; l-- {
		lw := func(which int) []float64 { return w[c.LayerParam(l, which)] }
		set := func(which int, g []float64) { grads[c.LayerParam(l, which)] = g }
		// MLP: xs[2l+2] = xs[2l+1] + act W2ᵀ.
		dact, g2 := MatMulTBackward(p.act[l], lw(LayerW2), dres, c.FFN, d)
		set(LayerW2, g2)
		dgate, dup := SwiGLUBackward(p.gate[l], p.up[l], dact)
		h := p.hs[2*l+1]
		dh1, g1 := MatMulTBackward(h, lw(LayerW1), dgate, d, c.FFN)
		dh3, g3 := MatMulTBackward(h, lw(LayerW3), dup, d, c.FFN)
		set(LayerW1, g1)
		set(LayerW3, g3)
		normBack(2*l+1, addTo(dh1, dh3), dres)
		// Attention: xs[2l+1] = xs[2l] + o Woᵀ.
		do, gO := MatMulTBackward(p.o[l], lw(LayerWO), dres, c.QDim(), d)
		set(LayerWO, gO)
		dq, dk, dv := AttentionBackward(p.q[l], p.k[l], p.v[l], do, p.b.CuSeqlens, c.HeadsQ, c.HeadsKV, c.HeadDim)
		dq = RopeBackward(dq, p.pos, c.HeadsQ, c.HeadDim, c.RopeTheta)
		dk = RopeBackward(dk, p.pos, c.HeadsKV, c.HeadDim, c.RopeTheta)
		h = p.hs[2*l]
		dhq, gq := MatMulTBackward(h, lw(LayerWQ), dq, d, c.QDim())
		dhk, gk := MatMulTBackward(h, lw(LayerWK), dk, d, c.KVDim())
		dhv, gv := MatMulTBackward(h, lw(LayerWV), dv, d, c.KVDim())
		set(LayerWQ, gq)
		set(LayerWK, gk)
		set(LayerWV, gv)
		normBack(2*l, addTo(addTo(dhq, dhk), dhv), dres)
	}
	ge := make([]float64, len(w[TokEmb]))
	for t, tok := range p.b.Tokens {
		row := ge[int(tok)*d : (int(tok)+1)*d]
		for i := range row {
			row[i] += dres[t*d+i]
		}
	}
	grads[TokEmb] = ge
	return p.loss, grads, nil
}

// addTo adds y into x and returns x.
func addTo(x, y []float64) []float64 {
	for i := range x {
		x[i] += y[i]
	}
	return x
}
