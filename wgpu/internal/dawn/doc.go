// Package dawn is coreattn's second WebGPU runtime: Go over the standard
// webgpu.h C API, with Dawn (the WebGPU implementation inside Chrome) as its
// implementation. Unlike the wgpu-native 0.17 inside go-webgpu, Dawn gives
// WGSL `enable f16;`, `enable subgroups;` and `enable
// chromium_experimental_subgroup_matrix;` (Vulkan cooperative matrices:
// tensor cores).
//
// Dawn is loaded at run time with dlopen: a binary importing this package
// links only libc's dl functions and starts without Dawn. [Open] looks, in
// order, at an explicit path (argument or $COREATTN_DAWN), the install cache
// that scripts/dawn.sh fills ([CacheDir]), and Debian's libwebgpu_dawn.so.0.
// Two forms are understood:
//
//   - a shared library exporting the C API (Debian's libwebgpu-dawn0): the
//     entry points are found with dlsym;
//   - npm webgpu@0.6.2's dawn.node, a Node addon whose C API exists only as
//     local ELF symbols: their offsets are read from .symtab (debug/elf),
//     Dawn's proc table is filled with dawnProcSetProcs(dawn::native::GetProcs()),
//     and its N-API imports are satisfied by stubs exported from the Go binary
//     (napi_linux.go), never called.
//
// One header is compiled against, third_party/dawn/webgpu.h (its README
// gives provenance and the one layout difference from dawn.node, the
// subgroup-matrix config stride).
//
// # Use
//
//	lib, err := dawn.Open("")                          // errors.Is(err, dawn.ErrNotFound): no Dawn
//	in, _ := lib.NewInstance(dawn.InstanceOptions{AllowUnsafeAPIs: true})
//	adapters, _ := in.Adapters(ctx, dawn.AdapterOptions{Backend: dawn.BackendVulkan})
//	dev, _ := adapters[0].NewDevice(ctx, dawn.DeviceOptions{})
//	buf, _ := dev.NewBuffer(ctx, "x", 4096, dawn.UsageStorage|dawn.UsageCopySrc|dawn.UsageCopyDst)
//	mod, _ := dev.ShaderModule(ctx, "k", wgsl)          // *CompileError with line:column on failure
//	pipe, _ := dev.ComputePipeline(ctx, "k", mod, "main", nil)
//	bg, _ := dev.BindGroup(ctx, "k", pipe, []dawn.Binding{{Binding: 0, Buffer: buf}})
//	times, _ := dev.Run(ctx, true, dawn.Pass{Pipeline: pipe, BindGroup: bg, Workgroups: [3]uint32{64, 1, 1}})
//
// Adapters are requested with the toggles NVIDIA needs
// ([DefaultAdapterToggles]); devices get all of the adapter's limits, every
// feature coreattn uses that the adapter has, and unquantised timestamps
// (Dawn resolves them to nanoseconds; webgpu.h has no timestamp period).
// [BackendNull] validates WGSL, subgroup matrices included, without a GPU.
//
// # Safety
//
// Callbacks never enter Go: they fill C records that Go reads after waiting
// (WaitAny with a timeout where the instance allows it, else ProcessEvents
// polling), and a record abandoned by a cancelled context is freed by its
// late callback. C keeps no Go pointers. Every Release is idempotent and
// safe from several goroutines; use after release returns ErrReleased. A
// Device serialises its calls with a mutex and asks Dawn for implicit device
// synchronisation where offered. Errors are values wrapping the sentinels
// of errors.go: match them with errors.Is and errors.As.
//
// # Limits of webgpu.h
//
// webgpu.h cannot enumerate adapters: [Instance.Adapters] asks for Dawn's
// high-performance, low-power and fallback choices, so several identical
// GPUs in one machine show as one adapter. Dawn also refuses Mesa 22.3's
// lavapipe (Debian 12); Mesa 25's works (scripts/dawn.sh --lavapipe fetches
// it for the tests).
//
// # Plan: one wgpu.Device over either runtime
//
// Package wgpu keeps its exported API and gains a small internal interface
// that both runtimes implement (wgpu/internal/backend, say):
//
//	type Runtime interface {
//		Name() string                                  // "go-webgpu", "dawn"
//		Adapters(ctx) ([]AdapterInfo, error)           // with Runtime, F16, Subgroups, SubgroupSize, MatrixConfigs
//		Open(ctx, index int, opts) (Device, error)
//	}
//	type Device interface {
//		Info() AdapterInfo
//		NewBuffer(ctx, label string, size uint64, usage Usage) (Buffer, error)
//		Write(b Buffer, off uint64, data []byte) error
//		Read(ctx, b Buffer, off uint64, dst []byte) error
//		Pipeline(ctx, label, wgsl, entry string, constants map[string]float64) (Pipeline, error)
//		BindGroup(ctx, p Pipeline, bindings []Binding) (BindGroup, error)
//		Run(ctx, timed bool, passes ...Pass) ([]time.Duration, error)
//		Submit(ctx, passes ...Pass) error
//		Wait(ctx) error
//		Err() error                                    // lost device
//		Release()
//	}
//
// with Buffer, Pipeline and BindGroup as opaque handles with Release. The
// go-webgpu code of device.go, buffer.go, pipeline.go, run.go and
// timestamps.go moves behind it unchanged; this package's Device already has
// exactly these methods (Pipeline = ShaderModule + ComputePipeline). wgpu's
// generic Upload/Download/Write stay in wgpu, over Write/Read of bytes; its
// pipeline cache and bind-group reuse stay in wgpu too. The Dawn adapter
// lives in a `//go:build linux && cgo` file; elsewhere the runtime list has
// go-webgpu only. Errors: wgpu.ErrDeviceLost wraps dawn.ErrDeviceLost (both
// match), compile errors surface as today with the *CompileError wrapped.
//
// wgpu.AdapterInfo gains Runtime string, F16, Subgroups bool,
// SubgroupMinSize/MaxSize, MatrixConfigs []MatrixConfig; `coreattn devices`
// lists each adapter once per runtime that sees it:
//
//	[0] NVIDIA H100 (Vulkan, DiscreteGPU)  runtime dawn       f16 subgroups[32..32] subgroup-matrix[16x16x16 f16->f32, ...] timestamps  (default)
//	[1] NVIDIA H100 (Vulkan, DiscreteGPU)  runtime go-webgpu  -
//
// Choosing: wgpu.Options gains Runtime ("auto", "dawn", "go-webgpu"; CLI
// flag --runtime, env COREATTN_RUNTIME). "auto" uses Dawn for an adapter
// that Dawn also sees (matched by vendor ID, device ID and name) when Dawn
// offers f16, subgroups or subgroup matrices there, since those kernels only
// exist on Dawn and its f32 FMA rate is at least go-webgpu's (H100: 64.8 vs
// 58.4 TFLOP/s); go-webgpu otherwise, and always when Dawn is absent (zero
// setup). A named runtime that is missing is a one-line error naming
// scripts/dawn.sh. Kernels pick variants by feature query only (F16,
// Subgroups, MatrixConfigs), never by runtime name.
package dawn
