// dq_main: a workgroup owns BR query rows of one query head, streams the
// keys its rows see in steps of BC, recomputing S and dP, and writes dQ =
// scale · dS K for its rows. Every element of dQ has one writer.

@compute @workgroup_size(THREADS)
fn dq_main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
	let h = wg.x;
	let tile = wg.y + wg.z * P.dq_grid_y;
	if (tile >= P.dq_tiles) {
		return;
	}
	let tx = lid % TX;
	let ty = lid / TX;
	let hk = h / P.group;

	let t = dq_tile(tile);
	let dseg = i32(t.k_len) - i32(t.q_len);   // bottom-right alignment offset

	// LSE (log2 domain) and Delta of the thread's rows; rows past the
	// segment get +Inf, so that their P is 0.
	let inf = bitcast<f32>(0x7f800000u);
	var lse2: array<vec4<f32>, RG>;
	var dl: array<vec4<f32>, RG>;
	// @unroll
	for (var r = 0u; r < RG; r++) {
		// @unroll
		for (var i = 0u; i < 4u; i++) {
			let qr = t.r0 + 4u * (ty * RG + r) + i;
			lse2[r][i] = inf;
			dl[r][i] = 0.0;
			if (qr < t.q_len) {
				let idx = h * P.total_q + t.q_start + qr;
				lse2[r][i] = lse[idx] * LOG2E;
				dl[r][i] = dlt[idx];
			}
		}
	}
	var acc: array<vec4<f32>, ACC_VEC4S>;   // dQ: acc[(4r + i) * ACC_COLS + j] is row 4(ty*RG+r)+i, vec4 column tx+TX*j
	// @unroll
	for (var i = 0u; i < ACC_VEC4S; i++) {
		acc[i] = vec4<f32>(0.0);
	}

	var fp = dq_fetch(t, h, hk, lid, 0u, 0u, 0u);
	var fv: array<LDV, ACC_FETCHES>;
	var sb = 0u;
	store_pair(0u, lid, fp);
	workgroupBarrier();
	for (var kb = 0u; kb < t.c_end; kb += BC) {
		// S = Q Kᵀ over d-chunks of KC; then the dP phase's first chunk.
		var s: array<vec4<f32>, RM>;
		// @unroll
		for (var i = 0u; i < RM; i++) {
			s[i] = vec4<f32>(0.0);
		}
		for (var c = 0u; c < D_CHUNKS; c++) {
			if (c + 1u < D_CHUNKS) {
				fp = dq_fetch(t, h, hk, lid, kb, c + 1u, 0u);
			} else {
				fp = dq_fetch(t, h, hk, lid, kb, 0u, 1u);
			}
			s = products(sb, tx, ty, s);
			sb = 1u - sb;
			store_pair(sb, lid, fp);
			workgroupBarrier();
		}

		// P parks in the thread's own entries of pt (idle since the last
		// barrier) while dP is computed. P is only read for dS, which takes
		// the mask.
		let whole = kb + BC <= t.k_len && (P.causal == 0u || i32(kb + BC) <= i32(t.r0) + dseg + 1);
		// @unroll
		for (var r = 0u; r < RG; r++) {
			var p: array<vec4<f32>, 4>;
			// @unroll
			for (var i = 0u; i < 4u; i++) {
				p[i] = exp2(s[4u * r + i] * P.scale_log2 - vec4<f32>(lse2[r][i]));
			}
			put_tile(tx, ty * RG + r, p);
		}

		// dP = dO Vᵀ; then the first key chunk of dQ += dS K.
		var dp: array<vec4<f32>, RM>;
		// @unroll
		for (var i = 0u; i < RM; i++) {
			dp[i] = vec4<f32>(0.0);
		}
		for (var c = 0u; c < D_CHUNKS; c++) {
			if (c + 1u < D_CHUNKS) {
				fp = dq_fetch(t, h, hk, lid, kb, c + 1u, 1u);
			} else {
				fv = dq_fetch_acc(t, hk, lid, kb);
			}
			dp = products(sb, tx, ty, dp);
			sb = 1u - sb;
			if (c + 1u < D_CHUNKS) {
				store_pair(sb, lid, fp);
			} else {
				store_acc(sb, lid, fv);
				// dS = P ∘ (dP − Delta) replaces P in pt. Only tiles that
				// cross k_len or the causal diagonal need the mask.
				// @unroll
				for (var r = 0u; r < RG; r++) {
					var p = get_tile(tx, ty * RG + r);
					// @unroll
					for (var i = 0u; i < 4u; i++) {
						p[i] *= dp[4u * r + i] - vec4<f32>(dl[r][i]);
						if (!whole) {
							let row = i32(t.r0 + 4u * (ty * RG + r) + i);
							// @unroll
							for (var j = 0u; j < 4u; j++) {
								let col = kb + 4u * tx + j;
								var ok = col < t.k_len;
								if (P.causal == 1u) {
									ok = ok && i32(col) <= row + dseg;
								}
								p[i][j] = select(0.0, p[i][j], ok);
							}
						}
					}
					put_tile(tx, ty * RG + r, p);
				}
			}
			workgroupBarrier();
		}

		// dQ += dS K over key chunks of VC; then the next step's first chunk.
		for (var cb = 0u; cb < BC; cb += VC) {
			if (cb + VC < BC) {
				fv = dq_fetch_acc(t, hk, lid, kb + cb + VC);
			} else if (kb + BC < t.c_end) {
				fp = dq_fetch(t, h, hk, lid, kb + BC, 0u, 0u);
			}
			acc = accumulate(sb, cb, tx, ty, acc);
			sb = 1u - sb;
			if (cb + VC < BC) {
				store_acc(sb, lid, fv);
			} else if (kb + BC < t.c_end) {
				store_pair(sb, lid, fp);
			}
			workgroupBarrier();
		}
	}

	write_dq(t, h, tx, ty, acc);
}

// dq_fetch fetches d-chunk c of the block's Q rows and of the K rows
// kb..kb+BC-1 (sel 0), or of dO and V (sel 1).
fn dq_fetch(t: Tile, h: u32, hk: u32, lid: u32, kb: u32, c: u32, sel: u32) -> PairFetch {
	var f: PairFetch;
	// @unroll
	for (var u = 0u; u < ROW_FETCHES; u++) {
		let it = lid + u * THREADS;
		let row = chunk_row(it, BR);
		let l = c * CHUNK_LOADS + chunk_col(it, BR);
		f.a[u] = LDV();
		if ((ROW_CHUNK_LOADS % THREADS == 0u || it < ROW_CHUNK_LOADS) && t.r0 + row < t.q_len && l < ROW_LOADS) {
			f.a[u] = ld_q(sel, q_at(t.q_start + t.r0 + row, h, l));
		}
	}
	// @unroll
	for (var u = 0u; u < COL_FETCHES; u++) {
		let it = lid + u * THREADS;
		let row = chunk_row(it, BC);
		let l = c * CHUNK_LOADS + chunk_col(it, BC);
		f.b[u] = LDV();
		if ((COL_CHUNK_LOADS % THREADS == 0u || it < COL_CHUNK_LOADS) && kb + row < t.k_len && l < ROW_LOADS) {
			f.b[u] = ld_k(sel, k_at(t.k_start + kb + row, hk, l));
		}
	}
	return f;
}
