// dqs_main is dq_main for dS tiles stored by dkv_main (STORED_DS): a
// workgroup owns BR query rows of one query head and adds dQ += dS K over
// key chunks of VC,
// staging each chunk's K rows in stage and its dS rows in pt (rows kc % BC
// onward: pt holds BC / VC chunks, so the chunk staged next never overlaps
// the one being read). No S, P or dP is recomputed and nothing is added
// atomically: every element of dQ has one writer.

@group(0) @binding(9) var<storage, read> ds_in: array<vec4<f32>>;   // the stored dS tiles (see ds_at in bwd_dkv.wgsl)

@compute @workgroup_size(THREADS)
fn dqs_main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
	let h = wg.x + P.hk0 * P.group;
	let tile = wg.y + wg.z * P.dq_grid_y;
	if (tile >= P.dq_tiles) {
		return;
	}
	let tx = lid % TX;
	let ty = lid / TX;
	let hk = h / P.group;
	let t = dq_tile(tile);
	let base = (h - P.hk0 * P.group) * P.ds_tiles + segs[P.ds_tile_off + segs[P.ds_block_off + t.seg] + t.r0 / BR];

	var acc: array<vec4<f32>, ACC_VEC4S>;   // dQ, as in dq_main
	// @unroll
	for (var i = 0u; i < ACC_VEC4S; i++) {
		acc[i] = vec4<f32>(0.0);
	}
	var fv: array<LDV, ACC_FETCHES>;
	var fd: array<vec4<f32>, DS_FETCHES>;
	if (t.c_end > 0u) {   // a block that sees no key has no stored tile
		fv = dq_fetch_acc(t, hk, lid, 0u);
		fd = ds_fetch(base, 0u, lid);
	}
	var sb = 0u;
	store_acc(0u, lid, fv);
	store_ds(0u, lid, fd);
	workgroupBarrier();
	for (var kc = 0u; kc < t.c_end; kc += VC) {
		let more = kc + VC < t.c_end;
		if (more) {
			fv = dq_fetch_acc(t, hk, lid, kc + VC);
			fd = ds_fetch(base, kc + VC, lid);
		}
		acc = accumulate(sb, kc % BC, tx, ty, acc);
		sb = 1u - sb;
		if (more) {
			store_acc(sb, lid, fv);
			store_ds((kc + VC) % BC, lid, fd);
		}
		workgroupBarrier();
	}
	write_dq(t, h, tx, ty, acc);
}

// ds_fetch fetches the dS rows of keys kc..kc+VC-1 from the stored tiles that
// begin at tile base; store_ds writes them into pt rows cb..cb+VC-1.
fn ds_fetch(base: u32, kc: u32, lid: u32) -> array<vec4<f32>, DS_FETCHES> {
	var f: array<vec4<f32>, DS_FETCHES>;
	let at = ((base + kc / BC) * BC + kc % BC) * PT_STRIDE;   // the rows are contiguous
	// @unroll
	for (var u = 0u; u < DS_FETCHES; u++) {
		let it = lid + u * THREADS;
		f[u] = vec4<f32>(0.0);
		if ((VC * PT_STRIDE) % THREADS == 0u || it < VC * PT_STRIDE) {
			f[u] = ds_in[at + it];
		}
	}
	return f;
}

fn store_ds(cb: u32, lid: u32, f: array<vec4<f32>, DS_FETCHES>) {
	// @unroll
	for (var u = 0u; u < DS_FETCHES; u++) {
		let it = lid + u * THREADS;
		if ((VC * PT_STRIDE) % THREADS == 0u || it < VC * PT_STRIDE) {
			pt[cb + it / PT_STRIDE][it % PT_STRIDE] = f[u];
		}
	}
}
