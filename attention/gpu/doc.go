// Package gpu is the varlen core-attention operator on a WebGPU device: it
// implements [attention.Runner] with the WGSL kernels of package shaders,
// on host slices ([Op.Forward], [Op.Backward]) or on tensors that already
// live on the device ([Op.ForwardBuffers], [Op.BackwardBuffers]).
//
// # Storage and determinism
//
// [attention.Args].DType stores Q, K, V, O, dO and the gradients on the device as
// float32 (the default), float16 or bfloat16; the kernels always compute in
// float32, and LSE stays float32. The host-slice methods convert.
//
// By default ([DQAuto]) the backward computes dQ inside the key-block-major
// dK/dV kernel, adding each block's share into a fixed-point accumulator
// (an int32 word per element and one per two elements, 6 bytes of scratch
// per element of dQ, and a bit per element for terms that are not finite,
// stored as NaN) with integer atomics, scaled per row from a bound on
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
// # Numbers and errors
//
// Scores of any size and NaN or infinite inputs give what package
// attention documents and its reference computes. An output that shares
// its buffer with another output or an input is [ErrAliased]; a call
// whose tensors or scratch exceed the adapter's limit for one buffer
// fails with an error wrapping [wgpu.ErrTooLarge], which a smaller call
// may avoid.
package gpu
