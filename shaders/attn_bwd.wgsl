// attn_bwd.wgsl: FlashAttention-2 style backward over a fused varlen batch.
//
// Three entry points, run in this order:
//
//   delta_main  Delta[h, i] = rowsum(dO_i ∘ O_i) for every query row and head.
//   dq_main     query-block-major: a workgroup owns BR query rows of one
//               query head, streams the segment's keys in steps of BC, and
//               writes dQ = scale · dS K for its rows.
//   dkv_main    key-block-major: a workgroup owns BR key rows of one KV head,
//               streams the query rows that see them, for every query head
//               of the GQA group, in steps of BC, and writes
//               dV = Pᵀ dO and dK = scale · dSᵀ Q for its rows.
//
// WGSL has no float atomics, so every output element has exactly one
// writer; dq_main and dkv_main each recompute S and dP. P is recomputed
// from Q, K and the forward's LSE, P = exp(scale·q·k − LSE), and
// dS = P ∘ (dP − Delta) with dP = dO Vᵀ. S, P and dS live only in registers
// and workgroup memory.
//
// Both tiled kernels share one shape. "Rows" are what the workgroup owns
// (queries in dq_main, keys in dkv_main), "columns" what it streams. Thread
// (tx, ty) owns rows 4(ty*RG + r) + i (r < RG, i < 4) and columns
// 4tx..4tx+3 of each BR x BC tile of S and dP, held as vec4s along columns,
// and the accumulator columns 4*(tx + TX*j) (j < NJ) of its rows.
//
// The constants below are generated per adapter and head dimension by
// shaders.BwdTiling.Source (see bwd.go) and prepended to this file:
//
//   D, DV4       head dimension and D/4 (vec4 columns)
//   TX, TY, NT   threads along columns, along rows, and TX*TY in all
//   RM, RG       rows per thread (a multiple of 4) and RM/4
//   BR, BC       rows per workgroup (RM*TY) and columns per step (4*TX)
//   KC, NKC      d-chunk of the S and dP products, and ceil(D/KC) chunks
//   VC           column chunk of the accumulating products (divides BC)
//   NJ, NACC     ceil(DV4/TX) vec4 accumulator columns per thread; RM*NJ
//   SA, SB       vec4 sizes of a d-chunk of a row operand (KC x BR) and of
//                a column operand (KC x BC)
//   PA, PB, PV   vec4s of a row chunk, a column chunk and an accumulation
//                chunk (VC x D) each thread fetches
//   STAGE4       vec4 size of one staging buffer; there are two (STAGE8),
//                filled and used alternately
//   RS           row stride of the transposed P/dS tiles in vec4s: BR/4 + 1
//   PT4, PT4B    vec4 sizes of the transposed tiles (BC x RS); the second
//                one is only used by dkv_main
//   DWG          workgroup size of the Delta pre-pass
//
// Loops marked `// @unroll` are expanded by the generator (unroll.go), so
// that register arrays are only ever indexed by constants.

struct Params {
	hq: u32,            // query heads
	group: u32,         // Hq / Hkv
	total_q: u32,       // rows of Q; the stride of LSE and Delta
	causal: u32,        // 1: bottom-right aligned causal mask
	batch: u32,         // segments
	hkv: u32,           // KV heads
	nrows: u32,         // total_q * hq: rows of the Delta pre-pass
	delta_grid_x: u32,  // workgroups along x of the pre-pass
	dq_ntiles: u32,     // query blocks in the dQ tile table
	dq_grid_y: u32,     // dq_main workgroups along y; tile = wg.y + wg.z * dq_grid_y
	dq_off: u32,        // offset of the dQ tile table in segs
	scale_log2: f32,    // softmax_scale * log2(e)
	kv_ntiles: u32,     // key blocks in the dK/dV tile table
	kv_grid_y: u32,
	kv_off: u32,        // offset of the dK/dV tile table in segs
	scale: f32,         // softmax_scale
}

