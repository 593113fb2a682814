// tc_bwd.wgsl: FlashAttention-2 backward on subgroup matrices (tensor cores),
// with dS stored between a key-block-major and a query-block-major kernel.
//
// Entry points, in the order the host runs them:
//
//   delta_main  Delta[h, i] = rowsum(dO_i ∘ O_i) for every query row and head,
//               stored beside LSE·log2e (one 8-byte load per query later).
//   dkv_main    key-block-major, per pass over a group of KV heads: a
//               workgroup owns BKV key rows of one KV head and streams the
//               query rows that see them, for every query head of its GQA
//               group, in steps of BQ. Per step: Sᵀ = K Qᵀ and dPᵀ = V dOᵀ,
//               then P = exp2(Sᵀ·scale·log2e − LSE·log2e) and
//               dS = P ∘ (dP − Delta) on the lanes, then dV += Pᵀ dO and
//               dK += dSᵀ Q; each dS tile (f16) is also written to a scratch
//               buffer. dK = scale · dK and dV are written at the end.
//   dq_main     query-block-major: dQ = scale · dS K for BQD query rows of one
//               head, from the stored tiles, over the key blocks they see.
//
// Every result has one writer and a fixed order of additions: no atomics,
// the same bits on every run. Storing dS makes five products per step pair
// instead of seven (dq_main would otherwise recompute S and dP), for one
// write and one read of 2 bytes per visible query-key pair and head.
//
// dkv_main's subgroups work in pairs over M key rows: one subgroup (role
// 0) holds the rows' K as left fragments, computes Sᵀ and accumulates dV;
// the other (role 1) holds V, computes dPᵀ and accumulates dK. Both
// element-wise tiles (Sᵀ, dPᵀ: f32) and both product operands (Pᵀ, dSᵀ:
// f16) live in workgroup memory per pair; the 2·SG lanes of a pair share
// the element-wise step, EPL elements each (runs of keys of a query). A step's Q and dO
// rows are staged in qo, fetched one step ahead into registers; four
// barriers per step (after the products, after the element-wise step,
// after the accumulating products, after the next rows are stored).
//
// dS tile (h, query step i, key block j) lies at (h − first query head of
// the pass)·ds_tiles + poff[i] + j tiles from the start of ds, where query
// step i counts the BQ-row steps of all segments (qoff[b] is segment b's
// first) and poff[i] is the step's first tile among one head's; poff has
// one more entry, so poff[i+1] − poff[i] is the number of key blocks step i
// sees. A tile holds dS: BQ rows (queries) of BKV halves (keys), so that
// dq_main loads its left operand row-major, pairs of halves at a time.
// Entries no query sees are 0: dq_main needs no mask.
//
// Q, K, V and dO are f16 (vec4<u32>: 8 halves a load); O and dO as the
// call stores them (IN16 or IN32) in delta_main; dQ, dK and dV are written
// as OT. LSE, Delta, the softmax and the accumulation are f32.
//
// Generated constants (tc_bwd.go), beside tc_fwd.wgsl's D, DP, DV8, PADD,
// M, N, K, SG, KS, LPR, RPL, RSTEP, CW, CWL, NCH, NFC:
//   NP, NT, BKV   dkv_main: subgroup pairs, invocations (2*NP*SG), key rows
//   BQ            query rows per step and per dS tile
//   NQS, NTQ, BQD dq_main: subgroups, invocations, query rows
//   TSW, PTW      row strides of the Sᵀ/dPᵀ tiles (floats) and Pᵀ/dSᵀ (halves)
//   QON, TTN, PDN sizes of qo, tt, pd
//   NDK, NDN      d-chunks of K (resident fragments), column fragments of N
//   NQN, NQK      query fragments of N (Sᵀ columns), query chunks of K
//   NKK           key chunks of K in dq_main's dS K
//   EPL, EPW      elements (and u32 words of dS) per lane in the
//                 element-wise step
//   KR2, NKR, LDR resident rows staged in rounds of KR2 = 2*BQ rows of
//                 [K rows; V rows], NKR rounds, LDR loads per invocation
//   LDQ, LDL      loads per invocation of a step's Q (or dO) rows and LSE
//   CWQ, CWQL, NCHQ, NFCQ, QSW, DQN  dq_main's output chunks through dqs
//   SKN, LDKQ     dq_main's K block (BKV rows) and its loads per invocation
//   DWG           delta_main's workgroup size

