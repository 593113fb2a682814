// Package attention implements variable-length ("varlen") core attention
// in FlashAttention's vocabulary: the argument type and its validation, FLOP
// counting, a float64 CPU reference of the forward and backward passes, and
// the GPU operator that runs the WGSL kernels on a wgpu device.
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
// # Storage and determinism
//
// [Args].DType stores Q, K, V, O, dO and the gradients on the device as
// float32 (the default), float16 or bfloat16; the kernels always compute in
// float32, and LSE stays float32. The host-slice methods convert.
//
// By default ([DQAuto]) the backward computes dQ inside the key-block-major
// dK/dV kernel, adding each block's share into a fixed-point accumulator
// (an int32 word per element and one per two elements, 6 bytes of scratch
// per element of dQ) with integer atomics, scaled per row from a bound on
// the row's dQ so that the words cannot overflow; each term is exact to
// about 2^-37 of the bound at 8192 keys (2^-34 at 65536);
// a last pass stores it as dQ. Integer addition does not depend on order,
// so dQ, like dK, dV, O and LSE, is the same bits on every run. On GPUs it
// stores dS instead ([DQStored]) where that takes at most 16 passes: the dK/dV
// kernel writes each dS tile (float32) to a scratch buffer and a
// query-block-major kernel multiplies the tiles by K, with no atomics and
// one writer per element of dQ; the scratch holds 4 bytes per visible
// query-key pair and query head, in passes over groups of KV heads that
// fit [Options].DSScratch (2 GiB by default, or the adapter's limit for one buffer);
// with half storage above D 64 that kernel reads a float32 copy of K, which
// the dK/dV kernel writes as it stages K. [DQSeparate] runs a
// query-block-major dQ kernel that recomputes S and dP instead, which
// needs no scratch and makes the backward about 25% slower on an H200.
//
// On GPUs the forward may compute a query block's keys in pieces (split-KV,
// [Options].SplitKV) where a batch has few workgroups and some long key
// ranges; a second pass merges the pieces in a fixed order, so O and LSE
// stay bitwise reproducible, but they may differ in the last bits from an
// unsplit run.
//
// # Reference
//
// [ReferenceForward] and [ReferenceBackward] compute the same function in
// float64 on the CPU. They are straightforward rather than fast and exist to
// test the GPU operator; [RelError] compares a float32 result with them.
package attention
