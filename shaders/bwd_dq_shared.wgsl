// What the two query-block-major dQ kernels, dq_main and dqs_main, share: a
// workgroup owns BR query rows of one query head and writes their dQ.

@group(0) @binding(8) var<storage, read_write> dq_out: array<OV>;

// dq_tile reads the query block of tile table entry tile. Every
// invocation reads the same values from read-only storage, so that every
// loop bound derived from them is uniform across the workgroup.
fn dq_tile(tile: u32) -> Tile {
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
	return Tile(qs, ql, ks, kl, q0, 0u, kv_end, 0u, b);
}

// write_dq stores the thread's share of the block's dQ, scaled, in dq_out:
// every row of the block is written, zeros included.
fn write_dq(t: Tile, h: u32, tx: u32, ty: u32, acc_in: array<vec4<f32>, ACC_VEC4S>) {
	var acc = acc_in;   // a var: a value array may only be indexed by constants
	// @unroll
	for (var r = 0u; r < RG; r++) {
		// @unroll
		for (var i = 0u; i < 4u; i++) {
			let qr = t.r0 + 4u * (ty * RG + r) + i;
			if (qr < t.q_len) {
				let row = t.q_start + qr;
				// @unroll
				for (var j = 0u; j < ACC_COLS; j++) {
					let d4 = tx + TX * j;
					if (d4 < DV4) {
						dq_out[(row * P.hq + h) * DV4 + d4] = st(acc[(4u * r + i) * ACC_COLS + j] * P.scale);
					}
				}
			}
		}
	}
}
