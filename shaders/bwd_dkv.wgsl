// dkv_main: a workgroup owns BR key rows of one KV head, streams the query
// rows that see them, for every query head of the GQA group, in steps of
// BC, and writes dV = Pᵀ dO and dK = scale · dSᵀ Q for its rows. With
// FUSED_DQ it also adds each step's dQ = dS K into dq_acc (see
// bwd_common.wgsl), with STORED_DS it stores each step's dS tile for
// dqs_main, with WRITES_WIDE_K it writes K as f32 for a WideK dqs_main.

@group(0) @binding(8) var<storage, read_write> dk_out: array<OV>;
@group(0) @binding(9) var<storage, read_write> dv_out: array<OV>;
// @if FUSED_DQ
@group(0) @binding(10) var<storage, read_write> dq_acc: array<atomic<u32>>;   // fixed-point dQ: hi words [Hq * total_q * D], then lo words [Hq * total_q * D/2]
// @end
// @if STORED_DS
@group(0) @binding(10) var<storage, read_write> ds_out: array<vec4<f32>>;     // stored dS tiles (see ds_at)
// @end
@group(0) @binding(11) var<storage, read_write> k_wide: array<vec4<f32>>;     // K as f32 (WRITES_WIDE_K; see widen_rows)

// Step is what the phases of one dkv_main step need: the key block t of KV
// head hk, the step's query head h and first query row qb, the invocation
// (lid, tx, ty), and whether it is the block's first step.
struct Step {
	t: Tile,
	h: u32,
	hk: u32,
	qb: u32,
	lid: u32,
	tx: u32,
	ty: u32,
	first: bool,
}