struct Params {
	hq: u32,            // query heads
	group: u32,         // Hq / Hkv
	total_q: u32,       // rows of Q; the stride of LSE and Delta
	causal: u32,        // 1: bottom-right aligned causal mask
	batch: u32,         // segments
	hkv: u32,           // KV heads
	nrows: u32,         // total_q * hq: invocations of delta_main
	delta_grid_x: u32,  // delta_main workgroups along x
	kv_ntiles: u32,     // key blocks in the dkv_main tile table
	kv_grid_y: u32,     // dkv_main workgroups along y; tile = wg.y + wg.z * kv_grid_y
	kv_off: u32,        // offset of the dkv_main tile table (segment, k0) in segs
	scale_log2: f32,    // softmax_scale * log2(e)
	dq_ntiles: u32,     // query blocks in the dq_main tile table
	dq_grid_y: u32,
	dq_off: u32,        // offset of the dq_main tile table (segment, q0) in segs
	scale: f32,         // softmax_scale
	hk0: u32,           // the pass's first KV head
	ds_tiles: u32,      // dS tiles per query head
	qoff_off: u32,      // offset of qoff in segs
	poff_off: u32,      // offset of poff in segs
	log2e: f32,         // log2(e)
	_pad0: u32,
	_pad1: u32,
	_pad2: u32,
}

@group(0) @binding(0) var<uniform> P: Params;

// delta_main's bindings.
// @if IN16
@group(0) @binding(1) var<storage, read> dl_o: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> dl_do: array<vec4<u32>>;
// @end
// @if IN32
@group(0) @binding(1) var<storage, read> dl_o: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> dl_do: array<vec4<f32>>;
// @end
@group(0) @binding(3) var<storage, read> dl_lse: array<f32>;
// ld[h * total_q + row] = (LSE·log2e, Delta): what dkv_main reads per query.
@group(0) @binding(4) var<storage, read_write> dl_ld: array<vec2<f32>>;

// dkv_main's bindings. segs = cu_seqlens_q ++ cu_seqlens_k ++ the dkv_main
// tile table ++ the dq_main tile table ++ qoff ++ poff.
@group(0) @binding(1) var<storage, read> segs: array<u32>;
@group(0) @binding(2) var<storage, read> q: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> k: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> v: array<vec4<u32>>;
@group(0) @binding(5) var<storage, read> dob: array<vec4<u32>>;
@group(0) @binding(6) var<storage, read> ld: array<vec2<f32>>;
@group(0) @binding(7) var<storage, read_write> dk: array<OT>;
@group(0) @binding(8) var<storage, read_write> dv: array<OT>;
@group(0) @binding(9) var<storage, read_write> ds: array<u32>;

// dq_main's bindings.
@group(0) @binding(1) var<storage, read> dq_segs: array<u32>;
@group(0) @binding(2) var<storage, read> dq_k: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> dq_ds: array<f16>;
@group(0) @binding(4) var<storage, read_write> dq: array<OT>;

// dkv_main's workgroup memory. qo: Q rows 0..BQ-1 and dO rows BQ..2BQ-1 of
// the step (stride KS); before the loop, rounds of [K rows; V rows]. tt:
// per pair, Sᵀ (role 0) then dPᵀ (role 1), M x BQ each (stride TSW); the
// output chunks at the end. pd: per pair, Pᵀ then dSᵀ (stride PTW). ldl:
// the step's LSE·log2e (0..BQ-1) and Delta (BQ..2BQ-1).
var<workgroup> qo: array<f16, QON>;
var<workgroup> tt: array<f32, TTN>;
var<workgroup> pd: array<f16, PDN>;
var<workgroup> ldl: array<f32, KR2>;

