package gemm

import (
	"testing"

	"github.com/coreattn/coreattn/wgpu/wgputest"
)

// TestMain runs the suite on go-webgpu, then, where Dawn runs (see
// package wgputest), the compile check, the tensor-core hook and one
// product test over Dawn: each new GEMM variant takes lavapipe seconds to
// compile there, and the whole suite would take many minutes.
func TestMain(m *testing.M) {
	wgputest.Main(m, "TestChosenTilingsCompile|TestKernelsTensorCore|TestFusedQKV")
}