@compute @workgroup_size(THREADS)
fn dkv_main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
	let hk = wg.x + P.hk0;
	let tile = wg.y + wg.z * P.kv_grid_y;
	if (tile >= P.kv_tiles) {
		return;
	}
	let tx = lid % TX;
	let ty = lid / TX;

	let t = dkv_tile(tile);
	let dseg = i32(t.k_len) - i32(t.q_len);
	let h0 = hk * P.group;

	var acc_k: array<vec4<f32>, ACC_VEC4S>;   // acc_k[(4r + i) * ACC_COLS + j] is key 4(ty*RG+r)+i, vec4 column tx+TX*j
	var acc_v: array<vec4<f32>, ACC_VEC4S>;
	// @unroll
	for (var i = 0u; i < ACC_VEC4S; i++) {
		acc_k[i] = vec4<f32>(0.0);
		acc_v[i] = vec4<f32>(0.0);
	}

	// The block's K and V rows are the same for every step: with
	// ROWS_IN_REGS they are fetched once, into registers (ka, va: this
	// thread's share of every d-chunk, in the stored type), and only staged
	// again; fp.a is filled from them after each dkv_fetch.
	// @if ROWS_IN_REGS
	var ka: array<LDV, ROW_REGS>;
	var va: array<LDV, ROW_REGS>;
	// @unroll
	for (var c = 0u; c < D_CHUNKS; c++) {
		let a = dkv_fetch_rows(t, hk, lid, c, 0u);
		let b = dkv_fetch_rows(t, hk, lid, c, 1u);
		// @unroll
		for (var u = 0u; u < ROW_FETCHES; u++) {
			ka[c * ROW_FETCHES + u] = a[u];
			va[c * ROW_FETCHES + u] = b[u];
		}
	}
	// @end
	var fp = dkv_fetch(t, h0, hk, lid, t.c_first, 0u, 0u);
	// @if ROWS_IN_REGS
	// @unroll
	for (var u = 0u; u < ROW_FETCHES; u++) {
		fp.a[u] = ka[u];
	}
	// @end
	var fv: array<LDV, ACC_FETCHES>;
	var sb = 0u;
	store_pair(0u, lid, fp);
	// @if WRITES_WIDE_K
	widen_rows(t, hk, lid, 0u, fp.a);
	// @end
	workgroupBarrier();
	// Step it covers query head h0 + it / nqb, query rows qb..qb+BC-1;
	// (h_next, qb_next) is step it + 1.
	var h_next = h0;
	var qb_next = t.c_first;
	let qb_end = t.c_first + t.nqb * BC;
	for (var it = 0u; it < t.c_end; it++) {
		let h = h_next;
		let qb = qb_next;
		qb_next += BC;
		if (qb_next >= qb_end) {
			qb_next = t.c_first;
			h_next += 1u;
		}
		// @if STORED_DS
		// The step's dS tile goes to scratch for dqs_main (see ds_at).
		let ds_tile = (h - P.hk0 * P.group) * P.ds_tiles + segs[P.ds_tile_off + segs[P.ds_block_off + t.seg] + qb / BC] + t.r0 / BR;
		// @end
		var lse2 = vec4<f32>(bitcast<f32>(0x7f800000u));   // of the thread's 4 query columns, log2 domain; +Inf past the segment
		var dl = vec4<f32>(0.0);
		// @unroll
		for (var j = 0u; j < 4u; j++) {
			let qi = qb + 4u * tx + j;
			if (qi < t.q_len) {
				let idx = h * P.total_q + t.q_start + qi;
				lse2[j] = lse[idx] * LOG2E;
				dl[j] = dlt[idx];
			}
		}
		// @if FUSED_DQ
		// The fixed-point units of the query rows this thread adds into dQ
		// (softmax_scale times the row's 2^e), loaded long before add_dq.
		var units: array<vec4<f32>, RG>;
		// @unroll
		for (var r = 0u; r < RG; r++) {
			// @unroll
			for (var i = 0u; i < 4u; i++) {
				let qi = qb + 4u * (ty * RG + r) + i;
				if (qi < t.q_len) {
					units[r][i] = P.scale * dlt[P.n_rows + h * P.total_q + t.q_start + qi];
				}
			}
		}
		// @end

		// Sᵀ = K Qᵀ; then Pᵀ into pt, idle since the last barrier. Only steps
		// that cross the causal diagonal or the segment's end need the mask
		// (queries past the end have an LSE of +Inf, but their S may be NaN).
		let whole = (P.causal == 0u || i32(t.r0 + BR) <= i32(qb) + dseg + 1) && qb + BC <= t.q_len;
		let step = Step(t, h, hk, qb, lid, tx, ty, it == 0u);
		var s = dkv_product(0u, step, &sb, &fp, &fv,
			// @if ROWS_IN_REGS
			&ka,
			// @end
		);
		store_acc(sb, lid, fv);
		// @unroll
		for (var r = 0u; r < RG; r++) {
			var p: array<vec4<f32>, 4>;
			// @unroll
			for (var i = 0u; i < 4u; i++) {
				p[i] = exp2(s[4u * r + i] * P.scale_log2 - lse2);
				if (!whole) {
					p[i] = select(vec4<f32>(0.0), p[i], dkv_sees(t, 4u * (ty * RG + r) + i, qb + 4u * tx, dseg));
				}
			}
			put_tile(tx, ty * RG + r, p);
		}
		workgroupBarrier();

		// dV += Pᵀ dO over query chunks of VC; then the first chunk of dPᵀ.
		for (var cb = 0u; cb < BC; cb += VC) {
			if (cb + VC < BC) {
				fv = dkv_fetch_acc(t, h, lid, qb + cb + VC, 1u);
			} else {
				fp = dkv_fetch(t, h, hk, lid, qb, 0u, 1u);
				// @if ROWS_IN_REGS
				// @unroll
				for (var u = 0u; u < ROW_FETCHES; u++) {
					fp.a[u] = va[u];
				}
				// @end
			}
			acc_v = accumulate(sb, cb, tx, ty, acc_v);
			sb = 1u - sb;
			if (cb + VC < BC) {
				store_acc(sb, lid, fv);
			} else {
				store_pair(sb, lid, fp);
			}
			workgroupBarrier();
		}

		// dPᵀ = V dOᵀ; then dSᵀ = Pᵀ ∘ (dPᵀ − Delta) replaces Pᵀ in pt: every
		// thread reads and writes only its own entries, and the barriers
		// since the dV phase read pt keep them apart from it.
		var dp = dkv_product(1u, step, &sb, &fp, &fv,
			// @if ROWS_IN_REGS
			&va,
			// @end
		);
		store_acc(sb, lid, fv);
		// @unroll
		for (var r = 0u; r < RG; r++) {
			var p = get_tile(tx, ty * RG + r);
			// @unroll
			for (var i = 0u; i < 4u; i++) {
				p[i] *= dp[4u * r + i] - dl;
				if (!whole) {
					p[i] = select(vec4<f32>(0.0), p[i], dkv_sees(t, 4u * (ty * RG + r) + i, qb + 4u * tx, dseg));
				}
				// @if STORED_DS
				ds_out[ds_at(ds_tile, 4u * (ty * RG + r) + i, tx)] = p[i];
				// @end
			}
			put_tile(tx, ty * RG + r, p);
		}
		workgroupBarrier();

		// dK += dSᵀ Q over query chunks of VC; then the next step's first
		// chunk, or with FUSED_DQ the first key chunk of dQ.
		let next = it + 1u < t.c_end;
		for (var cb = 0u; cb < BC; cb += VC) {
			if (cb + VC < BC) {
				fv = dkv_fetch_acc(t, h, lid, qb + cb + VC, 0u);
			} else if (FUSED_DQ == 1u) {
				fv = dq_fetch_acc(t, hk, lid, t.r0);
			} else if (next) {
				fp = dkv_fetch(t, h_next, hk, lid, qb_next, 0u, 0u);
				// @if ROWS_IN_REGS
				// @unroll
				for (var u = 0u; u < ROW_FETCHES; u++) {
					fp.a[u] = ka[u];
				}
				// @end
			}
			acc_k = accumulate(sb, cb, tx, ty, acc_k);
			sb = 1u - sb;
			if (cb + VC < BC) {
				store_acc(sb, lid, fv);
			} else if (FUSED_DQ == 1u) {
				store_acc_cols(sb, lid, fv);
			} else if (next) {
				store_pair(sb, lid, fp);
			}
			workgroupBarrier();
		}
		if (FUSED_DQ == 0u) {
			continue;
		}

		// FUSED_DQ: dQ = dS K for the step's BC query rows over key chunks of
		// VC (the block's own keys, restaged each step); then the next
		// step's first chunk. Thread (tx, ty) holds queries 4(ty*RG+r)+i of
		// the step and, in acc_q[(4r + i) * ACC_COLS + j], the columns
		// tx + TX*(4j + e) (e < 4): the K chunks are staged in that order
		// (store_acc_cols), so that accumulate_t reads them as vec4s while
		// the threads of a row add into consecutive floats of dQ.
		var acc_q: array<vec4<f32>, ACC_VEC4S>;
		// @unroll
		for (var i = 0u; i < ACC_VEC4S; i++) {
			acc_q[i] = vec4<f32>(0.0);
		}
		for (var cb = 0u; cb < BR; cb += VC) {
			if (cb + VC < BR) {
				fv = dq_fetch_acc(t, hk, lid, t.r0 + cb + VC);
			} else if (next) {
				fp = dkv_fetch(t, h_next, hk, lid, qb_next, 0u, 0u);
				// @if ROWS_IN_REGS
				// @unroll
				for (var u = 0u; u < ROW_FETCHES; u++) {
					fp.a[u] = ka[u];
				}
				// @end
			}
			acc_q = accumulate_t(sb, cb, tx, ty, acc_q);
			sb = 1u - sb;
			if (cb + VC < BR) {
				store_acc_cols(sb, lid, fv);
			} else if (next) {
				store_pair(sb, lid, fp);
			}
			workgroupBarrier();
		}
		// @if FUSED_DQ
		add_dq(t, h, tx, ty, qb, acc_q, units);
		// @end
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
				for (var j = 0u; j < ACC_COLS; j++) {
					let d4 = tx + TX * j;
					if (d4 < DV4) {
						let idx = (row * P.hkv + hk) * DV4 + d4;
						dk_out[idx] = st(acc_k[(4u * r + i) * ACC_COLS + j] * P.scale);
						dv_out[idx] = st(acc_v[(4u * r + i) * ACC_COLS + j]);
					}
				}
			}
		}
	}
}

