package disagg

import (
	"bytes"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBilinear(t *testing.T) {
	xs := []float64{0, 1, 3}
	ys := []float64{10, 20}
	// z = 2x + 0.1y + 1 is linear, so bilinear interpolation is exact inside.
	z := [][]float64{{2, 3}, {4, 5}, {8, 9}}
	cases := []struct {
		name string
		x, y float64
		want float64
	}{
		{"grid node", 1, 10, 4},
		{"last node", 3, 20, 9},
		{"cell centre", 0.5, 15, 3.5},
		{"second cell", 2, 12.5, 6.25},
		{"on x edge between y", 0, 17.5, 2.75},
		{"below x clamps", -5, 10, 2},
		{"above x clamps", 10, 20, 9},
		{"below y clamps", 1, 0, 4},
		{"above y clamps", 2, 99, 7},
		{"both outside", -1, 99, 3},
		{"NaN clamps low", math.NaN(), 10, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.InDelta(t, c.want, bilinear(xs, ys, z, c.x, c.y), 1e-12)
		})
	}
	t.Run("single point axes", func(t *testing.T) {
		assert.Equal(t, 7.0, bilinear([]float64{1}, []float64{2}, [][]float64{{7}}, 5, -3))
	})
	t.Run("bilinear not just linear", func(t *testing.T) {
		// z = x·y on the unit square: the centre interpolates to 0.25.
		got := bilinear([]float64{0, 1}, []float64{0, 1}, [][]float64{{0, 0}, {0, 1}}, 0.5, 0.5)
		assert.InDelta(t, 0.25, got, 1e-12)
	})
}

func TestFLOPModel(t *testing.T) {
	m := Llama8B
	f, err := NewFLOPModel(m, 1e12)
	require.NoError(t, err)
	pairs := float64(CausalPairs(128, 1024))
	cases := []struct {
		pass Pass
		per  float64
	}{
		{PassForward, 4 * 128 * 32},
		{PassBackward, 10 * 128 * 32},
		{PassTraining, 14 * 128 * 32},
	}
	for _, c := range cases {
		t.Run(c.pass.String(), func(t *testing.T) {
			assert.InEpsilon(t, pairs*c.per/1e12, f.TaskTime(128, 1024, c.pass), 1e-12)
		})
	}
	assert.Zero(t, f.TaskTime(0, 100, PassTraining))
	for _, bad := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		_, err := NewFLOPModel(m, bad)
		assert.Error(t, err, "throughput %g", bad)
	}
	_, err = NewFLOPModel(Arch{Name: "bad"}, 1e12)
	assert.ErrorContains(t, err, "heads_q")
}

// testProfile is measured-looking data: time = pairs·4·D·H / rate, where the
// rate grows with q_len (small shards run less efficiently).
func testProfile() *Profile {
	p := &Profile{Version: ProfileVersion, HeadsQ: 32, HeadsKV: 8, HeadDim: 128,
		QLens: []int{128, 1024, 8192}, KVLens: []int{1024, 8192, 65536}}
	rate := map[int]float64{128: 1e14, 1024: 2e14, 8192: 3e14}
	grid := func(scale float64) [][]float64 {
		g := make([][]float64, len(p.QLens))
		for i, q := range p.QLens {
			g[i] = make([]float64, len(p.KVLens))
			for j, k := range p.KVLens {
				if q <= k {
					g[i][j] = scale * float64(CausalPairs(q, k)) * 4 * 128 * 32 / rate[q]
				}
			}
		}
		return g
	}
	p.Forward = grid(1)
	p.Backward = grid(3)
	return p
}

