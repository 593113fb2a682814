// Package attention is the vocabulary of variable-length ("varlen") core
// attention in FlashAttention's conventions: the argument type and its
// validation, FLOP counting, the storage types and their codecs, the
// [Runner] interface that every implementation satisfies, and a float64 CPU
// reference of the forward and backward passes. It is pure Go (no cgo), so
// planners, simulators and remote clients can use it without a GPU runtime;
// package attention/gpu runs the WGSL kernels on a wgpu device, and package
// disagg/pool spreads a batch over many attention servers.
//
// # Layout
//
// A call attends a fused batch of B segments. Tensors are row-major float32:
//
//	Q    [total_q, Hq,  D]
//	K, V [total_k, Hkv, D]
//	O    [total_q, Hq,  D]
//	LSE  [Hq, total_q]
//
// cu_seqlens_q and cu_seqlens_k are int32 offsets of length B+1 starting at
// 0: segment b is rows cu_seqlens_q[b]..cu_seqlens_q[b+1] of Q attending rows
// cu_seqlens_k[b]..cu_seqlens_k[b+1] of K and V. Segments with no queries are
// allowed.
//
// # Semantics
//
// Scores are scaled by softmax_scale (1/sqrt(D) when zero). With grouped-query
// attention, query head h reads KV head h/(Hq/Hkv). Causal masks are
// bottom-right aligned: query i of a segment sees key j iff
// j <= i + (k_len - q_len), so a shard of a document's queries attends its
// whole KV prefix; causal segments need q_len <= k_len. LSE holds the natural
// logarithm of the sum of exponentials of the scaled scores of each query
// row. A row that sees no key at all (non-causal with k_len = 0) gets O = 0
// and LSE = +Inf, as in FlashAttention.
//
// The backward pass takes dO [total_q, Hq, D] and yields dQ [total_q, Hq, D]
// and dK, dV [total_k, Hkv, D]. With GQA, dK and dV of a KV head sum the
// contributions of every query head of its group; KV rows that no query sees
// get zero gradients.
//
// # Numbers
//
// Scores may be any float32 values: the kernels keep no finite stand-in
// for a masked score, so rows whose scores are all huge, up to ±3.4e38,
// get the reference's O and LSE. A score is (q·k)·scale in float32, so q·k
// itself must be finite there. The backward recomputes P = exp(S − LSE)
// from the forward's float32 LSE, as FlashAttention does, so the relative
// error of its gradients grows as |LSE|·1e-7: fine for the scores of
// trained models, no longer meaningful at millions (and NaN past 2.4e38,
// where S·log2(e) overflows float32).
//
// NaN and infinite inputs are not refused (a step whose loss scale
// overflowed must still run and report it). Every output is what IEEE
// arithmetic gives over the pairs the mask lets a query see, as the
// reference computes it, PyTorch's semantics:
//
//   - A row that sees a NaN or +Inf score, or only −Inf scores, gets O and
//     LSE NaN. +Inf in LSE always means that a row sees no key
//     (FlashAttention also writes it for rows whose sum is NaN or 0).
//   - A −Inf score weighs 0; NaN or ±Inf in V reaches O of the rows that
//     see that key (LSE stays finite).
//   - In the backward, NaN and Inf reach the gradients through the same
//     formulas (dV = Pᵀ dO, dS = P ∘ (dP − Delta), dQ = scale · dS K, dK =
//     scale · dSᵀ Q): a NaN LSE makes its row's P NaN; masked pairs have
//     P = dS = 0 exactly.
//   - Where the reference is ±Inf, the kernels give that infinity or NaN.
//
// A non-finite value hidden from a row by the causal mask never reaches
// it, with one exception shared with FlashAttention's tiles, where 0·NaN
// is NaN: a NaN or Inf in V (forward) or K (dQ) of a key may also turn to
// NaN the outputs of the earlier rows of its tile that cannot see it, and
// one in Q (dK) or dO (dV) of a query those of the later keys of its tile,
// at most one tile (128 rows or keys) from the causal diagonal. Other
// segments, and rows further away, are never reached.
//
// # Reference
//
// [ReferenceForward] and [ReferenceBackward] compute the same function in
// float64 on the CPU. They are straightforward rather than fast and exist to
// test the implementations; [RelError] compares a float32 result with them.
package attention