// dq_main's: a K block (stride KS) and each subgroup's dQ chunk.
var<workgroup> sk: array<f16, SKN>;
var<workgroup> dqs: array<f32, DQN>;

@compute @workgroup_size(DWG)
fn delta_main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
	let i = (wg.x + wg.y * P.delta_grid_x) * DWG + lid;   // row * hq + head
	if (i >= P.nrows) {
		return;
	}
	var s = 0.0;
	// @if IN16
	for (var c = 0u; c < DV8; c++) {
		let a = dl_o[i * DV8 + c];
		let g = dl_do[i * DV8 + c];
		// @unroll
		for (var j = 0u; j < 4u; j++) {
			s += dot(unpack2x16float(a[j]), unpack2x16float(g[j]));
		}
	}
	// @end
	// @if IN32
	for (var c = 0u; c < 2u * DV8; c++) {
		s += dot(dl_o[i * 2u * DV8 + c], dl_do[i * 2u * DV8 + c]);
	}
	// @end
	let at = (i % P.hq) * P.total_q + i / P.hq;
	dl_ld[at] = vec2<f32>(dl_lse[at] * P.log2e, s);
}

@compute @workgroup_size(NT)
fn dkv_main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32,
            @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {
	let hk = P.hk0 + wg.x;
	let tile = wg.y + wg.z * P.kv_grid_y;
	if (tile >= P.kv_ntiles) {
		return;
	}

	// Stage 0: the key block, its segment, and the query steps that see it:
	// from the step holding the first query that sees key k0 (causal) to
	// the end, for each query head of the group.
	let e = P.kv_off + 2u * tile;
	let b = segs[e];
	let k0 = segs[e + 1u];
	let q_start = segs[b];
	let q_len = segs[b + 1u] - q_start;
	let k_start = segs[P.batch + 1u + b];
	let k_len = segs[P.batch + 2u + b] - k_start;
	let delta = i32(k_len) - i32(q_len);
	var qfirst = 0u;
	if (P.causal == 1u) {
		qfirst = u32(clamp(i32(k0) - delta, 0, i32(q_len)));
	}
	let qs0 = qfirst - qfirst % BQ;
	let nsteps = select(0u, (q_len - qs0 + BQ - 1u) / BQ, qfirst < q_len);
	let total = P.group * nsteps;
	let gq = segs[P.qoff_off + b];   // the segment's first query step

	let pair = sg / 2u;
	let role = sg % 2u;
	let krow0 = pair * M;                       // the pair's rows in the block
	let tbase = (2u * pair + role) * M * TSW;   // the subgroup's Sᵀ or dPᵀ tile
	let pt0 = 2u * pair * M * PTW;              // the pair's Pᵀ; its dSᵀ follows
	let tp0 = 2u * pair * M * TSW;              // the pair's Sᵀ; its dPᵀ follows

	// @if PADD
	for (var i = lid; i < 2u * BQ * (DP - D); i += NT) {
		qo[(i / (DP - D)) * KS + D + i % (DP - D)] = 0.0h;
	}
	// @end

	// Stage 1: the resident fragments, K rows for role 0 and V rows for
	// role 1, staged through qo in rounds of KR2 rows of [K rows; V rows].
	var rf: array<QL, NDK>;
	for (var rr = 0u; rr < NKR; rr++) {
		stage_kv(k_start, k_len, k0, rr * KR2, hk, lid);
		workgroupBarrier();
		let r0 = role * BKV + krow0;
		if (r0 / KR2 == rr) {
			// @unroll
			for (var dk = 0u; dk < NDK; dk++) {
				rf[dk] = subgroupMatrixLoad<QL, row_major>(&qo, (r0 % KR2) * KS + dk * K, KS);
			}
		}
		workgroupBarrier();
	}

	// The first step's rows go to qo now; the next step's wait in registers.
	var rq = fetch_q(q_start, q_len, qs0, hk, nsteps, total, 0u, lid);
	var rd = fetch_do(q_start, q_len, qs0, hk, nsteps, total, 0u, lid);
	var rl = fetch_ld(q_start, q_len, qs0, hk, nsteps, total, 0u, lid);
	store_step(lid, rq, rd, rl);
	rq = fetch_q(q_start, q_len, qs0, hk, nsteps, total, 1u, lid);
	rd = fetch_do(q_start, q_len, qs0, hk, nsteps, total, 1u, lid);
	rl = fetch_ld(q_start, q_len, qs0, hk, nsteps, total, 1u, lid);
	workgroupBarrier();

	var acc: array<SA, NDN>;   // dV (role 0) or dK (role 1), before the scale
	// @unroll
	for (var f = 0u; f < NDN; f++) {
		acc[f] = SA();
	}
	for (var s = 0u; s < total; s++) {
		let h = hk * P.group + s / nsteps;
		let qs = qs0 + (s % nsteps) * BQ;

		// Stage 2: Sᵀ = K Qᵀ (role 0) or dPᵀ = V dOᵀ (role 1); Qᵀ and dOᵀ
		// are the staged rows read column-major.
		// @unroll
		for (var nt = 0u; nt < NQN; nt++) {
			var c = SA();
			// @unroll
			for (var dk = 0u; dk < NDK; dk++) {
				let x = subgroupMatrixLoad<KR, col_major>(&qo, (role * BQ + nt * N) * KS + dk * K, KS);
				c = subgroupMatrixMultiplyAccumulate(rf[dk], x, c);
			}
			subgroupMatrixStore<row_major>(&tt, tbase + nt * N, c, TSW);
		}
		workgroupBarrier();

		// Stage 3: P and dS on the pair's 2·SG lanes, EPL elements each,
		// numbered query-major (element e is key e % M of query e / M), so
		// that a lane's pairs of elements are neighbours in a stored dS row;
		// masked pairs get P = 0 and dS = 0 exactly, whatever NaN or Inf
		// their S or dP hold (an LSE of +Inf, a row that sees no key, gives
		// P = 0; a NaN LSE gives NaN).
		let e0 = (role * SG + lane) * EPL;
		var words: array<u32, EPW>;
		// @unroll
		for (var j = 0u; j < EPW; j++) {
			let c = (e0 + 2u * j) / M;      // the query of the pair of elements
			let r = (e0 + 2u * j) % M;      // and its first key row
			let qi = qs + c;
			var dw = vec2<f16>();
			// @unroll
			for (var u = 0u; u < 2u; u++) {
				let key = k0 + krow0 + r + u;
				var ok = qi < q_len && key < k_len;
				if (P.causal == 1u) {
					ok = ok && i32(key) <= i32(qi) + delta;
				}
				let p = select(0.0, exp2(tt[tp0 + (r + u) * TSW + c] * P.scale_log2 - ldl[c]), ok);
				let dsv = select(0.0, p * (tt[tp0 + (M + r + u) * TSW + c] - ldl[BQ + c]), ok);
				dw[u] = f16(dsv);
				pd[pt0 + (r + u) * PTW + c] = f16(p);
				pd[pt0 + (M + r + u) * PTW + c] = dw[u];
			}
			words[j] = bitcast<u32>(dw);
		}
		// The tile's row c holds dS of query qs + c against the block's keys.
		let ti = (h - P.hk0 * P.group) * P.ds_tiles + segs[P.poff_off + gq + qs / BQ] + k0 / BKV;
		// @unroll
		for (var j = 0u; j < EPW; j++) {
			let c = (e0 + 2u * j) / M;
			let r = (e0 + 2u * j) % M;
			ds[(ti * BQ * BKV + c * BKV + krow0 + r) / 2u] = words[j];
		}
		workgroupBarrier();

		// Stage 4: dV += Pᵀ dO (role 0) or dK += dSᵀ Q (role 1), over query
		// chunks of K.
		// @unroll
		for (var kc = 0u; kc < NQK; kc++) {
			let lf = subgroupMatrixLoad<QL, row_major>(&pd, pt0 + role * M * PTW + kc * K, PTW);
			// @unroll
			for (var nt = 0u; nt < NDN; nt++) {
				let x = subgroupMatrixLoad<KR, row_major>(&qo, ((1u - role) * BQ + kc * K) * KS + nt * N, KS);
				acc[nt] = subgroupMatrixMultiplyAccumulate(lf, x, acc[nt]);
			}
		}
		workgroupBarrier();

		// Stage 5: the next step's rows into qo; fetch the ones after.
		store_step(lid, rq, rd, rl);
		rq = fetch_q(q_start, q_len, qs0, hk, nsteps, total, s + 2u, lid);
		rd = fetch_do(q_start, q_len, qs0, hk, nsteps, total, s + 2u, lid);
		rl = fetch_ld(q_start, q_len, qs0, hk, nsteps, total, s + 2u, lid);
		workgroupBarrier();
	}

	// Stage 6: dV and dK = scale · dK through the subgroup's tile, CW
	// columns at a time; rows past the segment are not written.
	let fac = select(1.0, P.scale, role == 1u);
	let lrow = lane / LPR;
	let lcol = lane % LPR;
	// @unroll
	for (var ch = 0u; ch < NCH; ch++) {
		// @unroll
		for (var f = 0u; f < NFC; f++) {
			subgroupMatrixStore<row_major>(&tt, tbase + f * N, acc[ch * NFC + f], TSW);
		}
		workgroupBarrier();
		// @unroll
		for (var i = 0u; i < RPL; i++) {
			let rr = lrow + i * RSTEP;
			let kr = k0 + krow0 + rr;
			if (kr < k_len) {
				let o = ((k_start + kr) * P.hkv + hk) * D;
				// @unroll
				for (var c = 0u; c < CWL; c++) {
					let d = ch * CW + c * LPR + lcol;
					if (DP == D || d < D) {
						let val = OT(tt[tbase + rr * TSW + c * LPR + lcol] * fac);
						if (role == 0u) {
							dv[o + d] = val;
						} else {
							dk[o + d] = val;
						}
					}
				}
			}
		}
		workgroupBarrier();
	}
}

