// Package wgpu is coreattn's runtime over go-webgpu: it enumerates adapters,
// opens devices with the adapter's own limits, moves typed data to and from
// storage buffers, caches compiled compute pipelines, dispatches work and times
// it with timestamp queries where the adapter has them.
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
// [ReadAt] and the methods of [Device.Transfer] always do.
package wgpu
