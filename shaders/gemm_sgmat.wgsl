// gemm_sgmat.wgsl: C = op(A)·op(B) (+ C) on subgroup matrices (tensor
// cores, Dawn's chromium_experimental_subgroup_matrix): A, B and C are f32
// in memory, as for gemm.wgsl; the operands are rounded to f16 as they are
// staged in workgroup memory and the products accumulate in f32 (the
// arithmetic of PyTorch's autocast matmul). Same parameters, bindings,
// split-K partials and edge handling as gemm.wgsl, so the host plans both
// alike; needs an adapter with f16, subgroups of exactly SGS lanes and the
// MM x MN x MK f16 -> f32 matrix configuration.
//
// A workgroup computes a BM x BN tile of C in K steps of BK, double
// buffered like gemm.wgsl (the next step's f32 slabs fetched into registers
// during this step's products, converted and stored after them, one
// barrier a step). Its NSG subgroups form an SGM x SGN grid; subgroup
// (sgm, sgn) owns FM x FN result fragments of MM x MN: rows
// (sgm*FM + i)*MM.., columns (sgn*FN + j)*MN... Each step it loads FM left
// and FN right fragments per MK-slice of the slab and issues FM*FN
// multiply-accumulates.
//
// The slabs are stored as fetched, f16, rows padded by PAD halves (16 bytes:
// rows stay 16-byte aligned and consecutive rows start in different banks):
// op(A)'s slab is sa[m][k] when A is M x K (AK; left fragments load
// row-major) and sa[k][m] when A is K x M (AM; they load column-major);
// op(B)'s is sb[k][n] (BNS; right fragments load row-major) or sb[n][k]
// (BKS; column-major). Nothing is transposed on the way in.
//
// The epilogue goes through workgroup memory, since fragments are opaque:
// each subgroup stores a fragment into its own MM x MN f32 block of sc,
// then its lanes write the block to C with the edge guards and Accumulate
// of gemm.wgsl's st_c.
//
// Generated constants (shaders.GemmTiling with MMA set, gemm_sgmat.go):
//
//   BM, BN, BK       workgroup tile and K step (BK a multiple of MK)
//   MM, MN, MK       the matrix configuration: left MM x MK, right MK x MN
//   FM, FN, NF       result fragments per subgroup along M and N, FM*FN
//   NKK              BK/MK: matrix K-slices per step
//   SGM, SGN, NSG    subgroups along M and N, and SGM*SGN
//   SGS, NT          lanes per subgroup, invocations per workgroup (NSG*SGS)
//   LA, LB           vec4s of op(A) and op(B) each invocation fetches per step
//   AK/AM, BKS/BNS,  as in gemm.wgsl
//   VA/SA, VB/SB,
//   VC/SC, DA, DB,
//   ACC
//   SAS, SAZ, SA2    row stride and size in halves of one buffer of sa,
//                    and 2*SAZ (naga wants array sizes as single constants)
//   SBS, SBZ, SB2    the same for sb
//   SCZ              NSG*FRAG: the f32 fragment blocks
//   FLK, FKN         MM*MK and MK*MN: emulated fragment sizes
//   FRAG, FPL        MM*MN, and FRAG/SGS elements each lane writes out
//   A4, B4           vec4s per fetched row of op(A)'s and op(B)'s slab
//   HW, EMU          the subgroup-matrix builtins, or their emulation in
//                    plain WGSL (exactly one is 1)
// Placeholders: MAJ_A, MAJ_B (row_major or col_major), SRC_A, SRC_B.

// @if HW
enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
// Fragment offsets derive from subgroup_id: uniform within a subgroup,
// which is all the matrix builtins need, but not within the workgroup.
diagnostic(off, chromium_experimental.subgroup_matrix_uniformity);

alias Half = f16;
alias Half4 = vec4<f16>;
alias Left = subgroup_matrix_left<f16, MK, MM>;
alias Right = subgroup_matrix_right<f16, MN, MK>;
alias Acc = subgroup_matrix_result<f32, MN, MM>;