// stage_kv stores rows r0..r0+KR2-1 of [the block's K rows; its V rows]
// into qo (zeros past the segment or the block).
fn stage_kv(k_start: u32, k_len: u32, k0: u32, r0: u32, hk: u32, lid: u32) {
	// @unroll
	for (var u = 0u; u < LDR; u++) {
		let it = lid + u * NT;
		let row = it / DV8;
		if ((KR2 * DV8) % NT == 0u || it < KR2 * DV8) {
			let g = r0 + row;   // row of [K; V]
			let kr = k0 + g % BKV;
			var w = vec4<u32>();
			if (g < 2u * BKV && kr < k_len) {
				let at = ((k_start + kr) * P.hkv + hk) * DV8 + it % DV8;
				if (g < BKV) {
					w = k[at];
				} else {
					w = v[at];
				}
			}
			put8(row * KS + 8u * (it % DV8), w);
		}
	}
}

// fetch_q and fetch_do read the rows of step s (query head hk*group +
// s/nsteps, rows qs0 + (s % nsteps)*BQ ..) into registers; zeros past the
// segment or the last step.
fn fetch_q(q_start: u32, q_len: u32, qs0: u32, hk: u32, nsteps: u32, total: u32, s: u32, lid: u32) -> array<vec4<u32>, LDQ> {
	var f: array<vec4<u32>, LDQ>;
	let h = hk * P.group + s / max(nsteps, 1u);
	let qs = qs0 + (s % max(nsteps, 1u)) * BQ;
	// @unroll
	for (var u = 0u; u < LDQ; u++) {
		let it = lid + u * NT;
		let row = it / DV8;
		f[u] = vec4<u32>();
		if (((BQ * DV8) % NT == 0u || it < BQ * DV8) && s < total && qs + row < q_len) {
			f[u] = q[((q_start + qs + row) * P.hq + h) * DV8 + it % DV8];
		}
	}
	return f;
}

