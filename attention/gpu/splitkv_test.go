package gpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/coreattn/coreattn/attention"
)

// TestForwardSplitKV runs the forward with every block split into pieces
// against the float64 reference, on the cases of the forward's tests.
func TestForwardSplitKV(t *testing.T) {
	dev := testOp(t).Device()
	for _, piece := range []int{64, 128} {
		op := NewWithOptions(dev, Options{SplitKV: piece})
		for i, c := range gpuCases {
			t.Run(fmt.Sprintf("piece%d/%s", piece, c.name), func(t *testing.T) {
				checkForward(t, op, c.args(), rand.New(rand.NewPCG(uint64(i), 0x5b1)), 1e-4)
			})
		}
	}
}

// TestForwardSplitKVHalf checks that split pieces store half-precision O
// through the merge (the partials themselves are float32).
func TestForwardSplitKVHalf(t *testing.T) {
	op := NewWithOptions(testOp(t).Device(), Options{SplitKV: 64})
	for _, dt := range []attention.DType{attention.Float16, attention.BFloat16} {
		t.Run(dt.String(), func(t *testing.T) {
			a := gpuCases[3].args()
			a.DType = dt
			checkForward(t, op, a, rand.New(rand.NewPCG(9, 0x5b1)), 1e-2)
		})
	}
}