func TestProfileCostModel(t *testing.T) {
	p := testProfile()
	cm, err := p.CostModel(Llama8B)
	require.NoError(t, err)
	fwd := func(q, k int, rate float64) float64 { return float64(CausalPairs(q, k)) * 4 * 128 * 32 / rate }
	cases := []struct {
		name string
		q, k int
		want float64
	}{
		{"grid node", 1024, 8192, fwd(1024, 8192, 2e14)},
		{"q beyond the grid keeps edge efficiency", 16384, 65536, fwd(16384, 65536, 3e14)},
		{"k beyond the grid scales with FLOPs", 128, 1 << 20, fwd(128, 1<<20, 1e14)},
		{"q below the grid", 16, 1024, fwd(16, 1024, 1e14)},
		// log2(q) halfway between 128 and 1024: efficiency halfway between.
		{"between nodes", 362, 8192, float64(CausalPairs(362, 8192)) * 4 * 128 * 32 * (0.5/1e14 + 0.5/2e14)},
		// q = 8192 > k = 1024 is not measurable: that cell takes the
		// efficiency of q = 1024 in the same column.
		{"unmeasurable cell", 1024, 1024, fwd(1024, 1024, 2e14)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.InEpsilon(t, c.want, cm.TaskTime(c.q, c.k, PassForward), 1e-2)
			assert.InEpsilon(t, 3*cm.TaskTime(c.q, c.k, PassForward), cm.TaskTime(c.q, c.k, PassBackward), 1e-9)
			assert.InEpsilon(t, 4*cm.TaskTime(c.q, c.k, PassForward), cm.TaskTime(c.q, c.k, PassTraining), 1e-9)
		})
	}
	assert.Zero(t, cm.TaskTime(0, 1024, PassTraining))

	t.Run("backward defaults to the FLOP ratio", func(t *testing.T) {
		p := testProfile()
		p.Backward = nil
		cm, err := p.CostModel(Llama8B)
		require.NoError(t, err)
		assert.InEpsilon(t, BackwardFLOPFactor*cm.TaskTime(500, 3000, PassForward), cm.TaskTime(500, 3000, PassBackward), 1e-12)
	})
	t.Run("head shapes scale time", func(t *testing.T) {
		cm34, err := p.CostModel(Llama34B) // 64 heads against the profile's 32
		require.NoError(t, err)
		assert.InEpsilon(t, 2*cm.TaskTime(500, 3000, PassTraining), cm34.TaskTime(500, 3000, PassTraining), 1e-12)
	})
}

func TestProfileSaveLoad(t *testing.T) {
	p := testProfile()
	p.Adapter = "test adapter"
	path := filepath.Join(t.TempDir(), "profile.json")
	require.NoError(t, p.Save(path))
	got, err := LoadProfile(path)
	require.NoError(t, err)
	assert.Equal(t, p, got)

	_, err = LoadProfile(filepath.Join(t.TempDir(), "missing.json"))
	assert.ErrorContains(t, err, "missing.json")
	_, err = ReadProfile(strings.NewReader(`{"version": 1, "bogus": 2}`))
	assert.ErrorContains(t, err, "bogus")
	_, err = ReadProfile(strings.NewReader(`not json`))
	assert.ErrorContains(t, err, "decode profile")
}

func TestProfileValidate(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(p *Profile)
		want   string
	}{
		{"version", func(p *Profile) { p.Version = 9 }, "version 9"},
		{"empty axis", func(p *Profile) { p.QLens = nil }, "q_lens is empty"},
		{"descending axis", func(p *Profile) { p.KVLens[2] = 100 }, "kv_lens[2] = 100"},
		{"zero axis", func(p *Profile) { p.QLens[0] = 0 }, "q_lens[0] = 0"},
		{"first column unmeasurable", func(p *Profile) { p.QLens[0] = 2048; p.QLens[1] = 4096 }, "exceeds kv_lens[0]"},
		{"row count", func(p *Profile) { p.Forward = p.Forward[:2] }, "forward_s has 2 rows"},
		{"row length", func(p *Profile) { p.Backward[1] = p.Backward[1][:1] }, "backward_s[1] has 1 entries"},
		{"negative time", func(p *Profile) { p.Forward[0][0] = -1 }, "forward_s[0][0] = -1"},
		{"NaN time", func(p *Profile) { p.Forward[1][2] = math.NaN() }, "forward_s[1][2] = NaN"},
		{"time where q > kv", func(p *Profile) { p.Forward[2][0] = 1 }, "must be 0"},
		{"negative heads", func(p *Profile) { p.HeadsQ = -1 }, "must not be negative"},
		{"extreme time", func(p *Profile) { p.Forward[1][2] = 1e300 }, "forward_s[1][2] = 1e+300"},
		{"vanishing time", func(p *Profile) { p.Backward[0][0] = 1e-300 }, "backward_s[0][0] = 1e-300"},
		{"infinite time", func(p *Profile) { p.Forward[0][1] = math.Inf(1) }, "forward_s[0][1] = +Inf"},
		{"huge axis", func(p *Profile) { p.KVLens = make([]int, MaxProfileAxis+1) }, "more than 1024"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := testProfile()
			c.mutate(p)
			err := p.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			assert.Error(t, p.Write(&bytes.Buffer{}), "Write must refuse an invalid profile")
			_, err = p.CostModel(Llama8B)
			assert.Error(t, err)
		})
	}
	var nilp *Profile
	assert.Error(t, nilp.Validate())
}
