// The attention forward over a fused varlen batch, FlashAttention-2 style.
//
// One workgroup computes a Br x D block of O (and Br entries of LSE) for one
// query head of one segment, streaming the segment's keys and values in
// tiles of Bc rows. S = Q Kᵀ and P live only in registers and workgroup
// memory; the softmax is computed online (running max m and sum l per row).
//
// Split-KV: a block with a long key range may be cut into pieces of
// P.piece keys, each its own workgroup, which writes its normalised O and
// its LSE to the scratch buffer part instead of O and LSE; combine_main then
// merges the pieces of each block (O = sum_s exp(LSE_s - LSE) O_s).
//
// Tensors are stored as IOV (four values: vec4<f32>, or vec2<u32> holding
// four f16 or bf16), read with ld() and written as OV (here IOV) with st();
// the operands are fetched as LDV, 16 bytes a load where the dtype allows
// (LOAD_VEC4S IOVs), taken apart with pick(). All come from the dtype's
// prelude (dtype.go). Arithmetic is always f32.
//
// Scores live in half the log2 domain, u = S·scale·log2(e)/2, where every
// score finite in f32 stays finite (the log2 domain itself overflows past
// |S| = 2.4e38). P = exp2(2(u - m)) is exp2(fma(u, 2, -2m)): 2u and 2m are
// exact, so it rounds as exp2(S·scale·log2(e) - m) would. Where -2m
// overflows (|m| >= 2^127) it is exp2(fma(u, 1, -m)): there u - m is 0 or
// below -2^103, so P is 1 or 0 either way. Masked pairs score
// -Inf, and a row that has seen no visible key keeps m = -Inf and is
// exponentiated against 0 (FlashAttention's guard), so that -Inf - -Inf
// never makes NaN. NaN scores reach l and so the row's O and LSE.
//
// The generator (fwd.go) prepends the prelude and the tiling's constants,
// which FwdTiling.constants documents, and appends fetch.wgsl; it expands
// loops marked `// @unroll`, so that register arrays are only ever indexed
// by constants, and keeps or drops `// @if NAME` blocks (unroll.go).
//
// Workgroup arrays are shaped so that, in the inner loops, the index that
// varies (kk, c) is an outer, constant one and the innermost is a per-thread
// value that does not change (tx, ty*RG + r). Naga clamps every dynamic
// index into a workgroup array (wgpu's bounds-check policy); shaped this
// way the clamps are the same few values for the whole loop, and the
// driver folds the constant part into the load's immediate offset.
//
// Thread (tx, ty) owns RM = 4*RG rows of the block (RG groups of 4 rows,
// starting at row 4*RG*ty), columns 4tx..4tx+3 of each S tile, and the O
// columns 4*(tx + TX*j) for j < ACC_COLS of its rows.