fn fetch_do(q_start: u32, q_len: u32, qs0: u32, hk: u32, nsteps: u32, total: u32, s: u32, lid: u32) -> array<vec4<u32>, LDQ> {
	var f: array<vec4<u32>, LDQ>;
	let h = hk * P.group + s / max(nsteps, 1u);
	let qs = qs0 + (s % max(nsteps, 1u)) * BQ;
	// @unroll
	for (var u = 0u; u < LDQ; u++) {
		let it = lid + u * NT;
		let row = it / DV8;
		f[u] = vec4<u32>();
		if (((BQ * DV8) % NT == 0u || it < BQ * DV8) && s < total && qs + row < q_len) {
			f[u] = dob[((q_start + qs + row) * P.hq + h) * DV8 + it % DV8];
		}
	}
	return f;
}

// fetch_ld reads LSE·log2e and Delta of the rows of step s.
fn fetch_ld(q_start: u32, q_len: u32, qs0: u32, hk: u32, nsteps: u32, total: u32, s: u32, lid: u32) -> array<vec2<f32>, LDL> {
	var f: array<vec2<f32>, LDL>;
	let h = hk * P.group + s / max(nsteps, 1u);
	let qs = qs0 + (s % max(nsteps, 1u)) * BQ;
	// @unroll
	for (var u = 0u; u < LDL; u++) {
		let it = lid + u * NT;
		f[u] = vec2<f32>();
		if ((BQ % NT == 0u || it < BQ) && s < total && qs + it < q_len) {
			let at = h * P.total_q + q_start + qs + it;
			f[u] = ld[at];
		}
	}
	return f;
}