@group(0) @binding(0) var<uniform> P: Params;
// segs = cu_seqlens_q [B+1] ++ cu_seqlens_k [B+1] ++ dQ tiles (segment, q0)
//        ++ dK/dV tiles (segment, k0)
@group(0) @binding(1) var<storage, read> segs: array<u32>;
@group(0) @binding(2) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> d_o: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> lse: array<f32>;
@group(0) @binding(7) var<storage, read> dlt: array<f32>;                  // Delta [Hq, total_q]
@group(0) @binding(8) var<storage, read_write> grad_a: array<vec4<f32>>;   // dQ or dK
@group(0) @binding(9) var<storage, read_write> grad_b: array<vec4<f32>>;   // dV (dkv_main only)

// The Delta pre-pass binds its own operands; no other entry point uses these.
@group(0) @binding(1) var<storage, read> pre_o: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> pre_do: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> pre_delta: array<f32>;

const LOG2E: f32 = 1.4426950408889634;
const BIG: f32 = 1.0e30;   // stands in for an infinite LSE: exp2(s - BIG) is 0

// stage holds, in turn, the d-chunks of the two row operands (KC x BR each,
// transposed) and of the two column operands (KC x BC each, transposed), and
// the column chunks (VC x D) of the accumulating products. pt holds the
// transposed dS tile (dq_main) or P tile (dkv_main), pt2 the dS tile of dkv_main.
var<workgroup> stage: array<vec4<f32>, STAGE8>;
var<workgroup> pt: array<vec4<f32>, PT4>;
var<workgroup> pt2: array<vec4<f32>, PT4B>;
var<workgroup> tile_wg: Tile;

// Tile is the block a workgroup computes, read once and shared so that every
// loop bound is provably uniform across the workgroup.
struct Tile {
	q_start: u32,   // first row of the segment in Q
	q_len: u32,
	k_start: u32,   // first row of the segment in K and V
	k_len: u32,
	r0: u32,        // first owned row within the segment (query or key)
	c_first: u32,   // dkv_main: first query row that sees the block
	c_end: u32,     // dq_main: end of the visible keys; dkv_main: column steps in all
	nqb: u32,       // dkv_main: column steps per query head
}

// SD holds a thread's share of the S and dP tiles.
struct SD {
	s: array<vec4<f32>, RM>,
	dp: array<vec4<f32>, RM>,
}

// Fetched operands, in registers between global and workgroup memory.
struct RowsFetch {
	a: array<vec4<f32>, PA>,
	b: array<vec4<f32>, PA>,
}

struct ColsFetch {
	a: array<vec4<f32>, PB>,
	b: array<vec4<f32>, PB>,
}

struct AccFetch {
	a: array<vec4<f32>, PV>,
	b: array<vec4<f32>, PV>,
}

@compute @workgroup_size(DWG)
fn delta_main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
	let idx = (wg.x + wg.y * P.delta_grid_x) * DWG + lid;   // (row, head) pair: row * hq + h
	if (idx >= P.nrows) {
		return;
	}
	var acc = vec4<f32>(0.0);
	for (var d4 = 0u; d4 < DV4; d4++) {
		acc = fma(pre_o[idx * DV4 + d4], pre_do[idx * DV4 + d4], acc);
	}
	pre_delta[(idx % P.hq) * P.total_q + idx / P.hq] = (acc.x + acc.y) + (acc.z + acc.w);
}

