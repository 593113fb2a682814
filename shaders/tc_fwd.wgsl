// tc_fwd.wgsl: FlashAttention-2 forward on subgroup matrices (tensor cores).
//
// A workgroup computes BR rows of O (and LSE) for one query head of one
// segment. Each of its NS subgroups owns RS = MT*M of those rows: it holds
// their Q as left matrix fragments for the whole key loop and accumulates
// their O in result fragments (f32). Keys and values stream through
// workgroup memory in tiles of BC rows (f16, the whole workgroup stages
// them); per tile a subgroup computes S = Q Kᵀ into its own f32 tile of
// workgroup memory, its lanes turn S into P = exp2(S·scale·log2e − m) as
// f16 in a second tile, and P V is added to O. The softmax runs on the
// lanes because fragments are opaque: no element of a fragment can be read.
//
// Online softmax with a lazy rescale: a row's running maximum m only
// moves when a tile's maximum exceeds it by more than TAU (log2 units), so
// P stays below 2^TAU (f16 and the f32 sums hold it easily) and O, which
// cannot be scaled row by row inside a fragment, is rescaled only then:
// its fragments make a round trip through workgroup memory. After the
// first tile that happens rarely. The decision is workgroup-uniform (the
// round trip needs barriers), made by one workgroupUniformLoad per tile.
//
// Three barriers per tile: after S is stored (the S tiles are visible, and
// every subgroup is done with the K tile and the previous V tile, so the
// next K tile and this V tile can be stored: their global fetches were
// issued one tile ahead, into registers); the uniform load of the rescale
// flags; after P is stored. The Q fragments are loaded once, through the
// same staging rows, in rounds of QR rows.
//
// Split-KV: a block with a long key range may be cut into pieces of
// P.piece keys (a multiple of BC), each its own workgroup, which writes
// its normalised O and its LSE to part; combine_main merges them.
//
// Q, K and V are f16, read 16 bytes (8 halves) at a time as vec4<u32>; O
// is written as OT (f16 or f32); LSE, the softmax and the accumulation are
// f32. Scores live in half the log2 domain, u = S·scale·log2(e)/2, where
// every score finite in f32 stays finite, and P = exp2(fma(u, 2, −2m)),
// which rounds as exp2(S·scale·log2e − m) would (rows with |m| >= 2^127,
// where −2m overflows, take exp2(u − m): there u − m is 0 or below −2^103,
// so P is 1 or 0 either way); masked scores are −Inf and get P = 0, and
// a row that has seen no key keeps m = −Inf and is exponentiated against
// 0, as in attn_fwd.wgsl.
//
// Generated constants (tc_fwd.go):
//   D, DP, DV8    head dimension, padded to whole matrix tiles, and D/8
//   PADD          1 when DP > D: the staging rows' columns D..DP-1 are zeroed
//   M, N, K       the matrix shape: QL is M×K, KR K×N, SA M×N
//   SG, NS, NT    subgroup size, subgroups per workgroup, NS*SG invocations
//   MT, RS, BR    M blocks per subgroup, its RS = MT*M rows, BR = NS*RS
//   BC            keys per tile
//   KS, SSW, PSW  row strides of kv (halves), the S tiles (floats), the P
//                 tiles (halves), padded against bank conflicts
//   NDK, NKN      d-chunks of K and key fragments of N in S = Q Kᵀ
//   NKK, NDN      key chunks of K and column fragments of N in O += P V
//   NQF, NOF      Q and O fragments a subgroup holds: MT*NDK and MT*NDN
//   LPR, LPRB     lanes sharing a row of the subgroup's tiles, and log2
//   RPL, RSTEP    rows per lane (lane/LPR + i*RSTEP) and RSTEP = SG/LPR
//   CPL, NSV      columns per lane of a key tile (c*LPR + lane%LPR), RPL*CPL
//   CW, CWL, NCH, NFC  O makes its round trips through the S tile in NCH
//                 chunks of CW columns: CWL per lane, NFC fragments each
//   LDK           16-byte loads per invocation of a K or V tile
//   QR, NQR, LDQ  Q staging rounds: QR = 2*BC rows, NQR rounds, LDQ loads