// half rounds four staged values to f16.
fn half(v: vec4<f32>) -> Half4 {
	return vec4<f16>(v);
}

// load_left loads the MM x MK fragment of op(A) at offset off of sa.
fn load_left(off: u32) -> Left {
	return subgroupMatrixLoad<Left, MAJ_A>(&sa, off, SAS);
}

// load_right loads the MK x MN fragment of op(B) at offset off of sb.
fn load_right(off: u32) -> Right {
	return subgroupMatrixLoad<Right, MAJ_B>(&sb, off, SBS);
}

fn mma(l: Left, r: Right, x: Acc) -> Acc {
	return subgroupMatrixMultiplyAccumulate(l, r, x);
}

// store_acc stores fragment x row-major (stride MN) at offset off of sc.
fn store_acc(off: u32, x: Acc, lane: u32) {
	subgroupMatrixStore<row_major>(&sc, off, x, MN);
}
// @end
// @if EMU
// Emulation (GemmMMA.Emulated): every lane holds whole fragments as
// arrays and computes their products itself, with the load layouts and
// store of the builtins above; f16 rounding goes through pack2x16float.
// Slow, but plain WGSL: it runs the kernel's staging, offsets and epilogue
// on any adapter (lavapipe in CI).
alias Half = f32;
alias Half4 = vec4<f32>;
alias Left = array<f32, FLK>;
alias Right = array<f32, FKN>;
alias Acc = array<f32, FRAG>;

fn half(v: vec4<f32>) -> Half4 {
	return vec4<f32>(unpack2x16float(pack2x16float(v.xy)), unpack2x16float(pack2x16float(v.zw)));
}

// load_left: element (r, k) at off + r*SAS + k (row_major) or off + k*SAS + r (col_major).
fn load_left(off: u32) -> Left {
	var x: Left;
	for (var r = 0u; r < MM; r++) {
		for (var k = 0u; k < MK; k++) {
			x[r * MK + k] = sa[select(off + r * SAS + k, off + k * SAS + r, AM == 1u)];
		}
	}
	return x;
}

// load_right: element (k, n) at off + k*SBS + n (row_major) or off + n*SBS + k (col_major).
fn load_right(off: u32) -> Right {
	var x: Right;
	for (var k = 0u; k < MK; k++) {
		for (var n = 0u; n < MN; n++) {
			x[k * MN + n] = sb[select(off + k * SBS + n, off + n * SBS + k, BKS == 1u)];
		}
	}
	return x;
}

fn mma(l: Left, r: Right, x: Acc) -> Acc {
	// Copies: naga indexes array values only with constants.
	var lv = l;
	var rv = r;
	var y = x;
	for (var i = 0u; i < MM; i++) {
		for (var n = 0u; n < MN; n++) {
			var s = y[i * MN + n];
			for (var k = 0u; k < MK; k++) {
				s = fma(lv[i * MK + k], rv[k * MN + n], s);
			}
			y[i * MN + n] = s;
		}
	}
	return y;
}

// store_acc: lane 0 of the subgroup writes the fragment (all hold it).
fn store_acc(off: u32, x: Acc, lane: u32) {
	var xv = x;
	if (lane == 0u) {
		for (var i = 0u; i < FRAG; i++) {
			sc[off + i] = xv[i];
		}
	}
}
// @end