// The launch parameters, mirrored and documented by shaders.FwdParams (params.go).
struct Params {
	hq: u32,
	group: u32,
	total_q: u32,
	causal: u32,
	n_tiles: u32,
	grid_y: u32,
	batch: u32,
	tiles_off: u32,
	scale_log2: f32,
	hkv: u32,
	piece: u32,
	comb_off: u32,
	n_groups: u32,
	comb_grid_y: u32,
	lse_off: u32,
	_pad: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
// segs = cu_seqlens_q [B+1] ++ cu_seqlens_k [B+1] ++ tile table (segment,
// q0, k0, slot) ++ combine table (segment, q0, first slot, pieces)
@group(0) @binding(1) var<storage, read> segs: array<u32>;
@group(0) @binding(2) var<storage, read> q: array<LDV>;   // read LOAD_VEC4S vec4s a load
@group(0) @binding(3) var<storage, read> k: array<LDV>;
@group(0) @binding(4) var<storage, read> v: array<LDV>;
@group(0) @binding(5) var<storage, read_write> o: array<OV>;
@group(0) @binding(6) var<storage, read_write> lse: array<f32>;
// part holds each split-KV piece's O (slot, head, row, vec4 column) and,
// from lse_off, its LSE (slot, head, row group of 4).
@group(0) @binding(7) var<storage, read_write> part: array<vec4<f32>>;

// combine_main binds its own operands (and P); main uses none of these.
@group(0) @binding(1) var<storage, read> cmb_segs: array<u32>;
@group(0) @binding(2) var<storage, read> cmb_part: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> cmb_o: array<OV>;
@group(0) @binding(4) var<storage, read_write> cmb_lse: array<f32>;

const NONE: u32 = 0xffffffffu;   // the slot of a block computed whole
const LN2: f32 = 0.6931471805599453;
const HUGE: f32 = 1.7014118e38;   // 2^127: rows whose maximum (half log2 domain) reaches it take exp2(u - m)

// Each of the two stage buffers holds, in turn, a d-chunk of Qᵀ (row kk:
// columns 0..BR4-1) beside one of K (columns BR4.., see store_qk), or a
// chunk of V rows; they are filled and used alternately. pt holds Pᵀ by key
// chunk of VC. The per-thread row partials (TX x BR4 vec4s) borrow the idle
// buffer.
var<workgroup> stage: array<array<array<vec4<f32>, STAGE_WIDTH>, STAGE_ROWS>, 2>;
var<workgroup> pt: array<array<array<vec4<f32>, BR4>, VC>, V_CHUNKS>;

// Tile is the query block a workgroup computes.
struct Tile {
	q_start: u32,  // first row of the segment in Q
	q_len: u32,
	k_start: u32,  // first row of the segment in K and V
	k_len: u32,
	q0: u32,       // first row of the block within the segment
	k0: u32,       // first key of the piece (0 unless split)
	slot: u32,     // the piece's slot in part, or NONE
}

@compute @workgroup_size(THREADS)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
	let h = wg.x;
	let tile = wg.y + wg.z * P.grid_y;
	if (tile >= P.n_tiles) {
		return;
	}
	// Each 32-lane group covers WARP_COLS columns by 32/WARP_COLS row
	// groups, so that its K and V reads (distinct per tx) and Q and P reads
	// (distinct per ty) each fit one workgroup-memory wavefront.
	let lane = lid % 32u;
	let grp = lid / 32u;
	let tx = lane % WARP_COLS + WARP_COLS * (grp % (TX / WARP_COLS));
	let ty = lane / WARP_COLS + (32u / WARP_COLS) * (grp / (TX / WARP_COLS));
	let hk = h / P.group;

	// Stage 0: find the segment and the key range this tile needs (segs is
	// read-only and indexed by the workgroup id: uniform across the group).
	let e = P.tiles_off + 4u * tile;
	let b = segs[e];
	let qs = segs[b];
	let ks = segs[P.batch + 1u + b];
	let t = Tile(qs, segs[b + 1u] - qs, ks, segs[P.batch + 2u + b] - ks, segs[e + 1u], segs[e + 2u], segs[e + 3u]);
	let q_start = t.q_start;
	let q_len = t.q_len;
	let k_start = t.k_start;
	let k_len = t.k_len;
	let q0 = t.q0;
	let delta = i32(k_len) - i32(q_len);   // bottom-right alignment offset
	var kv_end = k_len;
	if (P.causal == 1u) {
		let last = min(q0 + BR, q_len);    // one past the last row of the block
		kv_end = u32(clamp(i32(last) + delta, 0, i32(k_len)));
	}
	let k0 = t.k0;
	if (t.slot != NONE) {
		kv_end = min(kv_end, k0 + P.piece);   // a split-KV piece: keys k0..k0+piece-1
	}

	// Row group g = ty*RG + r (r < RG) is rows 4g..4g+3 of the block; the
	// thread owns RG such groups, and vec4 lanes are the 4 rows of a group.
	let ninf = vec4<f32>(bitcast<f32>(0xff800000u));   // -Inf: the score of a masked pair
	let scale_half = P.scale_log2 * 0.5;   // scores are kept in half the log2 domain
	var m: array<vec4<f32>, RG>;     // running row max (half log2 domain)
	var l: array<vec4<f32>, RG>;     // this thread's share of the running row sum
	// @unroll
	for (var r = 0u; r < RG; r++) {
		m[r] = ninf;
		l[r] = vec4<f32>(0.0);
	}
	var acc: array<vec4<f32>, ACC_VEC4S>;   // O block: acc[(4r + i) * ACC_COLS + j] is row 4(ty*RG+r)+i, vec4 column tx+TX*j
	// @unroll
	for (var i = 0u; i < ACC_VEC4S; i++) {
		acc[i] = vec4<f32>(0.0);
	}