struct Params {
	hq: u32,          // query heads
	group: u32,       // Hq / Hkv
	total_q: u32,     // rows of Q and O; the stride of LSE
	causal: u32,      // 1: bottom-right aligned causal mask
	ntiles: u32,      // workgroups in the tile table
	grid_y: u32,      // workgroups along y; tile = wg.y + wg.z * grid_y
	batch: u32,       // segments
	tiles_off: u32,   // offset of the tile table in segs
	scale_log2: f32,  // softmax_scale * log2(e)
	hkv: u32,         // key/value heads
	piece: u32,       // keys per split-KV piece (a multiple of BC)
	comb_off: u32,    // offset of the combine table in segs
	ngroups: u32,     // split blocks in the combine table
	cgrid_y: u32,     // combine_main workgroups along y
	lse_off: u32,     // offset of the pieces' maxima and sums in part (floats)
	inf: u32,         // 0x7f800000, +Inf's bits: WGSL constant expressions cannot be infinite
}

@group(0) @binding(0) var<uniform> P: Params;
// segs = cu_seqlens_q [B+1] ++ cu_seqlens_k [B+1] ++ tile table (segment,
// q0, k0, slot) ++ combine table (segment, q0, first slot, pieces)
@group(0) @binding(1) var<storage, read> segs: array<u32>;
@group(0) @binding(2) var<storage, read> q: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> k: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> v: array<vec4<u32>>;
@group(0) @binding(5) var<storage, read_write> o: array<OT>;
@group(0) @binding(6) var<storage, read_write> lse: array<f32>;
// part: each piece's O (slot, head, row, d), then from lse_off its rows'
// maxima and sums (slot, head, row, then m and l).
@group(0) @binding(7) var<storage, read_write> part: array<f32>;

// combine_main binds its own operands; main uses none of these.
@group(0) @binding(1) var<storage, read> cmb_segs: array<u32>;
@group(0) @binding(2) var<storage, read> cmb_part: array<f32>;
@group(0) @binding(3) var<storage, read_write> cmb_o: array<OT>;
@group(0) @binding(4) var<storage, read_write> cmb_lse: array<f32>;

const NONE: u32 = 0xffffffffu;    // the slot of a block computed whole
const LN2: f32 = 0.6931471805599453;
const TAU: f32 = 8.0;             // lazy rescale threshold: P <= 2^TAU
const HUGE: f32 = 1.7014118e38;   // 2^127: rows whose maximum (half log2 domain) reaches it take exp2(u - m)

// kv holds the K tile (rows 0..BC-1) and the V tile (rows BC..2BC-1),
// row-major with stride KS; before the key loop, rounds of Q rows.
var<workgroup> kv: array<f16, KVN>;
// ss holds each subgroup's RS x BC tile of S (stride SSW), and O's round
// trips; ps each subgroup's tile of P (stride PSW).
var<workgroup> ss: array<f32, SSN>;
var<workgroup> ps: array<f16, PSN>;
var<workgroup> flags: array<u32, NS>;   // per subgroup: a row must rescale

