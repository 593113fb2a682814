// Package dawngemm runs the subgroup-matrix (tensor-core) kernels of
// package gemm's family (shaders.GemmTiling with MMA set:
// shaders/gemm_sgmat.wgsl) on a Dawn device (package wgpu/internal/dawn),
// until wgpu.Device runs over Dawn and package gemm chooses the engine by
// feature query. It holds only tests and a benchmark, like
// wgpu/internal/dawnrun for the tensor-core attention; it needs Linux and
// cgo.
//
// The tests need an adapter with f16→f32 subgroup matrices (an NVIDIA GPU
// through Dawn, or Mesa 26's lavapipe: see docs/tensorcores.md) and skip,
// saying why, elsewhere. BenchmarkGemm measures the products of
// gemm.CubeShapes and gemm.ModelShapes with GPU timestamps; flags of the
// test binary:
//
//	-gemm.json FILE      append its results as JSON lines (the keys of
//	                     coreattn bench gemm --json; impl coreattn-sgmat-f16)
//	-gemm.shapes LIST    only shapes whose label contains one of these texts
//	-gemm.tokens N       T of the model shapes (default 16384)
//	-gemm.robust         keep Dawn's bounds checks on (off by default for
//	                     measurement; the kernels guard their own edges)
//
// See docs/gemm.md and scripts/gemm-tc-gpu.sh.
package dawngemm
