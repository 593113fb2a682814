//go:build !unix

package wgpu

// quietStderr runs f; on this platform driver output is left alone.
func quietStderr(_ bool, f func()) { f() }