	// Operands travel global memory -> registers (fk, fv) -> workgroup
	// memory, one chunk ahead of the arithmetic: while chunk n computes on
	// one buffer, chunk n+1's operands are fetched and stored into the
	// other, so global latency hides behind the FMAs and each chunk needs
	// one barrier. The last chunk of each product stages the first of the
	// next. The block's Q is the same for every tile: with GPU it is
	// fetched once, into registers (fqa: this thread's share of every
	// d-chunk, transposed), and only stored again; with CPU it is fetched
	// again for every tile and the d-chunk loop stays rolled (CPU drivers
	// compile the unrolled one several times slower, and run it slower).
	// @if GPU
	var fqa: array<vec4<f32>, Q_REGS>;
	// @unroll
	for (var c = 0u; c < D_CHUNKS; c++) {
		let f = load_qt(t, h, lid, c);
		// @unroll
		for (var u = 0u; u < Q_FETCHES; u++) {
			fqa[c * Q_FETCHES + u] = f[u];
		}
	}
	// @end
	var fq: array<vec4<f32>, Q_FETCHES>;
	// @if GPU
	// @unroll
	for (var u = 0u; u < Q_FETCHES; u++) {
		fq[u] = fqa[u];
	}
	// @end
	// @if CPU
	fq = load_q(t, h, lid, 0u);
	// @end
	var fk = load_k(t, hk, lid, k0, 0u);
	var fv: array<LDV, V_FETCHES>;
	var sb = 0u;                     // stage buffer of the current chunk
	store_qk(0u, lid, fq, fk);
	workgroupBarrier();
	for (var kb = k0; kb < kv_end; kb += BC) {
		// Stage 1: S = Q Kᵀ for this tile, accumulated over d-chunks of KC.
		// s[4r + i] holds row 4(ty*RG+r)+i against keys kb+4tx..kb+4tx+3.
		var s: array<vec4<f32>, RM>;
		// @unroll
		for (var i = 0u; i < RM; i++) {
			s[i] = vec4<f32>(0.0);
		}
		// @if GPU
		// @unroll
		// @end
		for (var c = 0u; c < D_CHUNKS; c++) {
			if (c + 1u < D_CHUNKS) {
				// @if GPU
				// @unroll
				for (var u = 0u; u < Q_FETCHES; u++) {
					fq[u] = fqa[(c + 1u) * Q_FETCHES + u];
				}
				// @end
				// @if CPU
				fq = load_q(t, h, lid, c + 1u);
				// @end
				fk = load_k(t, hk, lid, kb, c + 1u);
			} else {
				fv = load_v(t, hk, lid, kb, 0u, kv_end);
			}
			// @if UNTRANSPOSED
			// @unroll
			for (var c4 = 0u; c4 < KC4; c4++) {
				let bk = staged_cols(sb, BR4, tx, c4, BC);   // bk[j][e]: key 4tx+j, d-step 4*c4+e
				// @unroll
				for (var e = 0u; e < 4u; e++) {
					let b = vec4<f32>(bk[0][e], bk[1][e], bk[2][e], bk[3][e]);   // keys 4tx..4tx+3 at d-step 4*c4 + e
					// @unroll
					for (var r = 0u; r < RG; r++) {
						let a = stage[sb][4u * c4 + e][ty * RG + r];
						s[4u * r] = fma(vec4<f32>(a.x), b, s[4u * r]);
						s[4u * r + 1u] = fma(vec4<f32>(a.y), b, s[4u * r + 1u]);
						s[4u * r + 2u] = fma(vec4<f32>(a.z), b, s[4u * r + 2u]);
						s[4u * r + 3u] = fma(vec4<f32>(a.w), b, s[4u * r + 3u]);
					}
				}
			}
			// @end
			// @if TRANSPOSED
			// @unroll
			for (var kk = 0u; kk < KC; kk++) {
				let b = stage[sb][kk][BR4 + (tx ^ tswz(kk / 4u, BC))];   // keys 4tx..4tx+3 at d-step kk
				// @unroll
				for (var r = 0u; r < RG; r++) {
					let a = stage[sb][kk][ty * RG + r];
					s[4u * r] = fma(vec4<f32>(a.x), b, s[4u * r]);
					s[4u * r + 1u] = fma(vec4<f32>(a.y), b, s[4u * r + 1u]);
					s[4u * r + 2u] = fma(vec4<f32>(a.z), b, s[4u * r + 2u]);
					s[4u * r + 3u] = fma(vec4<f32>(a.w), b, s[4u * r + 3u]);
				}
			}
			// @end
			sb = 1u - sb;
			if (c + 1u < D_CHUNKS) {
				store_qk(sb, lid, fq, fk);
			} else {
				store_v(sb, lid, fv);
			}
			workgroupBarrier();
		}

		// Stage 2: scale, mask, and this thread's partial row maxima. Only
		// tiles that cross k_len or the causal diagonal need the mask.
		let rb = 1u - sb;   // the idle stage buffer holds the row partials
		let whole = kb + BC <= k_len && (P.causal == 0u || i32(kb + BC) <= i32(q0) + delta + 1);
		// @unroll
		for (var r = 0u; r < RG; r++) {
			var pmax = ninf;
			// @unroll
			for (var i = 0u; i < 4u; i++) {
				let row = i32(q0 + 4u * (ty * RG + r) + i);
				s[4u * r + i] *= scale_half;
				if (!whole) {
					// @unroll
					for (var j = 0u; j < 4u; j++) {
						let col = kb + 4u * tx + j;
						var ok = col < k_len;
						if (P.causal == 1u) {
							ok = ok && i32(col) <= row + delta;
						}
						s[4u * r + i][j] = select(ninf[0], s[4u * r + i][j], ok);
					}
				}
				let si = s[4u * r + i];
				pmax[i] = max(max(si.x, si.y), max(si.z, si.w));
			}
			put_part(rb, tx, ty * RG + r, pmax);
		}
		workgroupBarrier();

		// Stage 3: new row max m, rescale factor alpha, P = exp2(2(u - m))
		// into Pᵀ (see the top of the file).
		// @unroll
		for (var r = 0u; r < RG; r++) {
			var m_new = m[r];
			// @unroll
			for (var x = 0u; x < TX; x++) {
				m_new = max(m_new, get_part(rb, x, ty * RG + r));
			}
			let ms = select(m_new, vec4<f32>(0.0), bitcast<vec4<u32>>(m_new) == vec4<u32>(0xff800000u));   // no key yet: against 0
			let huge = !(abs(ms) < vec4<f32>(HUGE));   // -2m overflows (or m is NaN): a factor of 1
			let fa = select(vec4<f32>(2.0), vec4<f32>(1.0), huge);
			let fb = ms * -fa;
			let alpha = exp2(fma(m[r], fa, fb));
			m[r] = m_new;
			var p: array<vec4<f32>, 4>;
			if (any(huge)) {
				// @unroll
				for (var i = 0u; i < 4u; i++) {
					p[i] = exp2(fma(s[4u * r + i], vec4<f32>(fa[i]), vec4<f32>(fb[i])));
				}
			} else {
				// @unroll
				for (var i = 0u; i < 4u; i++) {
					p[i] = exp2(fma(s[4u * r + i], vec4<f32>(2.0), vec4<f32>(fb[i])));
				}
			}
			// @unroll
			for (var i = 0u; i < 4u; i++) {
				l[r][i] = l[r][i] * alpha[i] + (p[i].x + p[i].y + p[i].z + p[i].w);
				// @unroll
				for (var j = 0u; j < ACC_COLS; j++) {
					acc[(4u * r + i) * ACC_COLS + j] *= alpha[i];
				}
			}
			// @unroll
			for (var j = 0u; j < 4u; j++) {
				let key = 4u * tx + j;
				pt[key / VC][key % VC][ty * RG + r] = vec4<f32>(p[0][j], p[1][j], p[2][j], p[3][j]);
			}
		}

		workgroupBarrier();   // Pᵀ complete before any thread reads it

		// Stage 4: O += P V over key chunks of VC.
		for (var ci = 0u; ci < V_CHUNKS; ci++) {
			let cb = ci * VC;
			if (cb + VC < BC) {
				fv = load_v(t, hk, lid, kb, cb + VC, kv_end);
			} else if (kb + BC < kv_end) {
				// @if GPU
				// @unroll
				for (var u = 0u; u < Q_FETCHES; u++) {
					fq[u] = fqa[u];
				}
				// @end
				// @if CPU
				fq = load_q(t, h, lid, 0u);
				// @end
				fk = load_k(t, hk, lid, kb + BC, 0u);
			}
			// @unroll
			for (var c = 0u; c < VC; c++) {
				var pv: array<vec4<f32>, RG>;
				// @unroll
				for (var r = 0u; r < RG; r++) {
					pv[r] = pt[ci][c][ty * RG + r];
				}
				// @unroll
				for (var j = 0u; j < ACC_COLS; j++) {
					let d4 = tx + TX * j;
					if (DV4 % TX == 0u || d4 < DV4) {
						// @if V_UNFOLDED
						let vv = stage[sb][c][d4];
						// @end
						// @if V_FOLDED
						let vv = stage[sb][c % STAGE_ROWS][(c / STAGE_ROWS) * DV4 + d4];
						// @end
						// @unroll
						for (var r = 0u; r < RG; r++) {
							acc[(4u * r) * ACC_COLS + j] = fma(vec4<f32>(pv[r].x), vv, acc[(4u * r) * ACC_COLS + j]);
							acc[(4u * r + 1u) * ACC_COLS + j] = fma(vec4<f32>(pv[r].y), vv, acc[(4u * r + 1u) * ACC_COLS + j]);
							acc[(4u * r + 2u) * ACC_COLS + j] = fma(vec4<f32>(pv[r].z), vv, acc[(4u * r + 2u) * ACC_COLS + j]);
							acc[(4u * r + 3u) * ACC_COLS + j] = fma(vec4<f32>(pv[r].w), vv, acc[(4u * r + 3u) * ACC_COLS + j]);
						}
					}
				}
			}
			sb = 1u - sb;
			if (cb + VC < BC) {
				store_v(sb, lid, fv);
			} else if (kb + BC < kv_end) {
				store_qk(sb, lid, fq, fk);
			}
			workgroupBarrier();
		}
	}

