package wgpu_test

import (
	"testing"

	"github.com/coreattn/coreattn/wgpu/wgputest"
)

// TestMain runs every test on go-webgpu, then over Dawn where it can run.
func TestMain(m *testing.M) { wgputest.Main(m, "") }