@compute @workgroup_size(NT)
fn dq_main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
	let h = wg.x;
	let tile = wg.y + wg.z * P.dq_grid_y;
	if (tile >= P.dq_ntiles) {
		return;
	}
	let tx = lid % TX;
	let ty = lid / TX;
	let hk = h / P.group;

	if (lid == 0u) {
		let b = segs[P.dq_off + 2u * tile];
		let qs = segs[b];
		let ks = segs[P.batch + 1u + b];
		let ql = segs[b + 1u] - qs;
		let kl = segs[P.batch + 2u + b] - ks;
		let q0 = segs[P.dq_off + 2u * tile + 1u];
		var kv_end = kl;
		if (P.causal == 1u) {
			kv_end = u32(clamp(i32(min(q0 + BR, ql)) + i32(kl) - i32(ql), 0, i32(kl)));
		}
		tile_wg = Tile(qs, ql, ks, kl, q0, 0u, kv_end, 0u);
	}
	let t = workgroupUniformLoad(&tile_wg);
	let dseg = i32(t.k_len) - i32(t.q_len);   // bottom-right alignment offset

	// LSE (log2 domain) and Delta of the thread's rows; rows past the
	// segment get BIG, so that their P is 0.
	var lse2: array<vec4<f32>, RG>;
	var dl: array<vec4<f32>, RG>;
	// @unroll
	for (var r = 0u; r < RG; r++) {
		// @unroll
		for (var i = 0u; i < 4u; i++) {
			let qr = t.r0 + 4u * (ty * RG + r) + i;
			lse2[r][i] = BIG;
			dl[r][i] = 0.0;
			if (qr < t.q_len) {
				let idx = h * P.total_q + t.q_start + qr;
				lse2[r][i] = min(lse[idx] * LOG2E, BIG);
				dl[r][i] = dlt[idx];
			}
		}
	}
	var acc: array<vec4<f32>, NACC>;   // dQ: acc[(4r + i) * NJ + j] is row 4(ty*RG+r)+i, vec4 column tx+TX*j
	// @unroll
	for (var i = 0u; i < NACC; i++) {
		acc[i] = vec4<f32>(0.0);
	}

	// Operands travel global memory -> registers -> workgroup memory one step
	// ahead of the arithmetic (as in the forward): one barrier per step.
	var fa = dq_fetch_rows(t, h, lid, 0u);
	var fb = dq_fetch_cols(t, hk, lid, 0u, 0u);
	var fv: array<vec4<f32>, PV>;
	var sb = 0u;
	store_rows_cols(0u, lid, fa, fb);
	workgroupBarrier();
	for (var kb = 0u; kb < t.c_end; kb += BC) {
		// S = Q Kᵀ and dP = dO Vᵀ over d-chunks of KC.
		var sd: SD;
		// @unroll
		for (var i = 0u; i < RM; i++) {
			sd.s[i] = vec4<f32>(0.0);
			sd.dp[i] = vec4<f32>(0.0);
		}
		for (var c = 0u; c < NKC; c++) {
			if (c + 1u < NKC) {
				fa = dq_fetch_rows(t, h, lid, c + 1u);
				fb = dq_fetch_cols(t, hk, lid, kb, c + 1u);
			} else {
				fv = dq_fetch_acc(t, hk, lid, kb);
			}
			sd = tile_products(sb, tx, ty, sd);
			sb = STAGE4 - sb;
			if (c + 1u < NKC) {
				store_rows_cols(sb, lid, fa, fb);
			} else {
				store_acc1(sb, lid, fv);
			}
			workgroupBarrier();
		}

		// dS = P ∘ (dP − Delta), stored transposed: pt[key][row group].
		// @unroll
		for (var r = 0u; r < RG; r++) {
			var ds: array<vec4<f32>, 4>;
			// @unroll
			for (var i = 0u; i < 4u; i++) {
				let row = i32(t.r0 + 4u * (ty * RG + r) + i);
				// @unroll
				for (var j = 0u; j < 4u; j++) {
					let col = kb + 4u * tx + j;
					var ok = col < t.k_len;
					if (P.causal == 1u) {
						ok = ok && i32(col) <= row + dseg;
					}
					let p = select(0.0, exp2(sd.s[4u * r + i][j] * P.scale_log2 - lse2[r][i]), ok);
					ds[i][j] = p * (sd.dp[4u * r + i][j] - dl[r][i]);
				}
			}
			// @unroll
			for (var j = 0u; j < 4u; j++) {
				pt[(4u * tx + j) * RS + ty * RG + r] = vec4<f32>(ds[0][j], ds[1][j], ds[2][j], ds[3][j]);
			}
		}
		workgroupBarrier();

		// dQ += dS K over key chunks of VC.
		for (var cb = 0u; cb < BC; cb += VC) {
			if (cb + VC < BC) {
				fv = dq_fetch_acc(t, hk, lid, kb + cb + VC);
			} else if (kb + BC < t.c_end) {
				fa = dq_fetch_rows(t, h, lid, 0u);
				fb = dq_fetch_cols(t, hk, lid, kb + BC, 0u);
			}
			// @unroll
			for (var c = 0u; c < VC; c++) {
				var w: array<vec4<f32>, RG>;
				// @unroll
				for (var r = 0u; r < RG; r++) {
					w[r] = pt[(cb + c) * RS + ty * RG + r];
				}
				// @unroll
				for (var j = 0u; j < NJ; j++) {
					let d4 = tx + TX * j;
					if (DV4 % TX == 0u || d4 < DV4) {
						let x = stage[sb + c * DV4 + d4];
						// @unroll
						for (var r = 0u; r < RG; r++) {
							acc[(4u * r) * NJ + j] = fma(vec4<f32>(w[r].x), x, acc[(4u * r) * NJ + j]);
							acc[(4u * r + 1u) * NJ + j] = fma(vec4<f32>(w[r].y), x, acc[(4u * r + 1u) * NJ + j]);
							acc[(4u * r + 2u) * NJ + j] = fma(vec4<f32>(w[r].z), x, acc[(4u * r + 2u) * NJ + j]);
							acc[(4u * r + 3u) * NJ + j] = fma(vec4<f32>(w[r].w), x, acc[(4u * r + 3u) * NJ + j]);
						}
					}
				}
			}
			sb = STAGE4 - sb;
			if (cb + VC < BC) {
				store_acc1(sb, lid, fv);
			} else if (kb + BC < t.c_end) {
				store_rows_cols(sb, lid, fa, fb);
			}
			workgroupBarrier();
		}
	}

	// Every row of the block is written, zeros included.
	// @unroll
	for (var r = 0u; r < RG; r++) {
		// @unroll
		for (var i = 0u; i < 4u; i++) {
			let qr = t.r0 + 4u * (ty * RG + r) + i;
			if (qr < t.q_len) {
				let row = t.q_start + qr;
				// @unroll
				for (var j = 0u; j < NJ; j++) {
					let d4 = tx + TX * j;
					if (d4 < DV4) {
						grad_a[(row * P.hq + h) * DV4 + d4] = acc[(4u * r + i) * NJ + j] * P.scale;
					}
				}
			}
		}
	}
}