@compute @workgroup_size(NT)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {
	let h = wg.x;
	let tile = wg.y + wg.z * P.grid_y;
	if (tile >= P.ntiles) {
		return;
	}
	let hk = h / P.group;

	// Stage 0: the block, its segment and the keys it sees (segs is indexed
	// by the workgroup id: the same for every invocation).
	let e = P.tiles_off + 4u * tile;
	let b = segs[e];
	let q_start = segs[b];
	let q_len = segs[b + 1u] - q_start;
	let k_start = segs[P.batch + 1u + b];
	let k_len = segs[P.batch + 2u + b] - k_start;
	let q0 = segs[e + 1u];
	let k0 = segs[e + 2u];
	let slot = segs[e + 3u];
	let delta = i32(k_len) - i32(q_len);   // bottom-right alignment
	var kv_end = k_len;
	if (P.causal == 1u) {
		kv_end = u32(clamp(i32(min(q0 + BR, q_len)) + delta, 0, i32(k_len)));
	}
	if (slot != NONE) {
		kv_end = min(kv_end, k0 + P.piece);   // a split-KV piece: keys k0..k0+piece-1
	}

	let lrow = lane / LPR;       // the lane's first row in the subgroup's tiles
	let lcol = lane % LPR;       // and its first column
	let sbase = sg * RS * SSW;   // the subgroup's S tile in ss
	let pbase = sg * RS * PSW;   // and its P tile in ps

	// @if PADD
	// The padding columns D..DP-1 take part in the products: zero them once.
	for (var i = lid; i < 2u * BC * (DP - D); i += NT) {
		kv[(i / (DP - D)) * KS + D + i % (DP - D)] = 0.0h;
	}
	// @end

	// Stage 1: load the subgroup's Q fragments (M x K chunks of its rows),
	// staged through kv in rounds of QR rows.
	var qf: array<QL, NQF>;
	for (var rr = 0u; rr < NQR; rr++) {
		stage_q(q_start, q_len, q0, rr * QR, h, lid);
		workgroupBarrier();
		// @unroll
		for (var mt = 0u; mt < MT; mt++) {
			let r0 = sg * RS + mt * M;
			if (r0 / QR == rr) {
				// @unroll
				for (var dk = 0u; dk < NDK; dk++) {
					qf[mt * NDK + dk] = subgroupMatrixLoad<QL, row_major>(&kv, (r0 % QR) * KS + dk * K, KS);
				}
			}
		}
		workgroupBarrier();
	}

	// The first K tile goes to kv now; the next K tile and the first V
	// tile wait in registers (rk, rv) until the first tile's S is stored.
	var rk = fetch_k(k_start, k0, kv_end, hk, lid);
	store_kv(0u, lid, rk);
	rk = fetch_k(k_start, k0 + BC, kv_end, hk, lid);
	var rv = fetch_v(k_start, k0, kv_end, hk, lid);
	workgroupBarrier();

	let ninf = -bitcast<f32>(P.inf);   // the score of a masked pair
	let scale_half = P.scale_log2 * 0.5;
	var m: array<f32, RPL>;      // running row maximum (half log2 domain), the same on a row's lanes
	var l: array<f32, RPL>;      // this lane's share of the running row sum
	// @unroll
	for (var i = 0u; i < RPL; i++) {
		m[i] = ninf;
		l[i] = 0.0;
	}
	var oacc: array<SA, NOF>;    // O: fragment mt*NDN + nt is rows mt*M.., columns nt*N..
	// @unroll
	for (var f = 0u; f < NOF; f++) {
		oacc[f] = SA();
	}
	var fresh = true;            // no P V added yet: O is zero and needs no rescale

	for (var kb = k0; kb < kv_end; kb += BC) {
		// Stage 2: S = Q Kᵀ, one key fragment column at a time; Kᵀ is K read
		// column-major.
		// @unroll
		for (var nt = 0u; nt < NKN; nt++) {
			var sacc: array<SA, MT>;
			// @unroll
			for (var mt = 0u; mt < MT; mt++) {
				sacc[mt] = SA();
			}
			// @unroll
			for (var dk = 0u; dk < NDK; dk++) {
				let kf = subgroupMatrixLoad<KR, col_major>(&kv, nt * N * KS + dk * K, KS);
				// @unroll
				for (var mt = 0u; mt < MT; mt++) {
					sacc[mt] = subgroupMatrixMultiplyAccumulate(qf[mt * NDK + dk], kf, sacc[mt]);
				}
			}
			// @unroll
			for (var mt = 0u; mt < MT; mt++) {
				subgroupMatrixStore<row_major>(&ss, sbase + mt * M * SSW + nt * N, sacc[mt], SSW);
			}
		}
		workgroupBarrier();

		// Stage 3: every subgroup is done with this K tile and the last V
		// tile: store the next K tile and this V tile, and fetch the ones
		// after them while the softmax runs.
		store_kv(0u, lid, rk);
		store_kv(BC * KS, lid, rv);
		rk = fetch_k(k_start, kb + 2u * BC, kv_end, hk, lid);
		rv = fetch_v(k_start, kb + BC, kv_end, hk, lid);

		// Stage 4: scale and mask the lane's scores and take the row maxima
		// (over the LPR lanes of a row). Only tiles that cross kv_end or the
		// causal diagonal of the block's first row need the mask.
		let whole = kb + BC <= kv_end && (P.causal == 0u || i32(kb + BC) <= i32(q0) + delta + 1);
		var sv: array<f32, NSV>;
		var mt_new: array<f32, RPL>;
		var need = false;
		// @unroll
		for (var i = 0u; i < RPL; i++) {
			let r = lrow + i * RSTEP;
			let qrow = i32(q0 + sg * RS + r);
			var mx = ninf;
			// @unroll
			for (var c = 0u; c < CPL; c++) {
				let col = c * LPR + lcol;
				var x = ss[sbase + r * SSW + col] * scale_half;
				if (!whole) {
					let key = kb + col;
					var ok = key < kv_end;
					if (P.causal == 1u) {
						ok = ok && i32(key) <= qrow + delta;
					}
					x = select(ninf, x, ok);
				}
				sv[i * CPL + c] = x;
				mx = max(mx, x);
			}
			mx = row_max(mx);
			mt_new[i] = mx;
			need = need || mx > m[i] + TAU * 0.5;
		}
		let sg_need = subgroupAny(need);
		if (lane == 0u) {
			flags[sg] = select(0u, 1u, sg_need);
		}
		let fl = workgroupUniformLoad(&flags);
		var rescale = false;
		// @unroll
		for (var s = 0u; s < NS; s++) {
			rescale = rescale || fl[s] != 0u;
		}

		// Stage 5: rows whose tile maximum exceeds m by more than TAU move m
		// there and scale their sum and O by alpha = exp2(2(m_old - m_new)).
		var alpha: array<f32, RPL>;
		// @unroll
		for (var i = 0u; i < RPL; i++) {
			alpha[i] = 1.0;
			if (mt_new[i] > m[i] + TAU * 0.5) {
				let mn = mt_new[i];
				let fa = select(2.0, 1.0, !(abs(mn) < HUGE));
				alpha[i] = exp2(fma(m[i], fa, mn * -fa));
				m[i] = mn;
			}
			l[i] *= alpha[i];
		}
		if (rescale && !fresh) {
			// O's round trip through the subgroup's S tile, CW columns at a
			// time (S is in registers now).
			// @unroll
			for (var ch = 0u; ch < NCH; ch++) {
				// @unroll
				for (var mt = 0u; mt < MT; mt++) {
					// @unroll
					for (var f = 0u; f < NFC; f++) {
						subgroupMatrixStore<row_major>(&ss, sbase + mt * M * SSW + f * N, oacc[mt * NDN + ch * NFC + f], SSW);
					}
				}
				workgroupBarrier();
				// @unroll
				for (var i = 0u; i < RPL; i++) {
					let r = lrow + i * RSTEP;
					// @unroll
					for (var c = 0u; c < CWL; c++) {
						ss[sbase + r * SSW + c * LPR + lcol] *= alpha[i];
					}
				}
				workgroupBarrier();
				// @unroll
				for (var mt = 0u; mt < MT; mt++) {
					// @unroll
					for (var f = 0u; f < NFC; f++) {
						oacc[mt * NDN + ch * NFC + f] = subgroupMatrixLoad<SA, row_major>(&ss, sbase + mt * M * SSW + f * N, SSW);
					}
				}
				workgroupBarrier();
			}
		}

		// Stage 6: P = exp2(2(u - m)) as f16 into the subgroup's P tile (a
		// row without a key yet against 0); the row sums add the rounded
		// values, the ones P V multiplies.
		// @unroll
		for (var i = 0u; i < RPL; i++) {
			let r = lrow + i * RSTEP;
			let ms = select(m[i], 0.0, bitcast<u32>(m[i]) == 0xff800000u);
			var ls = 0.0;
			if (abs(ms) < HUGE) {
				let mm2 = ms * -2.0;
				// @unroll
				for (var c = 0u; c < CPL; c++) {
					let p = f16(exp2(fma(sv[i * CPL + c], 2.0, mm2)));
					ps[pbase + r * PSW + c * LPR + lcol] = p;
					ls += f32(p);
				}
			} else {
				// -2m overflows (or m is NaN)
				// @unroll
				for (var c = 0u; c < CPL; c++) {
					let p = f16(exp2(sv[i * CPL + c] - ms));
					ps[pbase + r * PSW + c * LPR + lcol] = p;
					ls += f32(p);
				}
			}
			l[i] += ls;
		}
		workgroupBarrier();

		// Stage 7: O += P V, over key chunks of K; V is row-major.
		// @unroll
		for (var kc = 0u; kc < NKK; kc++) {
			var pf: array<QL, MT>;
			// @unroll
			for (var mt = 0u; mt < MT; mt++) {
				pf[mt] = subgroupMatrixLoad<QL, row_major>(&ps, pbase + mt * M * PSW + kc * K, PSW);
			}
			// @unroll
			for (var nt = 0u; nt < NDN; nt++) {
				let vf = subgroupMatrixLoad<KR, row_major>(&kv, (BC + kc * K) * KS + nt * N, KS);
				// @unroll
				for (var mt = 0u; mt < MT; mt++) {
					oacc[mt * NDN + nt] = subgroupMatrixMultiplyAccumulate(pf[mt], vf, oacc[mt * NDN + nt]);
				}
			}
		}
		fresh = false;
	}

	// Stage 8: the row sums over the lanes of a row, then O / l through the
	// S tile, CW columns at a time, and LSE = ln(sum exp(scaled S)) =
	// (m + log2(l)/2)·2ln2. l is positive and finite where the row saw a key
	// with a finite score, 0 where it saw none (or only -Inf scores), NaN
	// where it saw a NaN or +Inf score. A split-KV piece writes O (0 where
	// l = 0) and m and l themselves, for the merge; a whole block writes
	// O = 0 and LSE = +Inf for a row that sees no key (k_len = 0), NaN for
	// every other row without a positive l.
	let nan = bitcast<f32>(P.inf | 0x400000u);
	var inv: array<f32, RPL>;
	var ok: array<bool, RPL>;
	// @unroll
	for (var i = 0u; i < RPL; i++) {
		l[i] = row_sum(l[i]);
		ok[i] = bitcast<u32>(l[i]) - 1u < 0x7f7fffffu;   // 0 < l < +Inf, told by its bits
		let zero = select(k_len == 0u, bitcast<u32>(l[i]) == 0u, slot != NONE);
		inv[i] = select(select(nan, 0.0, zero), 1.0 / l[i], ok[i]);
	}
	// @unroll
	for (var ch = 0u; ch < NCH; ch++) {
		// @unroll
		for (var mt = 0u; mt < MT; mt++) {
			// @unroll
			for (var f = 0u; f < NFC; f++) {
				subgroupMatrixStore<row_major>(&ss, sbase + mt * M * SSW + f * N, oacc[mt * NDN + ch * NFC + f], SSW);
			}
		}
		workgroupBarrier();
		// @unroll
		for (var i = 0u; i < RPL; i++) {
			let r = lrow + i * RSTEP;
			let br = sg * RS + r;   // row of the block
			if (q0 + br < q_len) {
				// @unroll
				for (var c = 0u; c < CWL; c++) {
					let d = ch * CW + c * LPR + lcol;
					if (DP == D || d < D) {
						let val = ss[sbase + r * SSW + c * LPR + lcol] * inv[i];
						if (slot != NONE) {
							part[((slot * P.hq + h) * BR + br) * D + d] = val;
						} else {
							o[((q_start + q0 + br) * P.hq + h) * D + d] = OT(val);
						}
					}
				}
			}
		}
		workgroupBarrier();
	}
	// @unroll
	for (var i = 0u; i < RPL; i++) {
		let br = sg * RS + lrow + i * RSTEP;
		if (lcol == 0u && q0 + br < q_len) {
			if (slot != NONE) {
				let at = P.lse_off + 2u * ((slot * P.hq + h) * BR + br);
				part[at] = m[i];
				part[at + 1u] = l[i];
			} else {
				let none = select(nan, bitcast<f32>(P.inf), k_len == 0u);   // +Inf: a row that sees no key
				lse[h * P.total_q + q_start + q0 + br] = select(none, (m[i] + log2(l[i]) * 0.5) * (2.0 * LN2), ok[i]);
			}
		}
	}
}

