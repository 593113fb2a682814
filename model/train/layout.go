package train

import "github.com/coreattn/coreattn/model"

// align is the element alignment of each group of parameters in the flat
// buffers (256 bytes).
const align = 64

// paramLayout places every parameter in the flat device buffers of the
// parameters, gradients and moments, which share it. The weight-decayed
// tensors come first (so AdamW needs one boundary, decayEnd), and the
// projections a layer multiplies by together are adjacent: wq, wk, wv form
// one [Hq·Dh + 2·Hkv·Dh, d] matrix, w1 and w3 one [2F, d] matrix.
type paramLayout struct {
	offsets  []int // by canonical index
	total    int   // elements, padding included
	decayEnd int   // the first element that takes no weight decay
}

func newParamLayout(c model.Config) paramLayout {
	ps := c.Params()
	l := paramLayout{offsets: make([]int, len(ps))}
	next := 0
	// group places the tensors, in order, back to back from the next
	// aligned offset.
	group := func(idx ...int) {
		next = ceilDiv(next, align) * align
		for _, i := range idx {
			l.offsets[i] = next
			next += ps[i].Size()
		}
	}
	group(model.TokEmb)
	for layer := range c.Layers {
		p := func(which int) int { return c.LayerParam(layer, which) }
		group(p(model.LayerWQ), p(model.LayerWK), p(model.LayerWV))
		group(p(model.LayerWO))
		group(p(model.LayerW1), p(model.LayerW3))
		group(p(model.LayerW2))
	}
	group(c.LMHeadParam())
	l.decayEnd = ceilDiv(next, align) * align
	for layer := range c.Layers {
		group(c.LayerParam(layer, model.LayerAttnNorm))
		group(c.LayerParam(layer, model.LayerMLPNorm))
	}
	group(c.NormParam())
	l.total = ceilDiv(next, align) * align
	return l
}

// flatten copies tensors (canonical order) into a flat vector.
func (l paramLayout) flatten(tensors [][]float32) []float32 {
	flat := make([]float32, l.total)
	for i, t := range tensors {
		copy(flat[l.offsets[i]:], t)
	}
	return flat
}

// split copies a flat vector back into tensors shaped as c's parameters.
func (l paramLayout) split(c model.Config, flat []float32) [][]float32 {
	ps := c.Params()
	out := make([][]float32, len(ps))
	for i, p := range ps {
		out[i] = append([]float32(nil), flat[l.offsets[i]:l.offsets[i]+p.Size()]...)
	}
	return out
}
