// Package tc plans varlen attention on tensor cores: the forward and
// backward kernels of package shaders whose matrix products run on
// subgroup matrices (WGSL chromium_experimental_subgroup_matrix; Vulkan
// cooperative matrices) with f16 operands and f32 accumulation, in the
// conventions of package attention (layouts, bottom-right causal mask,
// GQA, LSE).
//
// A [Planner] turns an [attention.Args] into a [Launch]: the passes to
// dispatch, in order, over named buffers. The call's tensors are named as
// in [attention] ("q", "k", "v", "o", "lse"; the backward adds "do",
// "dq", "dk", "dv"); the launch owns the others (parameters, tile tables,
// f16 copies of f32 operands, split-KV partials, dS scratch), which a
// runtime creates from [Buffer], fills and frees. The package knows no
// runtime: the operator of package attention/gpu maps the names to buffers
// of its wgpu.Device and dispatches the passes (Options.Kernels there).
//
// # Storage and numerics
//
// The kernels read f16 operands. f16 tensors ([attention.Float16]) are
// used as they are; f32 tensors are converted on the device by a cast pass
// into f16 copies the launch owns, and the results (O, dQ, dK, dV) are
// written in the call's dtype. bfloat16 is not handled (its range exceeds
// f16's): the planner returns an error wrapping
// [shaders.ErrNoTensorCores], as it does for head dimensions that are not a
// multiple of 8 and adapters without f16→f32 subgroup matrices; callers
// fall back to the FFMA kernels. Scores, the softmax, LSE and every
// accumulation are f32; P and dS are rounded to f16 for the products.
// Nothing uses float atomics: every result has one writer and a fixed
// order of additions, so results are the same bits on every run.
package tc