	// Stage 5: sum the row shares of l (every stage buffer is idle now), then
	// O = acc / l and LSE = ln(sum exp(scaled S)) = (m + log2(l)/2)·2ln2.
	// l is positive and finite where the row saw a key with a finite score;
	// 0 where it saw no key, or only scores of -Inf; NaN where it saw a NaN
	// or +Inf score. A split-KV piece writes its O (0 where l = 0) and m
	// and l themselves, for the merge (which tells the cases apart); a
	// whole block writes O = 0 and LSE = +Inf for a row that sees no key
	// (k_len = 0), and NaN for every other row without a positive l.
	let nan = bitcast<f32>(0x7fc00000u);
	// @unroll
	for (var r = 0u; r < RG; r++) {
		put_part(0u, tx, ty * RG + r, l[r]);
	}
	workgroupBarrier();
	// @unroll
	for (var r = 0u; r < RG; r++) {
		var lsum = vec4<f32>(0.0);
		// @unroll
		for (var x = 0u; x < TX; x++) {
			lsum += get_part(0u, x, ty * RG + r);
		}
		let lbits = bitcast<vec4<u32>>(lsum);
		let ok = lbits - vec4<u32>(1u) < vec4<u32>(0x7f7fffffu);   // 0 < l < +Inf, told by its bits
		if (t.slot != NONE) {
			let g = (t.slot * P.hq + h) * BR4 + ty * RG + r;   // row group of the piece
			// @unroll
			for (var i = 0u; i < 4u; i++) {
				let inv = select(select(nan, 0.0, lbits[i] == 0u), 1.0 / lsum[i], ok[i]);
				// @unroll
				for (var j = 0u; j < ACC_COLS; j++) {
					let d4 = tx + TX * j;
					if (d4 < DV4) {
						part[(4u * g + i) * DV4 + d4] = acc[(4u * r + i) * ACC_COLS + j] * inv;
					}
				}
			}
			if (tx == 0u) {
				part[P.lse_off + 2u * g] = m[r];
				part[P.lse_off + 2u * g + 1u] = lsum;
			}
		} else {
			let empty = k_len == 0u;   // the row sees no key
			// @unroll
			for (var i = 0u; i < 4u; i++) {
				let qr = q0 + 4u * (ty * RG + r) + i;
				if (qr < q_len) {
					let row = q_start + qr;
					let inv = select(select(nan, 0.0, empty), 1.0 / lsum[i], ok[i]);
					// @unroll
					for (var j = 0u; j < ACC_COLS; j++) {
						let d4 = tx + TX * j;
						if (d4 < DV4) {
							o[(row * P.hq + h) * DV4 + d4] = st(acc[(4u * r + i) * ACC_COLS + j] * inv);
						}
					}
					if (tx == 0u) {
						let none = select(nan, bitcast<f32>(0x7f800000u), empty);   // +Inf: a row that sees no key
						lse[h * P.total_q + row] = select(none, (m[r][i] + log2(lsum[i]) * 0.5) * (2.0 * LN2), ok[i]);
					}
				}
			}
		}
	}
}

