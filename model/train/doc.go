// Package train runs the training step of package model on a WebGPU
// device: every operation is a WGSL kernel (RMSNorm, RoPE, SwiGLU, the
// embedding and its deterministic gradient, fused softmax cross-entropy,
// deterministic reductions, AdamW with global-norm clipping) or a matrix
// product of package gemm, and core attention goes through the [Attention]
// interface (the varlen operator of package attention/gpu on one device).
//
// A [Trainer] allocates every buffer once, for a fixed number of tokens per
// step, and records each step as one command buffer; per step it writes the
// batch (tokens, targets, positions and the embedding-gradient index) and
// a few scalars, and reads back the loss and the gradient norm. Steps are
// deterministic: the same weights and batches give the same bits.
package train
