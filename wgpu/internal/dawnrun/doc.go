// Package dawnrun runs the tensor-core attention launches of package
// attention/tc on a Dawn device (package wgpu/internal/dawn). It is the
// harness that tests and measures those kernels until wgpu.Device runs
// over Dawn; then the operator of attention/gpu runs the same launches
// through wgpu, and this package shrinks to its tests. Like package dawn,
// it needs Linux and cgo.
//
// Its tests need an adapter with f16→f32 subgroup matrices and skip,
// saying why, where Dawn or the matrices are missing; TestCompileNull
// needs only Dawn (its Null backend compiles every chosen tiling).
// BenchmarkTC measures the standard shapes. Flags of the test binary:
//
//	-tc.sweep N         tilings per pass that TestTilings checks and BenchmarkTC
//	                    measures (the first N of the preferred matrix shape and
//	                    the first of every other; 0: all; default 4)
//	-tc.reps, -tc.rounds  runs per timed round (back to back) and rounds (median)
//	-tc.shapes LIST     BenchmarkTC's shapes, e.g. S8192_D128_H32
//	-tc.dtype f16|f32   BenchmarkTC's storage (f32 adds the cast passes)
//	-tc.json FILE       append BenchmarkTC's results as JSON lines
//	-tc.cpu-tilings     run TestTilings on CPU adapters too
//
// See docs/tensorcores.md and scripts/tc-gpu.sh.
package dawnrun