// combine_main merges the split-KV pieces of one query block for one head:
// LSE = ln sum_s exp(LSE_s) and O = sum_s exp(LSE_s - LSE) O_s, where
// piece s's row holds (m_s, l_s), its maximum (half log2 domain) and sum,
// and LSE_s = (m_s + log2(l_s)/2)·2ln2. Where |m| reaches 128 (scores
// beyond about 177), ln(l_s) would vanish beside m_s in f32 and pieces of
// tied maxima would merge with equal weights, so the weights are
// l_s·exp2(2(m_s - m)) instead. Every row of a split block sees a key: a
// row whose pieces all have l = 0 (its scores are all -Inf), or one NaN,
// gets NaN, as in main. Workgroup (head, group); invocation lid takes the
// (row, vec4 column) pairs lid, lid + 64, ... of the block.
@compute @workgroup_size(64)
fn combine_main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
	let h = wg.x;
	let grp = wg.y + wg.z * P.comb_grid_y;
	if (grp >= P.n_groups) {
		return;
	}
	let e = P.comb_off + 4u * grp;
	let b = cmb_segs[e];
	let q0 = cmb_segs[e + 1u];
	let first = cmb_segs[e + 2u];
	let n = cmb_segs[e + 3u];
	let q_start = cmb_segs[b];
	let rows = min(BR, cmb_segs[b + 1u] - q_start - q0);
	let ninf = bitcast<f32>(0xff800000u);
	for (var it = lid; it < rows * DV4; it += 64u) {
		let rr = it / DV4;
		let d4 = it % DV4;
		let row = q_start + q0 + rr;
		var mx = ninf;
		var nan = false;
		for (var s = 0u; s < n; s++) {
			let ml = piece_ml(first + s, h, rr);
			nan = nan || (bitcast<u32>(ml.y) & 0x7fffffffu) > 0x7f800000u;
			mx = max(mx, ml.x);
		}
		if (nan || bitcast<u32>(mx) == 0xff800000u) {
			cmb_o[(row * P.hq + h) * DV4 + d4] = st(vec4<f32>(bitcast<f32>(0x7fc00000u)));
			if (d4 == 0u) {
				cmb_lse[h * P.total_q + row] = bitcast<f32>(0x7fc00000u);
			}
			continue;
		}
		let exact = !(abs(mx) < 128.0);
		var top = mx;   // the weights' reference: mx, or the largest LSE_s
		if (!exact) {
			top = ninf;
			for (var s = 0u; s < n; s++) {
				top = max(top, piece_lse(piece_ml(first + s, h, rr)));
			}
		}
		var sum = 0.0;
		var acc = vec4<f32>(0.0);
		for (var s = 0u; s < n; s++) {
			let ml = piece_ml(first + s, h, rr);
			let w = select(exp(piece_lse(ml) - top), ml.y * exp2((ml.x - top) * 2.0), exact);
			sum += w;
			acc += w * cmb_part[(((first + s) * P.hq + h) * BR + rr) * DV4 + d4];
		}
		cmb_o[(row * P.hq + h) * DV4 + d4] = st(acc / sum);
		if (d4 == 0u) {
			cmb_lse[h * P.total_q + row] = select(top + log(sum), (top + log2(sum) * 0.5) * (2.0 * LN2), exact);
		}
	}
}

