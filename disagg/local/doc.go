// Package local serves core attention on the wgpu devices of this process:
// [Server] adapts the GPU operator of package attention/gpu to the
// attention-server contract of package disagg/server, and [OpenPool] opens a
// pool (package disagg/pool) of such servers over the local adapters. It is
// the one part of the disaggregation packages that links the GPU runtime.
package local
