// dq_cast_main stores the fixed-point dQ that the fused dkv_main added up
// in dq_acc as dQ in the storage type, (hi + lo 2^-L) 2^-e, or NaN where a
// term was not finite (its flag is set), and clears dq_acc and bound for
// the next run: one invocation per (row, head) pair, on delta_main's grid.

@group(0) @binding(1) var<storage, read_write> dq_acc: array<vec4<i32>>;   // cleared as read
@group(0) @binding(2) var<storage, read_write> dq: array<OV>;
@group(0) @binding(3) var<storage, read> dlt: array<f32>;               // Delta, then the scales 2^e
@group(0) @binding(4) var<storage, read_write> bound: array<f32, 2>;    // bound_main's maxima

// pow2 is 2^n for n in [-126, 127] (naga's ldexp takes no i32 exponent).
fn pow2(n: i32) -> f32 {
	return bitcast<f32>(u32(n + 127) << 23u);
}

@compute @workgroup_size(PASS_WG)
fn dq_cast_main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
	let idx = (wg.x + wg.y * P.delta_grid_x) * PASS_WG + lid;
	if (idx >= P.n_rows) {
		return;
	}
	if (idx == 0u) {
		bound[0] = 0.0;
		bound[1] = 0.0;
	}
	let bits = bitcast<u32>(dlt[P.n_rows + (idx % P.hq) * P.total_q + idx / P.hq]);
	let e = i32((bits >> 23u) & 0xffu) - 127;
	for (var d4 = 0u; d4 < DV4; d4++) {
		let i = idx * DV4 + d4;
		// The lo fields of the 4 columns: field f of word w is the low
		// (f = 0) or high half, each a signed sum within 2^15. The word is
		// cleared with its high field, the later column of its pair.
		var lo: vec4<i32>;
		for (var c = 0u; c < 4u; c++) {
			let col = 4u * d4 + c;
			let w = lo_word(idx, col);
			let word = dq_acc[w / 4u][w % 4u];
			let low = (word << 16u) >> 16u;
			if ((col / TX) % 2u == 0u) {
				lo[c] = low;
			} else {
				lo[c] = (word - low) >> 16u;
				dq_acc[w / 4u][w % 4u] = 0;
			}
		}
		let u = vec4<f32>(dq_acc[i]) + vec4<f32>(lo) * P.lo_inv;   // in units of 2^-e
		var x = u * pow2(-e / 2) * pow2(-e - -e / 2);   // two factors, each a normal f32
		if (e == 128) {
			x = vec4<f32>(bitcast<f32>(0x7fc00000u));   // the bound was not finite
		}
		let fw = flag_word(idx, 4u * d4);   // the 4 columns' flags lie in one word
		let flags = (vec4<u32>(bitcast<u32>(dq_acc[fw / 4u][fw % 4u])) >> (vec4<u32>(4u * d4 % 32u) + vec4<u32>(0u, 1u, 2u, 3u))) & vec4<u32>(1u);
		x = select(x, vec4<f32>(bitcast<f32>(0x7fc00000u)), flags != vec4<u32>(0u));
		dq[i] = st(x);
		dq_acc[i] = vec4<i32>(0);
	}
	for (var c = 0u; c < D; c += 32u) {
		let fw = flag_word(idx, c);
		dq_acc[fw / 4u][fw % 4u] = 0;
	}
}
