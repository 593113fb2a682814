package gemm

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestShapes pins the benchmark labels that scripts/matmul_anchor.py builds
// alike, and the model's cases.
func TestShapes(t *testing.T) {
	cubes := CubeShapes(4096)
	require.Equal(t, []string{"NN 4096x4096x4096", "NT 4096x4096x4096", "TN 4096x4096x4096"},
		[]string{cubes[0].Label, cubes[1].Label, cubes[2].Label})
	model := ModelShapes(16384)
	require.Len(t, model, 2*6*3)
	require.Equal(t, Shape{Label: "small T16384 wq fwd NT 16384x384x384", M: 16384, N: 384, K: 384, TransB: true}, model[0])
	require.Equal(t, Shape{Label: "base T16384 w1/w3 dw TN 2048x768x16384", M: 2048, N: 768, K: 16384, TransA: true, Accumulate: true}, model[18+3*3+2])
	for _, s := range model {
		require.Contains(t, s.Label, " "+s.Case()+" ")
	}
}