@compute @workgroup_size(NT)
fn dkv_main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
	let hk = wg.x;
	let tile = wg.y + wg.z * P.kv_grid_y;
	if (tile >= P.kv_ntiles) {
		return;
	}
	let tx = lid % TX;
	let ty = lid / TX;

	if (lid == 0u) {
		let b = segs[P.kv_off + 2u * tile];
		let qs = segs[b];
		let ks = segs[P.batch + 1u + b];
		let ql = segs[b + 1u] - qs;
		let kl = segs[P.batch + 2u + b] - ks;
		let k0 = segs[P.kv_off + 2u * tile + 1u];
		// Query i sees key j iff j <= i + (k_len - q_len): the block's first
		// key k0 is first seen by query k0 - (k_len - q_len).
		var first = 0u;
		if (P.causal == 1u) {
			first = u32(clamp(i32(k0) - (i32(kl) - i32(ql)), 0, i32(ql)));
		}
		let nqb = (ql - first + BC - 1u) / BC;
		tile_wg = Tile(qs, ql, ks, kl, k0, first, P.group * nqb, nqb);
	}
	let t = workgroupUniformLoad(&tile_wg);
	let dseg = i32(t.k_len) - i32(t.q_len);
	let h0 = hk * P.group;

	var acc_k: array<vec4<f32>, NACC>;   // acc_k[(4r + i) * NJ + j] is key 4(ty*RG+r)+i, vec4 column tx+TX*j
	var acc_v: array<vec4<f32>, NACC>;
	// @unroll
	for (var i = 0u; i < NACC; i++) {
		acc_k[i] = vec4<f32>(0.0);
		acc_v[i] = vec4<f32>(0.0);
	}

	var fa = dkv_fetch_rows(t, hk, lid, 0u);
	var fb = dkv_fetch_cols(t, h0, lid, t.c_first, 0u);
	var fv: AccFetch;
	var sb = 0u;
	store_rows_cols(0u, lid, fa, fb);
	workgroupBarrier();
	// Step it covers query head h0 + it / nqb, query rows qb..qb+BC-1.
	for (var it = 0u; it < t.c_end; it++) {
		let h = h0 + it / t.nqb;
		let qb = t.c_first + (it % t.nqb) * BC;
		var lse2 = vec4<f32>(BIG);   // of the thread's 4 query columns, log2 domain
		var dl = vec4<f32>(0.0);
		// @unroll
		for (var j = 0u; j < 4u; j++) {
			let qi = qb + 4u * tx + j;
			if (qi < t.q_len) {
				let idx = h * P.total_q + t.q_start + qi;
				lse2[j] = min(lse[idx] * LOG2E, BIG);
				dl[j] = dlt[idx];
			}
		}

		// Sᵀ = K Qᵀ and dPᵀ = V dOᵀ over d-chunks of KC.
		var sd: SD;
		// @unroll
		for (var i = 0u; i < RM; i++) {
			sd.s[i] = vec4<f32>(0.0);
			sd.dp[i] = vec4<f32>(0.0);
		}
		for (var c = 0u; c < NKC; c++) {
			if (c + 1u < NKC) {
				fa = dkv_fetch_rows(t, hk, lid, c + 1u);
				fb = dkv_fetch_cols(t, h, lid, qb, c + 1u);
			} else {
				fv = dkv_fetch_acc(t, h, lid, qb);
			}
			sd = tile_products(sb, tx, ty, sd);
			sb = STAGE4 - sb;
			if (c + 1u < NKC) {
				store_rows_cols(sb, lid, fa, fb);
			} else {
				store_acc2(sb, lid, fv);
			}
			workgroupBarrier();
		}

		// Pᵀ and dSᵀ = Pᵀ ∘ (dPᵀ − Delta), stored as pt[query][key group].
		// @unroll
		for (var r = 0u; r < RG; r++) {
			var pp: array<vec4<f32>, 4>;
			var ds: array<vec4<f32>, 4>;
			// @unroll
			for (var i = 0u; i < 4u; i++) {
				let key = i32(t.r0 + 4u * (ty * RG + r) + i);
				// @unroll
				for (var j = 0u; j < 4u; j++) {
					var ok = true;
					if (P.causal == 1u) {
						ok = key <= i32(qb + 4u * tx + j) + dseg;
					}
					let p = select(0.0, exp2(sd.s[4u * r + i][j] * P.scale_log2 - lse2[j]), ok);
					pp[i][j] = p;
					ds[i][j] = p * (sd.dp[4u * r + i][j] - dl[j]);
				}
			}
			// @unroll
			for (var j = 0u; j < 4u; j++) {
				pt[(4u * tx + j) * RS + ty * RG + r] = vec4<f32>(pp[0][j], pp[1][j], pp[2][j], pp[3][j]);
				pt2[(4u * tx + j) * RS + ty * RG + r] = vec4<f32>(ds[0][j], ds[1][j], ds[2][j], ds[3][j]);
			}
		}
		workgroupBarrier();

		// dV += Pᵀ dO and dK += dSᵀ Q over query chunks of VC.
		for (var cb = 0u; cb < BC; cb += VC) {
			let next = it + 1u < t.c_end;
			if (cb + VC < BC) {
				fv = dkv_fetch_acc(t, h, lid, qb + cb + VC);
			} else if (next) {
				fa = dkv_fetch_rows(t, hk, lid, 0u);
				fb = dkv_fetch_cols(t, h0 + (it + 1u) / t.nqb, lid, t.c_first + ((it + 1u) % t.nqb) * BC, 0u);
			}
			// @unroll
			for (var c = 0u; c < VC; c++) {
				var wp: array<vec4<f32>, RG>;
				var ws: array<vec4<f32>, RG>;
				// @unroll
				for (var r = 0u; r < RG; r++) {
					wp[r] = pt[(cb + c) * RS + ty * RG + r];
					ws[r] = pt2[(cb + c) * RS + ty * RG + r];
				}
				// @unroll
				for (var j = 0u; j < NJ; j++) {
					let d4 = tx + TX * j;
					if (DV4 % TX == 0u || d4 < DV4) {
						let xo = stage[sb + c * DV4 + d4];
						let xq = stage[sb + VC * DV4 + c * DV4 + d4];
						// @unroll
						for (var r = 0u; r < RG; r++) {
							acc_v[(4u * r) * NJ + j] = fma(vec4<f32>(wp[r].x), xo, acc_v[(4u * r) * NJ + j]);
							acc_v[(4u * r + 1u) * NJ + j] = fma(vec4<f32>(wp[r].y), xo, acc_v[(4u * r + 1u) * NJ + j]);
							acc_v[(4u * r + 2u) * NJ + j] = fma(vec4<f32>(wp[r].z), xo, acc_v[(4u * r + 2u) * NJ + j]);
							acc_v[(4u * r + 3u) * NJ + j] = fma(vec4<f32>(wp[r].w), xo, acc_v[(4u * r + 3u) * NJ + j]);
							acc_k[(4u * r) * NJ + j] = fma(vec4<f32>(ws[r].x), xq, acc_k[(4u * r) * NJ + j]);
							acc_k[(4u * r + 1u) * NJ + j] = fma(vec4<f32>(ws[r].y), xq, acc_k[(4u * r + 1u) * NJ + j]);
							acc_k[(4u * r + 2u) * NJ + j] = fma(vec4<f32>(ws[r].z), xq, acc_k[(4u * r + 2u) * NJ + j]);
							acc_k[(4u * r + 3u) * NJ + j] = fma(vec4<f32>(ws[r].w), xq, acc_k[(4u * r + 3u) * NJ + j]);
						}
					}
				}
			}
			sb = STAGE4 - sb;
			if (cb + VC < BC) {
				store_acc2(sb, lid, fv);
			} else if (next) {
				store_rows_cols(sb, lid, fa, fb);
			}
			workgroupBarrier();
		}
	}

	// Every key row of the block is written; rows no query sees get zeros.
	// @unroll
	for (var r = 0u; r < RG; r++) {
		// @unroll
		for (var i = 0u; i < 4u; i++) {
			let kr = t.r0 + 4u * (ty * RG + r) + i;
			if (kr < t.k_len) {
				let row = t.k_start + kr;
				// @unroll
				for (var j = 0u; j < NJ; j++) {
					let d4 = tx + TX * j;
					if (d4 < DV4) {
						let idx = (row * P.hkv + hk) * DV4 + d4;
						grad_a[idx] = acc_k[(4u * r + i) * NJ + j] * P.scale;
						grad_b[idx] = acc_v[(4u * r + i) * NJ + j];
					}
				}
			}
		}
	}
}