// dkv_product is a product phase of a step: the block's rows (K for sel 0,
// V for sel 1; from rows with ROWS_IN_REGS) times the step's query rows (Q,
// dO) transposed, over d-chunks of KC, each next chunk fetched while the one
// before it is used. It returns the thread's share of the tile, having
// fetched into *fv the first chunk of the accumulation phase that follows
// (dO for sel 0, Q for sel 1) and flipped *sb, but not staged it: the
// caller stages it and uses the tile before the barrier.
fn dkv_product(sel: u32, step: Step, sb: ptr<function, u32>, fp: ptr<function, PairFetch>, fv: ptr<function, array<LDV, ACC_FETCHES>>,
	// @if ROWS_IN_REGS
	rows: ptr<function, array<LDV, ROW_REGS>>,
	// @end
) -> array<vec4<f32>, RM> {
	var s: array<vec4<f32>, RM>;
	// @unroll
	for (var i = 0u; i < RM; i++) {
		s[i] = vec4<f32>(0.0);
	}
	// @if ROWS_IN_REGS
	// @unroll
	// @end
	for (var c = 0u; c < D_CHUNKS; c++) {
		if (c + 1u < D_CHUNKS) {
			*fp = dkv_fetch(step.t, step.h, step.hk, step.lid, step.qb, c + 1u, sel);
			// @if ROWS_IN_REGS
			// @unroll
			for (var u = 0u; u < ROW_FETCHES; u++) {
				(*fp).a[u] = (*rows)[(c + 1u) * ROW_FETCHES + u];
			}
			// @end
		} else {
			*fv = dkv_fetch_acc(step.t, step.h, step.lid, step.qb, 1u - sel);
		}
		s = products(*sb, step.tx, step.ty, s);
		*sb = 1u - *sb;
		if (c + 1u < D_CHUNKS) {
			store_pair(*sb, step.lid, *fp);
			// @if WRITES_WIDE_K
			if (sel == 0u && step.first) {
				widen_rows(step.t, step.hk, step.lid, c + 1u, (*fp).a);
			}
			// @end
			workgroupBarrier();
		}
	}
	return s;
}

