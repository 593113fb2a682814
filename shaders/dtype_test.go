package shaders

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLoadVecs pins when operand fetches read 16 bytes of halves (8 values)
// a load: head dimension and chunk both multiples of 8; f32 reads one vec4
// (16 bytes) a load always. The generated WGSL declares the load type.
func TestLoadVecs(t *testing.T) {
	cases := []struct {
		dt    DType
		d, kc int
		vw    int
		ldv   string
	}{
		{Float32, 128, 32, 1, "alias LDV = IOV;"},
		{Float16, 128, 32, 2, "alias LDV = vec4<u32>;"},
		{BFloat16, 64, 16, 2, "alias LDV = vec4<u32>;"},
		{Float16, 20, 16, 1, "alias LDV = IOV;"},  // D not a multiple of 8
		{BFloat16, 128, 4, 1, "alias LDV = IOV;"}, // chunk of 4 values
	}
	for _, c := range cases {
		require.Equal(t, c.vw, c.dt.loadVecs(c.d, c.kc), "%s D%d KC%d", c.dt, c.d, c.kc)
		f := FwdTiling{D: c.d, TX: 8, TY: 8, KC: c.kc, VC: 16, DType: c.dt}
		b := BwdTiling{Kernel: BwdDKV, D: c.d, TX: 8, TY: 8, KC: c.kc, VC: 16, DType: c.dt}
		for _, src := range []func() (string, error){f.Source, b.Source} {
			s, err := src()
			require.NoError(t, err)
			require.True(t, strings.Contains(s, c.ldv), "%s D%d KC%d: want %q", c.dt, c.d, c.kc, c.ldv)
		}
	}
}