// tile_products adds one d-chunk of the two row operands times the two
// column operands (staged at sb) to the thread's S and dP tiles.
fn tile_products(sb: u32, tx: u32, ty: u32, sd_in: SD) -> SD {
	var o = sd_in;
	// @unroll
	for (var kk = 0u; kk < KC; kk++) {
		let bs = stage[sb + 2u * SA + kk * (BC / 4u) + tx];
		let bp = stage[sb + 2u * SA + SB + kk * (BC / 4u) + tx];
		// @unroll
		for (var g = 0u; g < RG; g++) {
			let ra = stage[sb + kk * (BR / 4u) + ty * RG + g];
			let rp = stage[sb + SA + kk * (BR / 4u) + ty * RG + g];
			o.s[4u * g] = fma(vec4<f32>(ra.x), bs, o.s[4u * g]);
			o.s[4u * g + 1u] = fma(vec4<f32>(ra.y), bs, o.s[4u * g + 1u]);
			o.s[4u * g + 2u] = fma(vec4<f32>(ra.z), bs, o.s[4u * g + 2u]);
			o.s[4u * g + 3u] = fma(vec4<f32>(ra.w), bs, o.s[4u * g + 3u]);
			o.dp[4u * g] = fma(vec4<f32>(rp.x), bp, o.dp[4u * g]);
			o.dp[4u * g + 1u] = fma(vec4<f32>(rp.y), bp, o.dp[4u * g + 1u]);
			o.dp[4u * g + 2u] = fma(vec4<f32>(rp.z), bp, o.dp[4u * g + 2u]);
			o.dp[4u * g + 3u] = fma(vec4<f32>(rp.w), bp, o.dp[4u * g + 3u]);
		}
	}
	return o;
}

