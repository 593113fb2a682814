// gemm_reduce.wgsl: the second pass of a split-K product. gemm.wgsl wrote
// splits partial products of C (split z at c_off + z*split_stride, row stride
// ldc) to a scratch buffer; each invocation here sums four consecutive
// elements of one row over the splits in order z = 0, 1, ..., so the result
// is the same bits on every run, and writes them to C (out_off, ldo),
// adding C's old value when ACC.
//
// Generated constants (shaders.GemmReduce, gemm.go):
//
//   RT       invocations per workgroup
//   VP, SP   the partials are read as vec4s (their width a multiple of 4) or as scalars
//   VO, SO   C is written as vec4s or as scalars
//   ACC      1: C += the sum

struct Params {
	m: u32,              // rows of C and of op(A)
	n: u32,              // columns of C and of op(B)
	k: u32,              // the inner dimension
	k_chunk: u32,        // K range of one split (a multiple of BK; >= k when not split)
	a_off: u32,          // element offset of A in its buffer
	lda: u32,            // elements between rows of A as stored
	b_off: u32,
	ldb: u32,
	c_off: u32,          // the partials: offset, row stride, split stride
	ldc: u32,
	split_stride: u32,
	splits: u32,
	out_off: u32,        // C: offset and row stride
	ldo: u32,
	reduce_grid_x: u32,  // workgroups along x; item = x + y * reduce_grid_x * RT
	_pad: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
// @if VP
@group(0) @binding(1) var<storage, read> part: array<vec4<f32>>;
// @end
// @if SP
@group(0) @binding(1) var<storage, read> part: array<f32>;
// @end
// @if VO
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;
// @end
// @if SO
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
// @end

@compute @workgroup_size(RT)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
	// Item q is row q / n4, columns 4*(q % n4)..+3.
	let n4 = (P.n + 3u) / 4u;
	let q = id.x + id.y * P.reduce_grid_x * RT;
	if (q >= P.m * n4) {
		return;
	}
	let m = q / n4;
	let col = 4u * (q % n4);
	let base = P.c_off + m * P.ldc + col;
	// Sum the splits in a fixed order.
	var s = vec4<f32>(0.0);
	for (var z = 0u; z < P.splits; z++) {
		let i = base + z * P.split_stride;
		// @if VP
		s += part[i / 4u];
		// @end
		// @if SP
		// @unroll
		for (var e = 0u; e < 4u; e++) {
			if (col + e < P.n) {
				s[e] += part[i + e];
			}
		}
		// @end
	}
	let o = P.out_off + m * P.ldo + col;
	// @if VO
	if (ACC == 1u) {
		s += out[o / 4u];
	}
	out[o / 4u] = s;
	// @end
	// @if SO
	// @unroll
	for (var e = 0u; e < 4u; e++) {
		if (col + e < P.n) {
			var v = s[e];
			if (ACC == 1u) {
				v += out[o + e];
			}
			out[o + e] = v;
		}
	}
	// @end
}
