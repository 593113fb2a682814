package attention

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReferenceNonFinite pins the NaN and Inf semantics that the package
// documents and the kernels share: IEEE arithmetic over the keys each
// query sees. One causal segment of 4 queries and keys (query i sees keys
// 0..i), one head, D 4; key 2 (or row 2) is poisoned.
func TestReferenceNonFinite(t *testing.T) {
	a := &Args{CuSeqlensQ: []int32{0, 4}, CuSeqlensK: []int32{0, 4}, NumHeadsQ: 1, NumHeadsKV: 1, HeadDim: 4, Causal: true}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	type want struct {
		oNaN, lseNaN [4]bool // per query row
	}
	for _, tc := range []struct {
		name string
		edit func(in *refInputs)
		want want
	}{
		{"nan in k: the rows that see it", func(in *refInputs) { in.k[2*4+1] = nan }, want{[4]bool{false, false, true, true}, [4]bool{false, false, true, true}}},
		{"+inf score: NaN", func(in *refInputs) { in.q[2*4], in.q[3*4], in.k[2*4] = 1, 1, inf }, want{[4]bool{false, false, true, true}, [4]bool{false, false, true, true}}},
		{"nan in v: O only", func(in *refInputs) { in.v[2*4+3] = nan }, want{[4]bool{false, false, true, true}, [4]bool{}}},
		{"nan in q: its row", func(in *refInputs) { in.q[1*4+2] = nan }, want{[4]bool{false, true, false, false}, [4]bool{false, true, false, false}}},
		{"only -inf scores: NaN", func(in *refInputs) {
			for i := range 4 {
				in.q[i*4] = 1 // every row scores key 0 at -Inf; row 0 sees only it
			}
			in.k[0] = -inf
		}, want{[4]bool{true, false, false, false}, [4]bool{true, false, false, false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := newRefInputs(a, 9)
			tc.edit(&in)
			o, lse, err := ReferenceForward(a, in.q, in.k, in.v)
			require.NoError(t, err)
			for i := range 4 {
				oNaN := false
				for _, x := range o[i*4 : i*4+4] {
					oNaN = oNaN || math.IsNaN(x)
					if !tc.want.oNaN[i] {
						assert.False(t, math.IsInf(x, 0), "o[%d]", i)
					}
				}
				assert.Equal(t, tc.want.oNaN[i], oNaN, "O of row %d", i)
				assert.Equal(t, tc.want.lseNaN[i], math.IsNaN(lse[i]), "LSE of row %d = %v", i, lse[i])
			}
		})
	}

	t.Run("-inf score weighs 0", func(t *testing.T) {
		in := newRefInputs(a, 9)
		in.q[3*4] = 1
		in.k[1*4] = -inf // row 3 scores key 1 at -Inf
		o, lse, err := ReferenceForward(a, in.q, in.k, in.v)
		require.NoError(t, err)
		// Row 3 without key 1: the same as attending keys 0, 2 and 3 only.
		b := &Args{CuSeqlensQ: []int32{0, 1}, CuSeqlensK: []int32{0, 3}, NumHeadsQ: 1, NumHeadsKV: 1, HeadDim: 4}
		k := append(append(append([]float32{}, in.k[0:4]...), in.k[8:12]...), in.k[12:16]...)
		v := append(append(append([]float32{}, in.v[0:4]...), in.v[8:12]...), in.v[12:16]...)
		o3, lse3, err := ReferenceForward(b, in.q[12:16], k, v)
		require.NoError(t, err)
		assert.InDeltaSlice(t, o3, o[12:16], 1e-12)
		assert.InDelta(t, lse3[0], lse[3], 1e-12)
	})

	t.Run("no key: O 0, LSE +Inf", func(t *testing.T) {
		b := &Args{CuSeqlensQ: []int32{0, 2}, CuSeqlensK: []int32{0, 0}, NumHeadsQ: 1, NumHeadsKV: 1, HeadDim: 4}
		o, lse, err := ReferenceForward(b, make([]float32, 8), nil, nil)
		require.NoError(t, err)
		assert.Equal(t, make([]float64, 8), o)
		assert.True(t, math.IsInf(lse[0], 1) && math.IsInf(lse[1], 1), "%v", lse)
	})

	t.Run("nan in dO: its row's dQ, the keys it sees", func(t *testing.T) {
		in := newRefInputs(a, 9)
		in.do[1*4+2] = nan
		dq, dk, dv, err := ReferenceBackward(a, in.q, in.k, in.v, in.do)
		require.NoError(t, err)
		for i := range 4 {
			assert.Equal(t, i == 1, anyNaN(dq[i*4:i*4+4]), "dQ of row %d", i)
			assert.Equal(t, i <= 1, anyNaN(dk[i*4:i*4+4]), "dK of key %d", i)
			assert.Equal(t, i <= 1, anyNaN(dv[i*4:i*4+4]), "dV of key %d", i)
		}
	})
}

func anyNaN(x []float64) bool {
	for _, v := range x {
		if math.IsNaN(v) {
			return true
		}
	}
	return false
}