// Element offsets (in vec4s) of Q-shaped and K-shaped tensors.
fn q_at(row: u32, h: u32, d4: u32) -> u32 {
	return (row * P.hq + h) * DV4 + d4;
}

fn k_at(row: u32, hk: u32, d4: u32) -> u32 {
	return (row * P.hkv + hk) * DV4 + d4;
}

// dq_fetch_rows fetches d-chunk c of the block's Q and dO rows.
fn dq_fetch_rows(t: Tile, h: u32, lid: u32, c: u32) -> RowsFetch {
	var f: RowsFetch;
	// @unroll
	for (var u = 0u; u < PA; u++) {
		let it = lid + u * NT;
		let row = it % BR;
		let d4 = c * (KC / 4u) + it / BR;
		f.a[u] = vec4<f32>(0.0);
		f.b[u] = vec4<f32>(0.0);
		if (it < SA && t.r0 + row < t.q_len && d4 < DV4) {
			let idx = q_at(t.q_start + t.r0 + row, h, d4);
			f.a[u] = q[idx];
			f.b[u] = d_o[idx];
		}
	}
	return f;
}

// dq_fetch_cols fetches d-chunk c of the K and V rows kb..kb+BC-1.
fn dq_fetch_cols(t: Tile, hk: u32, lid: u32, kb: u32, c: u32) -> ColsFetch {
	var f: ColsFetch;
	// @unroll
	for (var u = 0u; u < PB; u++) {
		let it = lid + u * NT;
		let row = it % BC;
		let d4 = c * (KC / 4u) + it / BC;
		f.a[u] = vec4<f32>(0.0);
		f.b[u] = vec4<f32>(0.0);
		if (it < SB && kb + row < t.k_len && d4 < DV4) {
			let idx = k_at(t.k_start + kb + row, hk, d4);
			f.a[u] = k[idx];
			f.b[u] = v[idx];
		}
	}
	return f;
}