// dkv_sees tells which of the queries q..q+3 (of the segment) see key row
// kr of the block: those before the segment's end, and with the causal
// mask those on or past the key's diagonal.
fn dkv_sees(t: Tile, kr: u32, q: u32, dseg: i32) -> vec4<bool> {
	let qi = vec4<u32>(q) + vec4<u32>(0u, 1u, 2u, 3u);
	var ok = qi < vec4<u32>(t.q_len);
	if (P.causal == 1u) {
		ok = ok & (vec4<i32>(i32(t.r0 + kr)) <= vec4<i32>(qi) + vec4<i32>(dseg));
	}
	return ok;
}

// dkv_tile reads the key block of tile table entry tile, as dq_tile does.
fn dkv_tile(tile: u32) -> Tile {
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
	if (STORED_DS == 1u) {
		first = first / BC * BC;   // steps on dqs_main's query blocks, where the dS tiles are stored
	}
	let nqb = (ql - first + BC - 1u) / BC;
	return Tile(qs, ql, ks, kl, k0, first, P.group * nqb, nqb, b);
}

// ds_at is where vec4 g (query columns 4g..4g+3) of key row key of stored dS
// tile `tile` lies: tiles of BC key rows by PT_STRIDE vec4s, each laid out
// as pt is in dqs_main (pt_col's swizzle), so that dqs_main copies them
// flat. dkv_main writes them with its rows (keys) and columns (queries) the
// other way round, which needs BR = BC.
fn ds_at(tile: u32, key: u32, g: u32) -> u32 {
	return (tile * BC + key) * PT_STRIDE + pt_col(key, g);
}

// accumulate_t is accumulate with the tile in pt read the other way round
// (BR = BC): it adds rows cb..cb+VC-1 of the tile, taken as columns, times
// the VC rows of the operand staged at sb. Each 4 x 4 block of the tile is
// read as 4 vec4s and used for 4 staged rows, so it costs as many
// workgroup-memory reads per FMA as accumulate.
fn accumulate_t(sb: u32, cb: u32, tx: u32, ty: u32, acc_in: array<vec4<f32>, ACC_VEC4S>) -> array<vec4<f32>, ACC_VEC4S> {
	var acc = acc_in;
	// @unroll
	for (var c4 = 0u; c4 < VC4; c4++) {
		// w[4r + i]: row 4(ty*RG+r)+i of the product against the tile's
		// rows cb+4c4..cb+4c4+3 (one row group of pt).
		var w: array<vec4<f32>, RM>;
		// @unroll
		for (var r = 0u; r < RG; r++) {
			// @unroll
			for (var i = 0u; i < 4u; i++) {
				w[4u * r + i] = pt[4u * (ty * RG + r) + i][pt_col(4u * (ty * RG + r) + i, cb / 4u + c4)];
			}
		}
		// @unroll
		for (var e = 0u; e < 4u; e++) {
			// @unroll
			for (var j = 0u; j < ACC_COLS; j++) {
				let d4 = tx + TX * j;
				if (DV4 % TX == 0u || d4 < DV4) {
					let x = stage[sb][4u * c4 + e][d4];
					// @unroll
					for (var r = 0u; r < RG; r++) {
						// @unroll
						for (var i = 0u; i < 4u; i++) {
							acc[(4u * r + i) * ACC_COLS + j] = fma(vec4<f32>(w[4u * r + i][e]), x, acc[(4u * r + i) * ACC_COLS + j]);
						}
					}
				}
			}
		}
	}
	return acc;
}

