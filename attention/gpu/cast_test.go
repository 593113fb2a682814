package gpu

import (
	"context"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/shaders"
	"github.com/coreattn/coreattn/wgpu"
)

// TestBF16RoundingMatchesHost stores float32 values as bfloat16 on the device,
// with the rounding the kernels' outputs use, and compares the bits with the
// host codec's (attention.Encode): NaNs whose rounding would carry into Inf
// or across the sign, infinities, the largest finite values and those that
// round to Inf, subnormals, zeros and ties.
func TestBF16RoundingMatchesHost(t *testing.T) {
	bits := []uint32{
		0x7fc00000, 0xffc00000, // quiet NaNs
		0x7f800001, 0xff800001, // signalling NaNs: rounding gives ±Inf
		0x7fffffff, 0xffffffff, // rounding carries into the sign, or wraps to +0
		0x7fbfffff, 0x7f80ffff, 0x7fff8000, 0xffa5a5a5, // payloads
		0x7f800000, 0xff800000, // ±Inf
		0x7f7fffff, 0xff7fffff, // the largest finite values: round to ±Inf
		0x7f7f7fff, 0x7f7f8000, 0x7f7e8000, // below a tie, ties to even (up, down)
		0x00000001, 0x80000001, 0x00008000, 0x00018000, 0x007fffff, // subnormals
		0x00000000, 0x80000000, // ±0
		0x3f808000, 0x3f818000, 0x3f80ffff, 0xbf808001, // ties and near-ties at 1
	}
	x := make([]float32, (len(bits)+3)/4*4)
	for i, b := range bits {
		x[i] = math.Float32frombits(b)
	}
	want := attention.Encode(attention.BFloat16, x)

	dev := testOp(t).Device()
	src, err := shaders.CastSource(shaders.BFloat16)
	require.NoError(t, err)
	p, err := dev.Pipeline("cast bf16", src, shaders.CastEntry)
	require.NoError(t, err)
	in := upload(t, dev, "x", x)
	out, err := dev.NewBuffer("x as bf16", uint64(4*len(want)))
	require.NoError(t, err)
	t.Cleanup(out.Release)
	ctx := context.Background()
	_, err = dev.Run(ctx, wgpu.Dispatch{Label: "cast", Pipeline: p, Buffers: []*wgpu.Buffer{in, out}, Workgroups: [3]uint32{1, 1, 1}})
	require.NoError(t, err)
	got := make([]uint32, len(want))
	require.NoError(t, wgpu.Download(ctx, out, got))
	for i, b := range bits {
		g, w := uint16(got[i/2]>>(16*(i%2))), uint16(want[i/2]>>(16*(i%2)))
		require.Equal(t, w, g, "%#08x: device %#04x, host %#04x", b, g, w)
	}
	nan := attention.Decode(attention.BFloat16, got, len(bits))
	for i := range 10 {
		require.True(t, math.IsNaN(float64(nan[i])), "%#08x stays a NaN", bits[i])
	}
}
