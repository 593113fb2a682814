package attention

import (
	"fmt"
	"math"

	"github.com/x448/float16"

	"github.com/coreattn/coreattn/shaders"
)

// DType is the storage type of the attention tensors on the device. The
// kernels always compute in float32; half types halve the bytes moved.
type DType = shaders.DType

// The storage types.
const (
	Float32  = shaders.Float32
	Float16  = shaders.Float16
	BFloat16 = shaders.BFloat16
)

// ParseDType reads f32/float32, f16/float16 or bf16/bfloat16.
func ParseDType(s string) (DType, error) {
	t, err := shaders.ParseDType(s)
	if err != nil {
		return t, fmt.Errorf("attention: %w", err)
	}
	return t, nil
}

// Encode converts x to the storage of dtype t, as the words a device buffer
// holds: float32 bits, or two 16-bit values per word (element 2i in the low
// half), rounded to nearest even. len(x) must be even for the half types.
func Encode(t DType, x []float32) []uint32 {
	if t == Float32 {
		w := make([]uint32, len(x))
		for i, f := range x {
			w[i] = math.Float32bits(f)
		}
		return w
	}
	w := make([]uint32, (len(x)+1)/2)
	for i, f := range x {
		w[i/2] |= uint32(half(t, f)) << (16 * (i % 2))
	}
	return w
}

// Decode converts n elements of dtype t from device words back to float32.
func Decode(t DType, w []uint32, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		if t == Float32 {
			x[i] = math.Float32frombits(w[i])
			continue
		}
		h := uint16(w[i/2] >> (16 * (i % 2)))
		if t == Float16 {
			x[i] = float16.Frombits(h).Float32()
		} else {
			x[i] = math.Float32frombits(uint32(h) << 16)
		}
	}
	return x
}

// Round returns x as it reads back after a trip through dtype t.
func Round(t DType, x []float32) []float32 { return Decode(t, Encode(t, x), len(x)) }

func half(t DType, f float32) uint16 {
	if t == Float16 {
		return float16.Fromfloat32(f).Bits()
	}
	u := math.Float32bits(f)
	if f != f { // keep NaN a NaN: rounding could carry it into Inf
		return uint16(u>>16) | 0x40
	}
	return uint16((u + 0x7fff + (u>>16)&1) >> 16)
}