// row_max and row_sum reduce over the LPR lanes that share a row.
fn row_max(x: f32) -> f32 {
	var y = x;
	// @unroll
	for (var i = 0u; i < LPRB; i++) {
		y = max(y, subgroupShuffleXor(y, 1u << i));
	}
	return y;
}

fn row_sum(x: f32) -> f32 {
	var y = x;
	// @unroll
	for (var i = 0u; i < LPRB; i++) {
		y += subgroupShuffleXor(y, 1u << i);
	}
	return y;
}

// stage_q stores query rows q0+r0 .. q0+r0+QR-1 of head h into kv (zeros
// past the segment or the block). Item it is vector it % DV8 of row it / DV8.
fn stage_q(q_start: u32, q_len: u32, q0: u32, r0: u32, h: u32, lid: u32) {
	// @unroll
	for (var u = 0u; u < LDQ; u++) {
		let it = lid + u * NT;
		let row = it / DV8;
		if ((QR * DV8) % NT == 0u || it < QR * DV8) {
			var w = vec4<u32>();
			if (r0 + row < BR && q0 + r0 + row < q_len) {
				w = q[((q_start + q0 + r0 + row) * P.hq + h) * DV8 + it % DV8];
			}
			put8(row * KS + 8u * (it % DV8), w);
		}
	}
}