struct Params {
	m: u32,              // rows of C and of op(A)
	n: u32,              // columns of C and of op(B)
	k: u32,              // the inner dimension
	k_chunk: u32,        // K range of one split (a multiple of BK; >= k when not split)
	a_off: u32,          // element offset of A in its buffer
	lda: u32,            // elements between rows of A as stored
	b_off: u32,
	ldb: u32,
	c_off: u32,          // element offset of C (or of the partials)
	ldc: u32,
	split_stride: u32,   // elements between the partial products of two splits
	splits: u32,         // splits (grid z)
	out_off: u32,        // split-K only, read by gemm_reduce.wgsl: the real C
	ldo: u32,
	reduce_grid_x: u32,  // gemm_reduce.wgsl's workgroups along x
	_pad: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
// @if DA
// @if VA
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
// @end
// @if SA
@group(0) @binding(1) var<storage, read> a: array<f32>;
// @end
// @end
// @if DB
// @if VB
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
// @end
// @if SB
@group(0) @binding(2) var<storage, read> b: array<f32>;
// @end
// @end
// @if VC
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;
// @end
// @if SC
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
// @end

var<workgroup> sa: array<Half, SA2>;
var<workgroup> sb: array<Half, SB2>;
var<workgroup> sc: array<f32, SCZ>;

// ld_a returns elements (r, col..col+3) of A as stored, zero outside rows x cols.
fn ld_a(r: u32, col: u32, rows: u32, cols: u32) -> vec4<f32> {
	var v = vec4<f32>(0.0);
	let i = P.a_off + r * P.lda + col;
	// @if VA
	if (r < rows && col < cols) {
		v = SRC_A[i / 4u];
	}
	// @end
	// @if SA
	if (r < rows) {
		// @unroll
		for (var e = 0u; e < 4u; e++) {
			if (col + e < cols) {
				v[e] = SRC_A[i + e];
			}
		}
	}
	// @end
	return v;
}

// ld_b is ld_a for B.
fn ld_b(r: u32, col: u32, rows: u32, cols: u32) -> vec4<f32> {
	var v = vec4<f32>(0.0);
	let i = P.b_off + r * P.ldb + col;
	// @if VB
	if (r < rows && col < cols) {
		v = SRC_B[i / 4u];
	}
	// @end
	// @if SB
	if (r < rows) {
		// @unroll
		for (var e = 0u; e < 4u; e++) {
			if (col + e < cols) {
				v[e] = SRC_B[i + e];
			}
		}
	}
	// @end
	return v;
}

// st_c writes x to C's row m, column col (adding what is there when ACC),
// skipping what lies outside C.
fn st_c(off: u32, m: u32, col: u32, x: f32) {
	if (m >= P.m || col >= P.n) {
		return;
	}
	let i = off + m * P.ldc + col;
	var v = x;
	// @if VC
	if (ACC == 1u) {
		v += c[i / 4u][i % 4u];
	}
	c[i / 4u][i % 4u] = v;
	// @end
	// @if SC
	if (ACC == 1u) {
		v += c[i];
	}
	c[i] = v;
	// @end
}

// fetch loads the K step from kt (bounded by k1) into ra and rb: item it of
// a slab is vec4 it % A4 of slab row it / A4 (rows of the slab as stored:
// M rows for AK, K rows for AM), so consecutive invocations read
// consecutive 16 bytes.
fn fetch(ra: ptr<function, array<vec4<f32>, LA>>, rb: ptr<function, array<vec4<f32>, LB>>, li: u32, m0: u32, n0: u32, kt: u32, k1: u32) {
	// @unroll
	for (var l = 0u; l < LA; l++) {
		let it = li + l * NT;
		if (AK == 1u) {
			(*ra)[l] = ld_a(m0 + it / A4, kt + 4u * (it % A4), P.m, k1);
		} else {
			(*ra)[l] = ld_a(kt + it / A4, m0 + 4u * (it % A4), k1, P.m);
		}
	}
	// @unroll
	for (var l = 0u; l < LB; l++) {
		let it = li + l * NT;
		if (BKS == 1u) {
			(*rb)[l] = ld_b(n0 + it / B4, kt + 4u * (it % B4), P.n, k1);
		} else {
			(*rb)[l] = ld_b(kt + it / B4, n0 + 4u * (it % B4), k1, P.n);
		}
	}
}

// stage rounds ra and rb to f16 and stores them, as fetched, into buffer buf.
fn stage(ra: ptr<function, array<vec4<f32>, LA>>, rb: ptr<function, array<vec4<f32>, LB>>, li: u32, buf: u32) {
	// @unroll
	for (var l = 0u; l < LA; l++) {
		let it = li + l * NT;
		let o = buf * SAZ + (it / A4) * SAS + 4u * (it % A4);
		let h = half((*ra)[l]);
		sa[o] = h.x;
		sa[o + 1u] = h.y;
		sa[o + 2u] = h.z;
		sa[o + 3u] = h.w;
	}
	// @unroll
	for (var l = 0u; l < LB; l++) {
		let it = li + l * NT;
		let o = buf * SBZ + (it / B4) * SBS + 4u * (it % B4);
		let h = half((*rb)[l]);
		sb[o] = h.x;
		sb[o + 1u] = h.y;
		sb[o + 2u] = h.z;
		sb[o + 3u] = h.w;
	}
}

// a_at is the offset in sa (buffer buf) of op(A)'s element (row r, step k).
fn a_at(buf: u32, r: u32, k: u32) -> u32 {
	if (AK == 1u) {
		return buf * SAZ + r * SAS + k;
	}
	return buf * SAZ + k * SAS + r;
}

// b_at is the offset in sb (buffer buf) of op(B)'s element (step k, column n).
fn b_at(buf: u32, k: u32, n: u32) -> u32 {
	if (BKS == 1u) {
		return buf * SBZ + n * SBS + k;
	}
	return buf * SBZ + k * SBS + n;
}

@compute @workgroup_size(NT)
// @if HW
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32,
	@builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {
// @end
// @if EMU
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
	let sg = li / SGS;
	let lane = li % SGS;
// @end
	let m0 = wg.y * BM;
	let n0 = wg.x * BN;
	// This subgroup's fragments: rows r0 + i*MM, columns c0 + j*MN.
	let r0 = (sg / SGN) * FM * MM;
	let c0 = (sg % SGN) * FN * MN;
	let k0 = wg.z * P.k_chunk;
	let k1 = min(P.k, k0 + P.k_chunk);
	var steps = 0u;
	if (k1 > k0) {
		steps = (k1 - k0 + BK - 1u) / BK;
	}

	var acc: array<Acc, NF>;
	var ra: array<vec4<f32>, LA>;
	var rb: array<vec4<f32>, LB>;
	if (steps > 0u) {
		fetch(&ra, &rb, li, m0, n0, k0, k1);
		stage(&ra, &rb, li, 0u);
	}
	workgroupBarrier();
	for (var s = 0u; s < steps; s++) {
		let cur = s & 1u;
		let more = s + 1u < steps;
		if (more) {
			fetch(&ra, &rb, li, m0, n0, k0 + (s + 1u) * BK, k1);
		}
		// acc[i][j] += Left(i) · Right(j) for each MK-slice of the step.
		// @unroll
		for (var kk = 0u; kk < NKK; kk++) {
			var fa: array<Left, FM>;
			var fb: array<Right, FN>;
			// @unroll
			for (var i = 0u; i < FM; i++) {
				fa[i] = load_left(a_at(cur, r0 + i * MM, kk * MK));
			}
			// @unroll
			for (var j = 0u; j < FN; j++) {
				fb[j] = load_right(b_at(cur, kk * MK, c0 + j * MN));
			}
			// @unroll
			for (var i = 0u; i < FM; i++) {
				// @unroll
				for (var j = 0u; j < FN; j++) {
					acc[i * FN + j] = mma(fa[i], fb[j], acc[i * FN + j]);
				}
			}
		}
		if (more) {
			stage(&ra, &rb, li, cur ^ 1u);
		}
		workgroupBarrier();
	}

	// Write each fragment through this subgroup's block of sc.
	let off = P.c_off + wg.z * P.split_stride;
	// @unroll
	for (var f = 0u; f < NF; f++) {
		store_acc(sg * FRAG, acc[f], lane);
		workgroupBarrier();
		let fr = m0 + r0 + (f / FN) * MM;
		let fc = n0 + c0 + (f % FN) * MN;
		// @unroll
		for (var e = 0u; e < FPL; e++) {
			let x = lane + e * SGS;
			st_c(off, fr + x / MN, fc + x % MN, sc[sg * FRAG + x]);
		}
		workgroupBarrier();
	}
}
