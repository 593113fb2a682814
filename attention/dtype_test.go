package attention

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEncodeDecode(t *testing.T) {
	tests := []struct {
		dt   DType
		in   []float32
		want []float32
	}{
		{Float32, []float32{1.5, -2, 3e-30, 0}, []float32{1.5, -2, 3e-30, 0}},
		{Float16, []float32{1, -2.5, 65504, 1e-8}, []float32{1, -2.5, 65504, 0}},
		{Float16, []float32{1 + 1.0/4096, 70000}, []float32{1, float32(math.Inf(1))}}, // ties to even; overflow
		{BFloat16, []float32{1, -3.0, 1 + 1.0/256, 1 + 3.0/256}, []float32{1, -3, 1, 1 + 4.0/256}},
	}
	for _, tt := range tests {
		t.Run(tt.dt.String(), func(t *testing.T) {
			w := Encode(tt.dt, tt.in)
			assert.Len(t, w, len(tt.in)*tt.dt.Size()/4)
			assert.Equal(t, tt.want, Decode(tt.dt, w, len(tt.in)))
		})
	}
	nan := Round(BFloat16, []float32{float32(math.NaN()), 0})
	assert.True(t, math.IsNaN(float64(nan[0])), "bfloat16 keeps NaN")
}

func TestParseDType(t *testing.T) {
	for s, want := range map[string]DType{"f32": Float32, "float16": Float16, "BF16": BFloat16, "half": Float16} {
		got, err := ParseDType(s)
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	_, err := ParseDType("int8")
	require.ErrorContains(t, err, `"int8"`)
	require.ErrorContains(t, (&Args{CuSeqlensQ: []int32{0, 1}, CuSeqlensK: []int32{0, 1}, NumHeadsQ: 1, NumHeadsKV: 1, HeadDim: 4, DType: 7}).Validate(), "dtype 7")
}

// TestForwardHalfStorage runs the forward with f16 and bf16 storage on a few
// cases of the table: within 1e-2 relative of the float32 reference on the
// unrounded inputs, LSE within 1e-2 absolute. D 4 reads 8 bytes a load,
// the others 16 (see shaders' loadVecs).