// fetch_k and fetch_v read key (value) rows kb..kb+BC-1 of KV head hk into
// registers, zeros from row lim on (past the keys the block sees, or the
// segment), 16 bytes a load, consecutive invocations along a row.
fn fetch_k(k_start: u32, kb: u32, lim: u32, hk: u32, lid: u32) -> array<vec4<u32>, LDK> {
	var f: array<vec4<u32>, LDK>;
	// @unroll
	for (var u = 0u; u < LDK; u++) {
		let it = lid + u * NT;
		let row = it / DV8;
		f[u] = vec4<u32>();
		if (((BC * DV8) % NT == 0u || it < BC * DV8) && kb + row < lim) {
			f[u] = k[((k_start + kb + row) * P.hkv + hk) * DV8 + it % DV8];
		}
	}
	return f;
}

fn fetch_v(k_start: u32, kb: u32, lim: u32, hk: u32, lid: u32) -> array<vec4<u32>, LDK> {
	var f: array<vec4<u32>, LDK>;
	// @unroll
	for (var u = 0u; u < LDK; u++) {
		let it = lid + u * NT;
		let row = it / DV8;
		f[u] = vec4<u32>();
		if (((BC * DV8) % NT == 0u || it < BC * DV8) && kb + row < lim) {
			f[u] = v[((k_start + kb + row) * P.hkv + hk) * DV8 + it % DV8];
		}
	}
	return f;
}