// store_step writes a step's fetched rows into qo and ldl.
fn store_step(lid: u32, rq: array<vec4<u32>, LDQ>, rd: array<vec4<u32>, LDQ>, rl: array<vec2<f32>, LDL>) {
	// @unroll
	for (var u = 0u; u < LDQ; u++) {
		let it = lid + u * NT;
		if ((BQ * DV8) % NT == 0u || it < BQ * DV8) {
			let at = (it / DV8) * KS + 8u * (it % DV8);
			put8(at, rq[u]);
			put8(BQ * KS + at, rd[u]);
		}
	}
	// @unroll
	for (var u = 0u; u < LDL; u++) {
		let it = lid + u * NT;
		if (BQ % NT == 0u || it < BQ) {
			ldl[it] = rl[u].x;
			ldl[BQ + it] = rl[u].y;
		}
	}
}

// put8 stores the 8 halves of w at qo[at..at+7].
fn put8(at: u32, w: vec4<u32>) {
	// @unroll
	for (var j = 0u; j < 4u; j++) {
		let p = bitcast<vec2<f16>>(w[j]);
		qo[at + 2u * j] = p.x;
		qo[at + 2u * j + 1u] = p.y;
	}
}

@compute @workgroup_size(NTQ)
fn dq_main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32,
           @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {
	let hr = wg.x;                  // query head within the pass
	let h = P.hk0 * P.group + hr;
	let hk = h / P.group;
	let tile = wg.y + wg.z * P.dq_grid_y;
	if (tile >= P.dq_ntiles) {
		return;
	}

	// Stage 0: the block, and the key blocks its steps see (poff's
	// differences); the block's last step sees the most.
	let e = P.dq_off + 2u * tile;
	let b = dq_segs[e];
	let q0 = dq_segs[e + 1u];
	let q_start = dq_segs[b];
	let q_len = dq_segs[b + 1u] - q_start;
	let k_start = dq_segs[P.batch + 1u + b];
	let k_len = dq_segs[P.batch + 2u + b] - k_start;
	let gq = dq_segs[P.qoff_off + b];
	let last = gq + (min(q0 + BQD, q_len) - 1u) / BQ;
	let nkb = dq_segs[P.poff_off + last + 1u] - dq_segs[P.poff_off + last];
	let row0 = q0 + sg * M;         // the subgroup's first row
	var mynkb = 0u;                 // key blocks the subgroup's step sees
	var mytile = 0u;                // and its first tile
	if (row0 < q_len) {
		let st = gq + row0 / BQ;
		mytile = hr * P.ds_tiles + dq_segs[P.poff_off + st];
		mynkb = dq_segs[P.poff_off + st + 1u] - dq_segs[P.poff_off + st];
	}

	// @if PADD
	for (var i = lid; i < BKV * (DP - D); i += NTQ) {
		sk[(i / (DP - D)) * KS + D + i % (DP - D)] = 0.0h;
	}
	// @end

	var acc: array<SA, NDN>;
	// @unroll
	for (var f = 0u; f < NDN; f++) {
		acc[f] = SA();
	}
	var rk = fetch_kq(k_start, k_len, 0u, hk, lid);
	store_kq(lid, rk);
	rk = fetch_kq(k_start, k_len, BKV, hk, lid);
	workgroupBarrier();
	for (var j = 0u; j < nkb; j++) {
		// dQ += dS K, the dS rows straight from the stored tile.
		if (j < mynkb) {
			let tb = (mytile + j) * (BQ * BKV) + (row0 % BQ) * BKV;
			// @unroll
			for (var kc = 0u; kc < NKK; kc++) {
				let lf = subgroupMatrixLoad<QL, row_major>(&dq_ds, tb + kc * K, BKV);
				// @unroll
				for (var nt = 0u; nt < NDN; nt++) {
					let x = subgroupMatrixLoad<KR, row_major>(&sk, kc * K * KS + nt * N, KS);
					acc[nt] = subgroupMatrixMultiplyAccumulate(lf, x, acc[nt]);
				}
			}
		}
		workgroupBarrier();
		store_kq(lid, rk);
		rk = fetch_kq(k_start, k_len, (j + 2u) * BKV, hk, lid);
		workgroupBarrier();
	}

	// dQ = scale · acc through the subgroup's chunk of dqs.
	let lrow = lane / LPR;
	let lcol = lane % LPR;
	let qb = sg * M * QSW;
	// @unroll
	for (var ch = 0u; ch < NCHQ; ch++) {
		// @unroll
		for (var f = 0u; f < NFCQ; f++) {
			subgroupMatrixStore<row_major>(&dqs, qb + f * N, acc[ch * NFCQ + f], QSW);
		}
		workgroupBarrier();
		// @unroll
		for (var i = 0u; i < RPL; i++) {
			let rr = lrow + i * RSTEP;
			if (row0 + rr < q_len) {
				let o = ((q_start + row0 + rr) * P.hq + h) * D;
				// @unroll
				for (var c = 0u; c < CWQL; c++) {
					let d = ch * CWQ + c * LPR + lcol;
					if (DP == D || d < D) {
						dq[o + d] = OT(dqs[qb + rr * QSW + c * LPR + lcol] * P.scale);
					}
				}
			}
		}
		workgroupBarrier();
	}
}