// @if FUSED_DQ
// add_dq adds the thread's share of a step's dQ (query rows qb + 4(ty*RG+r)
// + i of head h; acc[(4r + i) * ACC_COLS + j][e] is column tx + TX*(4j + e)),
// times units[r][i] (the softmax scale times the row's 2^e), into the
// fixed-point accumulator (see the top of the file): the hi word round(x)
// and the lo field round((x - hi) 2^L). The workgroups of the segment's
// other key blocks add into the same elements; integer adds need no retry.
fn add_dq(t: Tile, h: u32, tx: u32, ty: u32, qb: u32, acc_in: array<vec4<f32>, ACC_VEC4S>, units: array<vec4<f32>, RG>) {
	var acc = acc_in;   // a var: a value array may only be indexed by constants
	// @unroll
	for (var r = 0u; r < RG; r++) {
		// @unroll
		for (var i = 0u; i < 4u; i++) {
			let qi = qb + 4u * (ty * RG + r) + i;
			if (qi < t.q_len) {
				let row = t.q_start + qi;
				// @unroll
				for (var j = 0u; j < ACC_COLS; j++) {
					let rh = row * P.hq + h;
					let idx = rh * D + tx + 4u * TX * j;
					let y = acc[(4u * r + i) * ACC_COLS + j] * units[r][i];
					let fin = finite4(y);
					let x = select(vec4<f32>(0.0), y, fin);
					if (!all(fin)) {
						// @unroll
						for (var e = 0u; e < 4u; e++) {
							let col = tx + TX * (4u * j + e);
							if (!fin[e]) {
								atomicOr(&dq_acc[flag_word(rh, col)], 1u << (col % 32u));
							}
						}
					}
					let hi = round(x);
					let w = bitcast<vec4<u32>>(vec4<i32>(hi));
					let v = bitcast<vec4<u32>>(vec4<i32>(round((x - hi) * P.lo_scale)));
					// @unroll
					for (var e = 0u; e < 4u; e++) {
						atomicAdd(&dq_acc[idx + e * TX], w[e]);
					}
					// Columns e = 0, 1 (m = 4j, 4j + 1) share a lo word, as do 2, 3.
					let lw = lo_word(rh, tx + 4u * TX * j);
					atomicAdd(&dq_acc[lw], v[0] + (v[1] << 16u));
					atomicAdd(&dq_acc[lw + TX], v[2] + (v[3] << 16u));
				}
			}
		}
	}
}
// @end

// dkv_fetch fetches d-chunk c of the block's K rows and of the Q rows
// qb..qb+BC-1 of head h (sel 0), or of V and dO (sel 1). With ROWS_IN_REGS
// it leaves the K or V rows to the caller, which holds them in registers (see
// dkv_main).
fn dkv_fetch(t: Tile, h: u32, hk: u32, lid: u32, qb: u32, c: u32, sel: u32) -> PairFetch {
	var f: PairFetch;
	if (ROWS_IN_REGS == 0u) {
		f.a = dkv_fetch_rows(t, hk, lid, c, sel);
	}
	// @unroll
	for (var u = 0u; u < COL_FETCHES; u++) {
		let it = lid + u * THREADS;
		let row = chunk_row(it, BC);
		let l = c * CHUNK_LOADS + chunk_col(it, BC);
		f.b[u] = LDV();
		if ((COL_CHUNK_LOADS % THREADS == 0u || it < COL_CHUNK_LOADS) && qb + row < t.q_len && l < ROW_LOADS) {
			f.b[u] = ld_q(sel, q_at(t.q_start + qb + row, h, l));
		}
	}
	return f;
}

