// Package model is coreattn's Llama-style byte-level decoder as a
// specification in code: its configuration and named presets, the
// canonical list of parameters with their shapes, the deterministic
// initialisation, the learning-rate schedule, and a float64 CPU reference
// of the whole training step (forward, loss, backward for every parameter,
// and the AdamW update with global-norm clipping). It is pure Go (no cgo):
// package model/train runs the same step in WGSL on a WebGPU device and is
// tested against this reference, and the PyTorch twin (scripts/twin.py)
// implements the same contract.
//
// # Network
//
// Tokens are bytes (vocabulary [Vocab] = 256). A batch packs documents back
// to back ([Batch]: tokens and cu_seqlens); positions restart at 0 in every
// document and attention never crosses a document boundary. Each layer is
//
//	h = RMSNorm(x; attn_norm)
//	q, k, v = h Wqᵀ, h Wkᵀ, h Wvᵀ           (grouped-query heads)
//	q, k = RoPE(q), RoPE(k)                  (rotate-half, theta 10000)
//	x = x + attention(q, k, v) Woᵀ           (causal, per document)
//	h = RMSNorm(x; mlp_norm)
//	x = x + (silu(h W1ᵀ) * (h W3ᵀ)) W2ᵀ
//
// and a final RMSNorm and an untied LM head give the logits. The loss is
// the mean next-byte cross-entropy over every token that has a successor
// in its document.
//
// # Numbers
//
// The reference computes in float64 from float32 weights; it is slow and
// meant for tests on small configurations. Its gradients are checked
// against central finite differences in this package's tests.
package model
