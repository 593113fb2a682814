package gpu

import (
	"testing"

	"github.com/coreattn/coreattn/wgpu/wgputest"
)

// TestMain runs the suite on go-webgpu, then, where Dawn runs (see
// package wgputest), the key cases and the tensor-core tests over Dawn:
// the whole suite on lavapipe takes minutes per runtime.
func TestMain(m *testing.M) {
	wgputest.Main(m, "TestRuntimeKeyCases|TestTensorCore|TestKernelsOption|TestKernelsCompile$")
}
