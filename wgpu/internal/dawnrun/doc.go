// Package dawnrun runs the tensor-core attention launches of package
// attention/tc on a Dawn device (package wgpu/internal/dawn). It is the
// harness that tests and measures those kernels until wgpu.Device runs
// over Dawn; then the operator of attention/gpu runs the same launches
// through wgpu, and this package shrinks to its tests. Like package dawn,
// it needs Linux and cgo.
package dawnrun