// piece_ml reads (m, l) of row rr of piece slot for head h: lane rr % 4 of
// its row group's pair of vec4s.
fn piece_ml(slot: u32, h: u32, rr: u32) -> vec2<f32> {
	let g = P.lse_off + 2u * ((slot * P.hq + h) * BR4 + rr / 4u);
	return vec2<f32>(cmb_part[g][rr % 4u], cmb_part[g + 1u][rr % 4u]);
}

// piece_lse is a piece's LSE_s from its (m, l): -Inf where l = 0.
fn piece_lse(ml: vec2<f32>) -> f32 {
	return select(bitcast<f32>(0xff800000u), (ml.x + log2(ml.y) * 0.5) * (2.0 * LN2), ml.y > 0.0);
}

// load_q fetches d-chunk c of the block's query rows for the CPU pattern:
// item it is vec4 column it / BR of row it % BR.
fn load_q(t: Tile, h: u32, lid: u32, c: u32) -> array<vec4<f32>, Q_FETCHES> {
	var f: array<vec4<f32>, Q_FETCHES>;
	// @unroll
	for (var u = 0u; u < Q_FETCHES; u++) {
		let it = lid + u * THREADS;
		let row = it % BR;
		let c4 = it / BR;
		f[u] = vec4<f32>(0.0);
		if (((BR * KC / 4u) % THREADS == 0u || it < BR * KC / 4u) && t.q0 + row < t.q_len && c * KC + 4u * c4 < D) {
			f[u] = ld(q_vec4(((t.q_start + t.q0 + row) * P.hq + h) * DV4 + c * (KC / 4u) + c4));
		}
	}
	return f;
}

