// widen_main copies K (in the stored type) into k_wide as f32, one
// invocation per vec4, for a dqs_main that reads K so (BwdTiling.WideK)
// where dkv_main does not write the copy itself (WRITES_WIDE_K takes one more storage
// buffer than the adapter may allow).

@group(0) @binding(1) var<storage, read> k: array<IOV>;
@group(0) @binding(2) var<storage, read_write> k_wide: array<vec4<f32>>;

@compute @workgroup_size(PASS_WG)
fn widen_main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
	let i = (wg.x + wg.y * P.wide_grid_x) * PASS_WG + lid;
	if (i < P.kv_rows * DV4) {
		k_wide[i] = ld(k[i]);
	}
}
