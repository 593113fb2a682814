// bound_main (fused dQ) reduces max |K| and max ‖V_j‖ over every (key row,
// KV head) pair, one per invocation, into bound, from which delta_main
// scales the fixed-point dQ. bound is zero before it runs: it starts so and
// dq_cast_main clears it. Non-negative f32 values order as their bits, so
// an integer max is the float max (a NaN wins over all). Elements that are
// NaN or infinite count as 0: the terms they reach are flagged instead.

@group(0) @binding(1) var<storage, read> k: array<IOV>;
@group(0) @binding(2) var<storage, read> v: array<IOV>;
@group(0) @binding(3) var<storage, read_write> bound: array<atomic<u32>, 2>;   // f32 bits of max |K|, max ‖V_j‖

var<workgroup> wg_bound: array<atomic<u32>, 2>;

@compute @workgroup_size(PASS_WG)
fn bound_main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
	if (lid == 0u) {
		atomicStore(&wg_bound[0], 0u);
		atomicStore(&wg_bound[1], 0u);
	}
	workgroupBarrier();
	let idx = (wg.x + wg.y * P.bound_grid_x) * PASS_WG + lid;   // (key row, KV head) pair: row * hkv + h
	if (idx < P.kv_rows) {
		var kmax = vec4<f32>(0.0);
		var vsq = vec4<f32>(0.0);
		for (var d4 = 0u; d4 < DV4; d4++) {
			let kx = ld(k[idx * DV4 + d4]);
			kmax = max(kmax, select(vec4<f32>(0.0), abs(kx), finite4(kx)));
			let vx = ld(v[idx * DV4 + d4]);
			let x = select(vec4<f32>(0.0), vx, finite4(vx));
			vsq = fma(x, x, vsq);
		}
		atomicMax(&wg_bound[0], bitcast<u32>(max(max(kmax.x, kmax.y), max(kmax.z, kmax.w))));
		atomicMax(&wg_bound[1], bitcast<u32>(sqrt((vsq.x + vsq.y) + (vsq.z + vsq.w))));
	}
	workgroupBarrier();
	if (lid == 0u) {
		atomicMax(&bound[0], atomicLoad(&wg_bound[0]));
		atomicMax(&bound[1], atomicLoad(&wg_bound[1]));
	}
}