// dkv_fetch_rows fetches d-chunk c of the block's K (sel 0) or V (sel 1)
// rows.
fn dkv_fetch_rows(t: Tile, hk: u32, lid: u32, c: u32, sel: u32) -> array<LDV, ROW_FETCHES> {
	var a: array<LDV, ROW_FETCHES>;
	// @unroll
	for (var u = 0u; u < ROW_FETCHES; u++) {
		let it = lid + u * THREADS;
		let row = chunk_row(it, BR);
		let l = c * CHUNK_LOADS + chunk_col(it, BR);
		a[u] = LDV();
		if ((ROW_CHUNK_LOADS % THREADS == 0u || it < ROW_CHUNK_LOADS) && t.r0 + row < t.k_len && l < ROW_LOADS) {
			a[u] = ld_k(sel, k_at(t.k_start + t.r0 + row, hk, l));
		}
	}
	return a;
}

// widen_rows writes d-chunk c of the block's K rows, as dkv_fetch_rows
// fetched them (a), to k_wide as f32 (WRITES_WIDE_K). dkv_main calls it in
// its first step, which fetches every d-chunk: every key row that a query sees lies
// in a block with at least one step, so the copy holds every row that
// dqs_main reads.
fn widen_rows(t: Tile, hk: u32, lid: u32, c: u32, a: array<LDV, ROW_FETCHES>) {
	// @unroll
	for (var u = 0u; u < ROW_FETCHES; u++) {
		let it = lid + u * THREADS;
		let row = chunk_row(it, BR);
		let l = c * CHUNK_LOADS + chunk_col(it, BR);
		if ((ROW_CHUNK_LOADS % THREADS == 0u || it < ROW_CHUNK_LOADS) && t.r0 + row < t.k_len && l < ROW_LOADS) {
			let i = k_at(t.k_start + t.r0 + row, hk, l) * LOAD_VEC4S;
			// @unroll
			for (var w = 0u; w < LOAD_VEC4S; w++) {
				k_wide[i + w] = ld(pick(a[u], w));
			}
		}
	}
}

// dkv_fetch_acc fetches the Q (sel 0) or dO (sel 1) rows qb..qb+VC-1 of head h.
fn dkv_fetch_acc(t: Tile, h: u32, lid: u32, qb: u32, sel: u32) -> array<LDV, ACC_FETCHES> {
	var f: array<LDV, ACC_FETCHES>;
	// @unroll
	for (var u = 0u; u < ACC_FETCHES; u++) {
		let it = lid + u * THREADS;
		let row = it / ROW_LOADS;
		f[u] = LDV();
		if (((VC * ROW_LOADS) % THREADS == 0u || it < VC * ROW_LOADS) && qb + row < t.q_len) {
			f[u] = ld_q(sel, q_at(t.q_start + qb + row, h, it % ROW_LOADS));
		}
	}
	return f;
}

// store_acc_cols writes a fetched chunk of K rows (VC x D) into stage[sb] with
// each row's columns reordered for the fused dQ (DV4 % TX == 0): vec4
// tx + TX*j holds columns tx + TX*(4j + e), e < 4.
fn store_acc_cols(sb: u32, lid: u32, f: array<LDV, ACC_FETCHES>) {
	// @unroll
	for (var u = 0u; u < ACC_FETCHES; u++) {
		let it = lid + u * THREADS;
		if ((VC * ROW_LOADS) % THREADS == 0u || it < VC * ROW_LOADS) {
			let row = it / ROW_LOADS;
			// @unroll
			for (var w = 0u; w < LOAD_VEC4S; w++) {
				let x = ld(pick(f[u], w));
				// @unroll
				for (var e = 0u; e < 4u; e++) {
					let col = 4u * (LOAD_VEC4S * (it % ROW_LOADS) + w) + e;
					let m = col / TX;   // col = col % TX + TX * m, m = 4j + e'
					stage[sb][row][(m / 4u) * TX + col % TX][m % 4u] = x[e];
				}
			}
		}
	}
}