// load_qt fetches d-chunk c of the block's query rows for the GPU pattern,
// transposed: item it is Qᵀ row kk = it / BR4 of the chunk, columns
// 4g..4g+3 (g = it % BR4), i.e. element c*KC + kk of rows 4g..4g+3. Its
// reads are scattered, but it runs once per block.
fn load_qt(t: Tile, h: u32, lid: u32, c: u32) -> array<vec4<f32>, Q_FETCHES> {
	var f: array<vec4<f32>, Q_FETCHES>;
	// @unroll
	for (var u = 0u; u < Q_FETCHES; u++) {
		let it = lid + u * THREADS;
		let g = it % BR4;
		let d = c * KC + it / BR4;
		f[u] = vec4<f32>(0.0);
		if (((BR * KC / 4u) % THREADS == 0u || it < BR * KC / 4u) && d < D) {
			// @unroll
			for (var e = 0u; e < 4u; e++) {
				let row = t.q0 + 4u * g + e;
				if (row < t.q_len) {
					f[u][e] = ld(q_vec4(((t.q_start + row) * P.hq + h) * DV4 + d / 4u))[d % 4u];
				}
			}
		}
	}
	return f;
}

// q_vec4 reads vec4 i of Q (the block's Q is read once, a vec4 at a time).
fn q_vec4(i: u32) -> IOV {
	return pick(q[i / LOAD_VEC4S], i % LOAD_VEC4S);
}

// load_k fetches d-chunk c of keys kb..kb+BC-1 into registers, CHUNK_LOADS
// consecutive loads per key row, so that a group's reads are contiguous.
fn load_k(t: Tile, hk: u32, lid: u32, kb: u32, c: u32) -> array<LDV, K_FETCHES> {
	var f: array<LDV, K_FETCHES>;
	// @unroll
	for (var u = 0u; u < K_FETCHES; u++) {
		let it = lid + u * THREADS;
		let row = chunk_row(it, BC);
		let l = c * CHUNK_LOADS + chunk_col(it, BC);
		f[u] = LDV();
		if (((BC * CHUNK_LOADS) % THREADS == 0u || it < BC * CHUNK_LOADS) && kb + row < t.k_len && l < ROW_LOADS) {
			f[u] = k[((t.k_start + kb + row) * P.hkv + hk) * ROW_LOADS + l];
		}
	}
	return f;
}

