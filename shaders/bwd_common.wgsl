// The attention backward over a fused varlen batch, FlashAttention-2 style.
// The generator (bwd.go) builds one module per kernel: this file, then the
// kernel's own file (and, for the three tiled kernels, bwd_tiled.wgsl and
// fetch.wgsl), after the dtype prelude and the constants of the tiling,
// which bwd.go documents. The kernels, in the order a backward runs them:
//
//   bound_main    bwd_bound.wgsl      (fused dQ) max |K| and max ‖V_j‖
//   delta_main    bwd_delta.wgsl      Delta_i = rowsum(dO_i ∘ O_i) for every
//                                     query row and head, and (fused dQ)
//                                     the row's fixed-point scale
//   widen_main    bwd_widen.wgsl      (stored dS) K as f32 for dqs_main
//   dq_main       bwd_dq.wgsl         query-block-major dQ = scale · dS K,
//                                     recomputing S and dP
//   dkv_main      bwd_dkv.wgsl        key-block-major dV = Pᵀ dO and
//                                     dK = scale · dSᵀ Q; with FUSED_DQ also
//                                     dQ, with STORED_DS also the dS tiles
//   dqs_main      bwd_dq_stored.wgsl  dQ = scale · dS K from stored dS tiles
//   dq_cast_main  bwd_dq_cast.wgsl    (fused dQ) dQ from its fixed-point sum
//
// P is recomputed from Q, K and the forward's LSE, P = exp(scale·q·k − LSE),
// and dS = P ∘ (dP − Delta) with dP = dO Vᵀ; S, P and dS live only in
// registers and workgroup memory, and arithmetic, LSE and Delta are f32.
// WGSL has no float atomics, so dQ is computed in one of three ways: by
// dq_main, which recomputes S and dP so that every element has one writer;
// fused into dkv_main (FUSED_DQ), which adds each step's dS K into a
// fixed-point accumulator with integer atomics; or from the dS tiles that
// dkv_main stores (STORED_DS), which dqs_main multiplies by K.
//
// Fixed-point dQ. Each element of dQ is the sum of one term per key block
// of its segment; a term x (in units of 2^-e, e per query row and head) is
// added as hi = round(x), an i32 word of its own, and lo = round((x - hi)
// 2^L), a signed 16-bit field of an i32 word that two elements share (see
// lo_word): hi words first in dq_acc, then the lo words. Integer sums do
// not depend on the order of the additions, so dQ is the same bits on
// every run. delta_main picks 2^e from a bound on the row's dQ,
// |dQ_id| <= scale · max|K| · (‖dO_i‖ · max‖V_j‖ + |Delta_i|) (dS_ij =
// P_ij (dP_ij - Delta_i) and the P_ij sum to 1), so that the hi sum stays
// below 2^29; the host picks L from the segments' key blocks so that each
// lo field's sum stays within 2^15, and so carries into its word exactly
// for dq_cast_main to take apart. A term loses at most 2^-(L+1) units.
// A term that is not finite (NaN or infinite inputs) adds 0 and sets the
// element's bit among the flags that follow the lo words (flag_word);
// dq_cast_main stores flagged elements as NaN. bound_main leaves such
// inputs out of its maxima, so that they do not spoil the scale of rows
// they never reach.
//
// P is exp2(S·scale·log2e − LSE·log2e): a row's LSE is +Inf where it sees
// no key, and rows past the segment take +Inf, so that their P is 0; NaN
// where its scores were, so that its P, dS and gradients are NaN. Masked
// pairs get P = 0 and dS = 0 exactly, whatever NaN or Inf their S or dP
// hold.

// The launch parameters, mirrored and documented by shaders.BwdParams (params.go).
struct Params {
	hq: u32,
	group: u32,
	total_q: u32,
	causal: u32,
	batch: u32,
	hkv: u32,
	n_rows: u32,
	delta_grid_x: u32,
	dq_tiles: u32,
	dq_grid_y: u32,
	dq_off: u32,
	scale_log2: f32,
	kv_tiles: u32,
	kv_grid_y: u32,
	kv_off: u32,
	scale: f32,
	kv_rows: u32,
	bound_grid_x: u32,
	lo_scale: f32,
	lo_inv: f32,
	hk0: u32,
	ds_tiles: u32,
	ds_block_off: u32,
	ds_tile_off: u32,
	wide_grid_x: u32,
	_pad0: u32,
	_pad1: u32,
	_pad2: u32,
}

@group(0) @binding(0) var<uniform> P: Params;

// lo_word is the word of dq_acc that holds the lo field of column col of
// (row, head) pair rh: column col = t + TX m shares it with column col + TX
// (m even, low field) or col - TX (m odd, high field), so that the threads
// of a row in dkv_main (t = tx) add into consecutive words. The lo words
// follow the hi words (n_rows D of them), D/2 per pair.
fn lo_word(rh: u32, col: u32) -> u32 {
	return P.n_rows * D + rh * (D / 2u) + col % TX + TX * (col / TX / 2u);
}

// flag_word is the word of dq_acc whose bit col % 32 flags column col of
// (row, head) pair rh as not finite: ceil(D/32) words per pair, after the
// lo words from a multiple of 4 words on (dq_cast_main reads vec4s).
fn flag_word(rh: u32, col: u32) -> u32 {
	return ((P.n_rows * D + P.n_rows * (D / 2u) + 3u) & ~3u) + rh * ((D + 31u) / 32u) + col / 32u;
}

// finite4 tells which lanes of x are finite, by their bits (a compiler
// may assume that float comparisons never see NaN or Inf).
fn finite4(x: vec4<f32>) -> vec4<bool> {
	return (bitcast<vec4<u32>>(x) & vec4<u32>(0x7f800000u)) != vec4<u32>(0x7f800000u);
}
