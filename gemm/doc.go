// Package gemm computes matrix products on a WebGPU device: C = op(A)·op(B)
// (+ C) for row-major float32 matrices that live in device buffers, with
// op(X) = X or Xᵀ, for the linear layers of a model: the forward
// Y = X·Wᵀ (TransB), the input gradient dX = dY·W and the weight gradient
// dW = dYᵀ·X (TransA), the last two with Accumulate for gradient
// accumulation.
//
// A [Matrix] addresses any row-major block of a buffer (Offset, Stride), so
// the column slices of a fused buffer (Q, K and V side by side) are
// operands too. [Op.Prepare] checks a [Spec], compiles the kernel for its
// shape and layout (or takes it from the device's pipeline cache) and
// returns a [Launch] whose dispatches can be submitted any number of times,
// alone ([wgpu.Device.Run]) or with other work ([wgpu.Device.Submit]).
//
// # Kernels
//
// The kernels are the tiled, register-blocked, double-buffered kernel
// family of package shaders ([shaders.GemmTiling]), chosen by shape: a
// workgroup computes a tile of C (128×128 for the model's shapes), each invocation an 8×8
// block of it, in K steps of 16 staged in workgroup memory. Operands whose
// offset, row stride and width are multiples of 4 are read with 16-byte
// loads; any other layout works, through 4-byte loads. Where C has too few
// tiles to fill a GPU and K is long (the weight gradient: C is the weight,
// K the tokens of a step), the product is split along K: the splits write
// partial products to a scratch buffer that a second pass sums in a fixed
// order. The scratch is shared by the launches of an [Op] (they run in
// submission order on the device's queue), and grows to the largest that a
// live launch needs.
//
// # Determinism and accuracy
//
// Every element of C is summed by one invocation in a fixed order (and,
// when split, the splits are added in a fixed order): the same launch gives
// the same bits on every run. Products are accumulated in float32; against
// a float64 reference the relative error ‖got−want‖/‖want‖ of random
// operands grows like 2⁻²⁴·√(K/2) (3·10⁻⁶ at K = 4096).
package gemm