// load_v fetches value rows kb+cb..kb+cb+VC-1 into registers, zeros from
// row lim on (keys no row of the block sees: their P is 0, and a NaN or
// Inf there would make 0·V NaN).
fn load_v(t: Tile, hk: u32, lid: u32, kb: u32, cb: u32, lim: u32) -> array<LDV, V_FETCHES> {
	var f: array<LDV, V_FETCHES>;
	// @unroll
	for (var u = 0u; u < V_FETCHES; u++) {
		let it = lid + u * THREADS;
		let row = it / ROW_LOADS;
		f[u] = LDV();
		if (((VC * ROW_LOADS) % THREADS == 0u || it < VC * ROW_LOADS) && kb + cb + row < lim) {
			f[u] = v[((t.k_start + kb + cb + row) * P.hkv + hk) * ROW_LOADS + it % ROW_LOADS];
		}
	}
	return f;
}

// put_part and get_part store and load the row partial of thread column x
// for row group g, laid out flat over stage buffer sb.
fn put_part(sb: u32, x: u32, g: u32, val: vec4<f32>) {
	let f = x * BR4 + g;
	stage[sb][f / STAGE_WIDTH][f % STAGE_WIDTH] = val;
}

fn get_part(sb: u32, x: u32, g: u32) -> vec4<f32> {
	let f = x * BR4 + g;
	return stage[sb][f / STAGE_WIDTH][f % STAGE_WIDTH];
}

// store_qk writes a fetched Q and K chunk into stage[sb]: Qᵀ (KC x Br) in
// columns 0..BR4-1 and beside it the K chunk, untransposed or transposed
// (see store_operand in fetch.wgsl). With the GPU
// pattern Q comes transposed; with the CPU pattern it is stored transposed
// here, rows fastest.
fn store_qk(sb: u32, lid: u32, fq: array<vec4<f32>, Q_FETCHES>, fk: array<LDV, K_FETCHES>) {
	// @unroll
	for (var u = 0u; u < Q_FETCHES; u++) {
		let it = lid + u * THREADS;
		if ((BR * KC / 4u) % THREADS == 0u || it < BR * KC / 4u) {
			if (GPU == 1u) {
				stage[sb][it / BR4][it % BR4] = fq[u];   // transposed by load_qt
			} else {
				let row = it % BR;
				let c4 = it / BR;
				// @unroll
				for (var e = 0u; e < 4u; e++) {
					stage[sb][4u * c4 + e][row / 4u][row % 4u] = fq[u][e];
				}
			}
		}
	}
	// @unroll
	for (var u = 0u; u < K_FETCHES; u++) {
		let it = lid + u * THREADS;
		if ((BC * CHUNK_LOADS) % THREADS == 0u || it < BC * CHUNK_LOADS) {
			// @unroll
			for (var w = 0u; w < LOAD_VEC4S; w++) {
				store_operand(sb, BR4, chunk_row(it, BC), LOAD_VEC4S * chunk_col(it, BC) + w, BC, ld(pick(fk[u], w)));
			}
		}
	}
}

// store_v writes a fetched V chunk (VC x D) into stage[sb].
fn store_v(sb: u32, lid: u32, fv: array<LDV, V_FETCHES>) {
	// @unroll
	for (var u = 0u; u < V_FETCHES; u++) {
		let it = lid + u * THREADS;
		if ((VC * ROW_LOADS) % THREADS == 0u || it < VC * ROW_LOADS) {
			// @unroll
			for (var w = 0u; w < LOAD_VEC4S; w++) {
				// @if V_UNFOLDED
				stage[sb][it / ROW_LOADS][LOAD_VEC4S * (it % ROW_LOADS) + w] = ld(pick(fv[u], w));
				// @end
				// @if V_FOLDED
				let row = it / ROW_LOADS;
				stage[sb][row % STAGE_ROWS][(row / STAGE_ROWS) * DV4 + LOAD_VEC4S * (it % ROW_LOADS) + w] = ld(pick(fv[u], w));
				// @end
			}
		}
	}
}