// fetch_kq reads key rows kb..kb+BKV-1 of KV head hk for dq_main.
fn fetch_kq(k_start: u32, k_len: u32, kb: u32, hk: u32, lid: u32) -> array<vec4<u32>, LDKQ> {
	var f: array<vec4<u32>, LDKQ>;
	// @unroll
	for (var u = 0u; u < LDKQ; u++) {
		let it = lid + u * NTQ;
		let row = it / DV8;
		f[u] = vec4<u32>();
		if (((BKV * DV8) % NTQ == 0u || it < BKV * DV8) && kb + row < k_len) {
			f[u] = dq_k[((k_start + kb + row) * P.hkv + hk) * DV8 + it % DV8];
		}
	}
	return f;
}

// store_kq writes a fetched K block into sk.
fn store_kq(lid: u32, f: array<vec4<u32>, LDKQ>) {
	// @unroll
	for (var u = 0u; u < LDKQ; u++) {
		let it = lid + u * NTQ;
		if ((BKV * DV8) % NTQ == 0u || it < BKV * DV8) {
			let at = (it / DV8) * KS + 8u * (it % DV8);
			// @unroll
			for (var j = 0u; j < 4u; j++) {
				let p = bitcast<vec2<f16>>(f[u][j]);
				sk[at + 2u * j] = p.x;
				sk[at + 2u * j + 1u] = p.y;
			}
		}
	}
}
