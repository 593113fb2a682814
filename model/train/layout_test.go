package train

import (
	"sort"
	"testing"

	"github.com/coreattn/coreattn/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParamLayout(t *testing.T) {
	for _, name := range model.PresetNames() {
		t.Run(name, func(t *testing.T) {
			c, err := model.Preset(name)
			require.NoError(t, err)
			l := newParamLayout(c)
			ps := c.Params()
			// Tensors do not overlap and fit.
			idx := make([]int, len(ps))
			for i := range idx {
				idx[i] = i
			}
			sort.Slice(idx, func(a, b int) bool { return l.offsets[idx[a]] < l.offsets[idx[b]] })
			end := 0
			for _, i := range idx {
				require.GreaterOrEqual(t, l.offsets[i], end, ps[i].Name)
				end = l.offsets[i] + ps[i].Size()
			}
			require.LessOrEqual(t, end, l.total)
			// Decayed tensors before decayEnd, the rest after.
			for i, p := range ps {
				if p.Decay {
					assert.LessOrEqual(t, l.offsets[i]+p.Size(), l.decayEnd, p.Name)
				} else {
					assert.GreaterOrEqual(t, l.offsets[i], l.decayEnd, p.Name)
				}
			}
			// The fused projections are adjacent.
			for layer := range c.Layers {
				off := func(w int) int { return l.offsets[c.LayerParam(layer, w)] }
				assert.Equal(t, off(model.LayerWQ)+c.QDim()*c.Dim, off(model.LayerWK))
				assert.Equal(t, off(model.LayerWK)+c.KVDim()*c.Dim, off(model.LayerWV))
				assert.Equal(t, off(model.LayerW1)+c.FFN*c.Dim, off(model.LayerW3))
				assert.Zero(t, off(model.LayerWQ)%align)
			}
			if name == "tiny" {
				w, err := model.Init(c, 1)
				require.NoError(t, err)
				assert.Equal(t, w.Tensors, l.split(c, l.flatten(w.Tensors)))
			}
		})
	}
}
