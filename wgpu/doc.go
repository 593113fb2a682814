// Package wgpu is coreattn's WebGPU runtime: it enumerates adapters, opens
// devices with the adapter's own limits, moves typed data to and from
// storage buffers, caches compiled compute pipelines, dispatches work and
// times it with timestamp queries where the adapter has them.
//
// # Runtimes
//
// A [Device] runs over one of two WebGPU implementations, behind one
// internal interface (wgpu/internal/backend):
//
//   - go-webgpu (wgpu-native 0.17, linked into the binary): no setup, and
//     no f16, subgroups or subgroup matrices in WGSL;
//   - Dawn, loaded at run time where scripts/dawn.sh installed it (the
//     binary never requires it): WGSL f16, subgroups and subgroup matrices
//     (Vulkan cooperative matrices: tensor cores) where the adapter has them.
//
// [Options].Runtime (or $COREATTN_RUNTIME; the CLI's --runtime) picks one;
// [RuntimeAuto], the default, uses Dawn for an adapter that Dawn sees and
// offers f16, subgroups or subgroup matrices, and go-webgpu otherwise (always
// where Dawn is absent). Code above this package does not ask which runtime
// it runs on: it asks the adapter's features ([AdapterInfo].F16, Subgroups,
// SubgroupMinSize and SubgroupMaxSize, MatrixConfigs). [AllAdapters] lists
// every adapter under every runtime (`coreattn devices`); [OpenValidator]
// compiles WGSL through Dawn's Null backend without a GPU.
//
// Every failure of the layer below (a WGSL compile error, a validation error,
// a lost device) is returned as an error with context; nothing here panics or
// waits forever.
//
// # Concurrency
//
// A [Device] and everything created from it ([Buffer], [Pipeline]) are safe
// for concurrent use: the device serialises access to its queue with a mutex.
// Work on one device is still executed in submission order, so the intended
// use is one goroutine per device, several devices in parallel (the
// attention-server pool does exactly this). [Adapters] and [Open] may be
// called from any goroutine.
//
// # Host transfers
//
// [Transfer] moves bytes between host memory and buffers through staging
// buffers mapped once and reused, several chunks in flight, the host copy
// of one chunk overlapping the device copy of the next (docs/transfer.md).
// [Upload], [Write] and [Download] use it for large data; [WriteAt],
// [ReadAt] and the methods of [Device.Transfer] always do. That engine
// drives go-webgpu's buffers; on Dawn a Transfer goes through Dawn's own
// queue writes and reads.
package wgpu
