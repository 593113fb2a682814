// delta_main computes Delta_i = rowsum(dO_i ∘ O_i) for every (query row,
// head) pair, one per invocation, and (fused dQ) the fixed-point scale of
// the row's dQ from bound_main's maxima.

@group(0) @binding(1) var<storage, read> o: array<IOV>;
@group(0) @binding(2) var<storage, read> d_o: array<IOV>;
@group(0) @binding(3) var<storage, read_write> dlt: array<f32>;   // Delta [Hq, total_q], then the scales 2^e [Hq, total_q]
@group(0) @binding(4) var<storage, read> bound: array<f32, 2>;    // bound_main's maxima

@compute @workgroup_size(PASS_WG)
fn delta_main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
	let idx = (wg.x + wg.y * P.delta_grid_x) * PASS_WG + lid;   // (row, head) pair: row * hq + h
	if (idx >= P.n_rows) {
		return;
	}
	var acc = vec4<f32>(0.0);
	var dsq = vec4<f32>(0.0);
	for (var d4 = 0u; d4 < DV4; d4++) {
		let x = ld(d_o[idx * DV4 + d4]);
		acc = fma(ld(o[idx * DV4 + d4]), x, acc);
		dsq = fma(x, x, dsq);
	}
	let delta = (acc.x + acc.y) + (acc.z + acc.w);
	let at = (idx % P.hq) * P.total_q + idx / P.hq;
	dlt[at] = delta;
	// The fixed-point scale 2^e of the row's dQ (see bwd_common.wgsl):
	// with the bound b < 2^(E-126) (E its biased exponent), e = 29 - (E -
	// 126), kept within f32's normal exponents; NaN where b is not finite
	// (non-finite inputs), 1 where it is 0 (dQ is then 0).
	let b = P.scale * bound[0] * (sqrt((dsq.x + dsq.y) + (dsq.z + dsq.w)) * bound[1] + abs(delta));
	let bits = bitcast<u32>(b);
	let biased = (bits >> 23u) & 0xffu;
	var e2 = 1.0;
	if (biased == 0xffu) {
		e2 = bitcast<f32>(0x7fc00000u);
	} else if (b > 0.0) {
		e2 = bitcast<f32>(min(282u - biased, 254u) << 23u);
	}
	dlt[P.n_rows + at] = e2;
}