// store_kv writes a fetched tile into kv from row base/KS on.
fn store_kv(base: u32, lid: u32, f: array<vec4<u32>, LDK>) {
	// @unroll
	for (var u = 0u; u < LDK; u++) {
		let it = lid + u * NT;
		if ((BC * DV8) % NT == 0u || it < BC * DV8) {
			put8(base + (it / DV8) * KS + 8u * (it % DV8), f[u]);
		}
	}
}

// put8 stores the 8 halves of w at kv[at..at+7].
fn put8(at: u32, w: vec4<u32>) {
	// @unroll
	for (var j = 0u; j < 4u; j++) {
		let p = bitcast<vec2<f16>>(w[j]);
		kv[at + 2u * j] = p.x;
		kv[at + 2u * j + 1u] = p.y;
	}
}

// combine_main merges the split-KV pieces of one query block for one head,
// as attn_fwd.wgsl's does: from each piece's row (m_s, l_s), by
// LSE_s = (m_s + log2(l_s)/2)·2ln2 below |m| 128 and by the weights
// l_s·exp2(2(m_s − m)) beyond; NaN where a piece is NaN or every piece has
// l = 0 (every row of a split block sees a key).
@compute @workgroup_size(64)
fn combine_main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
	let h = wg.x;
	let grp = wg.y + wg.z * P.cgrid_y;
	if (grp >= P.ngroups) {
		return;
	}
	let e = P.comb_off + 4u * grp;
	let b = cmb_segs[e];
	let q0 = cmb_segs[e + 1u];
	let first = cmb_segs[e + 2u];
	let n = cmb_segs[e + 3u];
	let q_start = cmb_segs[b];
	let rows = min(BR, cmb_segs[b + 1u] - q_start - q0);
	let ninf = -bitcast<f32>(P.inf);
	for (var it = lid; it < rows * D; it += 64u) {
		let r = it / D;
		let d = it % D;
		let row = q_start + q0 + r;
		var mx = ninf;
		var nan = false;
		for (var s = 0u; s < n; s++) {
			let ml = piece_ml(first + s, h, r);
			nan = nan || (bitcast<u32>(ml.y) & 0x7fffffffu) > 0x7f800000u;
			mx = max(mx, ml.x);
		}
		if (nan || bitcast<u32>(mx) == 0xff800000u) {
			let x = bitcast<f32>(P.inf | 0x400000u);
			cmb_o[(row * P.hq + h) * D + d] = OT(x);
			if (d == 0u) {
				cmb_lse[h * P.total_q + row] = x;
			}
			continue;
		}
		let exact = !(abs(mx) < 128.0);
		var top = mx;   // the weights' reference: mx, or the largest LSE_s
		if (!exact) {
			top = ninf;
			for (var s = 0u; s < n; s++) {
				top = max(top, piece_lse(piece_ml(first + s, h, r), ninf));
			}
		}
		var sum = 0.0;
		var acc = 0.0;
		for (var s = 0u; s < n; s++) {
			let ml = piece_ml(first + s, h, r);
			let w = select(exp(piece_lse(ml, ninf) - top), ml.y * exp2((ml.x - top) * 2.0), exact);
			sum += w;
			acc += w * cmb_part[(((first + s) * P.hq + h) * BR + r) * D + d];
		}
		cmb_o[(row * P.hq + h) * D + d] = OT(acc / sum);
		if (d == 0u) {
			cmb_lse[h * P.total_q + row] = select(top + log(sum), (top + log2(sum) * 0.5) * (2.0 * LN2), exact);
		}
	}
}

// piece_ml reads (m, l) of row r of piece slot for head h.
fn piece_ml(slot: u32, h: u32, r: u32) -> vec2<f32> {
	let at = P.lse_off + 2u * ((slot * P.hq + h) * BR + r);
	return vec2<f32>(cmb_part[at], cmb_part[at + 1u]);
}

// piece_lse is a piece's LSE_s from its (m, l): -Inf (ninf) where l = 0.
fn piece_lse(ml: vec2<f32>, ninf: f32) -> f32 {
	return select(ninf, (ml.x + log2(ml.y) * 0.5) * (2.0 * LN2), ml.y > 0.0);
}
