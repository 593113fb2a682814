package shaders

import _ "embed"

// TCCastSource is the WGSL of the f32 -> f16 conversion pass (entry point
// TCCastEntry, TCCastWorkgroup invocations, one vec4 each) that gives the
// tensor-core kernels f16 copies of f32 operands.
//
//go:embed tc_cast.wgsl
var TCCastSource string

// The cast pass's entry point and workgroup size.
const (
	TCCastEntry     = "cast_main"
	TCCastWorkgroup = 256
)
