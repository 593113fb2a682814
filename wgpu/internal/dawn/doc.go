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
// # Use through package wgpu
//
// Package wgpu runs a wgpu.Device over this package through
// wgpu/internal/dawnbackend, beside go-webgpu (wgpu/internal/gowebgpu),
// behind the interface of wgpu/internal/backend; wgpu.Options.Runtime and
// $COREATTN_RUNTIME choose (see package wgpu's documentation for the auto
// rule). Kernels there pick variants by feature query (f16, subgroups,
// subgroup-matrix configurations), never by runtime name.
package dawn
