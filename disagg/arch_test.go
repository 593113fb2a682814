package disagg

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCausalPairs(t *testing.T) {
	brute := func(q, k int) int64 {
		var n int64
		for i := range q {
			for j := range k {
				if j <= i+(k-q) { // bottom-right aligned
					n++
				}
			}
		}
		return n
	}
	for _, c := range [][2]int{{0, 0}, {0, 5}, {1, 1}, {1, 7}, {3, 3}, {3, 10}, {17, 40}, {64, 64}} {
		assert.Equal(t, brute(c[0], c[1]), CausalPairs(c[0], c[1]), "q=%d k=%d", c[0], c[1])
	}
	// A document's query rows [s, e) with their prefix, summed over a
	// partition, give the whole document's pairs.
	assert.Equal(t, CausalPairs(1000, 1000), rangePairs(0, 300)+rangePairs(300, 301)+rangePairs(301, 1000))
}

func TestArchs(t *testing.T) {
	for _, name := range ArchNames() {
		m, err := ArchByName(name)
		require.NoError(t, err)
		assert.Equal(t, name, m.Name)
		assert.NoError(t, m.Validate())
	}
	_, err := ArchByName("gpt-5")
	assert.ErrorContains(t, err, `"gpt-5"`)

	bad := []struct {
		mutate func(*Arch)
		want   string
	}{
		{func(m *Arch) { m.HeadsQ = 0 }, "heads_q"},
		{func(m *Arch) { m.HeadsKV = 3 }, "heads_kv 3"},
		{func(m *Arch) { m.HeadDim = -4 }, "head_dim"},
		{func(m *Arch) { m.Layers = 0 }, "layers"},
		{func(m *Arch) { m.ElemBytes = 0 }, "elem_bytes"},
	}
	for _, b := range bad {
		m := Llama8B
		b.mutate(&m)
		assert.ErrorContains(t, m.Validate(), b.want)
	}
}

func TestRowBytes(t *testing.T) {
	m := Llama8B // Hq 32, Hkv 8, D 128, bf16
	row, stat := int64(32*128*2), int64(32*4)
	cases := []struct {
		pass            Pass
		qIn, qOut       int64
		kvIn, kvOut     int64
		linearPerParams float64
	}{
		{PassForward, row, row + stat, 2 * 8 * 128 * 2, 0, 2},
		{PassBackward, 2*row + 2*stat, row, 2 * 8 * 128 * 2, 2 * 8 * 128 * 2, 4},
		{PassTraining, 3*row + 2*stat, 2*row + stat, 4 * 8 * 128 * 2, 2 * 8 * 128 * 2, 6},
	}
	for _, c := range cases {
		in, out := m.QRowBytes(c.pass)
		assert.Equal(t, c.qIn, in, c.pass.String())
		assert.Equal(t, c.qOut, out, c.pass.String())
		in, out = m.KVRowBytes(c.pass)
		assert.Equal(t, c.kvIn, in, c.pass.String())
		assert.Equal(t, c.kvOut, out, c.pass.String())
		assert.Equal(t, c.linearPerParams*m.Params*1000, m.LinearFLOPs(1000, c.pass))
	}
	assert.Equal(t, "Pass(7)", Pass(7).String())
}