// dq_fetch_acc fetches the K rows kb..kb+VC-1.
fn dq_fetch_acc(t: Tile, hk: u32, lid: u32, kb: u32) -> array<vec4<f32>, PV> {
	var f: array<vec4<f32>, PV>;
	// @unroll
	for (var u = 0u; u < PV; u++) {
		let it = lid + u * NT;
		let row = it / DV4;
		f[u] = vec4<f32>(0.0);
		if (it < VC * DV4 && kb + row < t.k_len) {
			f[u] = k[k_at(t.k_start + kb + row, hk, it % DV4)];
		}
	}
	return f;
}

// dkv_fetch_rows fetches d-chunk c of the block's K and V rows.
fn dkv_fetch_rows(t: Tile, hk: u32, lid: u32, c: u32) -> RowsFetch {
	var f: RowsFetch;
	// @unroll
	for (var u = 0u; u < PA; u++) {
		let it = lid + u * NT;
		let row = it % BR;
		let d4 = c * (KC / 4u) + it / BR;
		f.a[u] = vec4<f32>(0.0);
		f.b[u] = vec4<f32>(0.0);
		if (it < SA && t.r0 + row < t.k_len && d4 < DV4) {
			let idx = k_at(t.k_start + t.r0 + row, hk, d4);
			f.a[u] = k[idx];
			f.b[u] = v[idx];
		}
	}
	return f;
}

// dkv_fetch_cols fetches d-chunk c of the Q and dO rows qb..qb+BC-1 of head h.
fn dkv_fetch_cols(t: Tile, h: u32, lid: u32, qb: u32, c: u32) -> ColsFetch {
	var f: ColsFetch;
	// @unroll
	for (var u = 0u; u < PB; u++) {
		let it = lid + u * NT;
		let row = it % BC;
		let d4 = c * (KC / 4u) + it / BC;
		f.a[u] = vec4<f32>(0.0);
		f.b[u] = vec4<f32>(0.0);
		if (it < SB && qb + row < t.q_len && d4 < DV4) {
			let idx = q_at(t.q_start + qb + row, h, d4);
			f.a[u] = q[idx];
			f.b[u] = d_o[idx];
		}
	}
	return f;
}

// dkv_fetch_acc fetches the dO and Q rows qb..qb+VC-1 of head h.
fn dkv_fetch_acc(t: Tile, h: u32, lid: u32, qb: u32) -> AccFetch {
	var f: AccFetch;
	// @unroll
	for (var u = 0u; u < PV; u++) {
		let it = lid + u * NT;
		let row = it / DV4;
		f.a[u] = vec4<f32>(0.0);
		f.b[u] = vec4<f32>(0.0);
		if (it < VC * DV4 && qb + row < t.q_len) {
			let idx = q_at(t.q_start + qb + row, h, it % DV4);
			f.a[u] = d_o[idx];
			f.b[u] = q[idx];
		}
	}
	return f;
}

// store_rows_cols writes fetched row and column chunks transposed into the
// stage buffer at base: the two row operands (KC x BR each), then the two
// column operands (KC x BC each), rows fastest so that a warp's stores hit
// distinct banks.
fn store_rows_cols(base: u32, lid: u32, fa: RowsFetch, fb: ColsFetch) {
	// @unroll
	for (var u = 0u; u < PA; u++) {
		let it = lid + u * NT;
		if (it < SA) {
			let row = it % BR;
			let c4 = it / BR;
			// @unroll
			for (var e = 0u; e < 4u; e++) {
				stage[base + (4u * c4 + e) * (BR / 4u) + row / 4u][row % 4u] = fa.a[u][e];
				stage[base + SA + (4u * c4 + e) * (BR / 4u) + row / 4u][row % 4u] = fa.b[u][e];
			}
		}
	}
	// @unroll
	for (var u = 0u; u < PB; u++) {
		let it = lid + u * NT;
		if (it < SB) {
			let row = it % BC;
			let c4 = it / BC;
			// @unroll
			for (var e = 0u; e < 4u; e++) {
				stage[base + 2u * SA + (4u * c4 + e) * (BC / 4u) + row / 4u][row % 4u] = fb.a[u][e];
				stage[base + 2u * SA + SB + (4u * c4 + e) * (BC / 4u) + row / 4u][row % 4u] = fb.b[u][e];
			}
		}
	}
}

// store_acc1 writes one fetched accumulation chunk (VC x D) at base.
fn store_acc1(base: u32, lid: u32, f: array<vec4<f32>, PV>) {
	// @unroll
	for (var u = 0u; u < PV; u++) {
		let it = lid + u * NT;
		if (it < VC * DV4) {
			stage[base + it] = f[u];
		}
	}
}

// store_acc2 writes two fetched accumulation chunks (VC x D each) at base.
fn store_acc2(base: u32, lid: u32, f: AccFetch) {
	// @unroll
	for (var u = 0u; u < PV; u++) {
		let it = lid + u * NT;
		if (it < VC * DV4) {
			stage[base + it] = f.a[u];
			stage[base + VC * DV4 + it] = f.b[u];
		}
	}
}
