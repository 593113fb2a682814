// attn_bwd.wgsl: FlashAttention-2 style backward over a fused varlen batch.
//
// Entry points, run in this order:
//
//   bound_main  (fused variant) max |K| and max ‖V_j‖ over the batch, the
//               bound of dQ's fixed-point accumulation (see below).
//   delta_main  Delta[h, i] = rowsum(dO_i ∘ O_i) for every query row and
//               head, and (fused variant) the row's fixed-point scale.
//   dq_main     query-block-major: a workgroup owns BR query rows of one
//               query head, streams the segment's keys in steps of BC, and
//               writes dQ = scale · dS K for its rows.
//   dkv_main    key-block-major: a workgroup owns BR key rows of one KV head,
//               streams the query rows that see them, for every query head
//               of the GQA group, in steps of BC, and writes
//               dV = Pᵀ dO and dK = scale · dSᵀ Q for its rows.
//   dq_cast_main (fused variant) dQ from its fixed-point accumulator.
//   dqs_main    (stored variant, DSM = 1) dQ = scale · dS K from the dS
//               tiles dkv_main stored, query-block-major like dq_main.
//
// WGSL has no float atomics, so in the plain variant every output element
// has exactly one writer and dq_main and dkv_main each recompute S and dP.
// In the fused variant (FUSED = 1) dkv_main also computes dQ += dS K for the
// query rows of each step and adds it into a fixed-point accumulator with
// integer atomics, and dq_main is not run: seven tile products per step
// pair become five. Each element of dQ is the sum of one term per key block
// of its segment; a term x (in units of 2^-e, e per query row and head) is
// added as hi = round(x), an i32 word of its own, and lo = round((x - hi)
// 2^L), a signed 16-bit field of an i32 word that two elements share (see
// lo_word): hi words first in dq_acc, then the lo words. Integer sums do
// not depend on the order of the additions, so dQ is the same bits on
// every run; the scale 2^e is chosen from a bound on the row's dQ
// (delta_main: |dQ_id| <= scale · max|K| · (‖dO_i‖ · max‖V_j‖ +
// |Delta_i|), since dS_ij = P_ij (dP_ij - Delta_i) and the P_ij sum to 1) so
// that the hi sum stays below 2^29, and L from the segments' key blocks so
// that each lo field's sum stays within 2^15 (a field's sum then carries
// into the word exactly, and dq_cast_main takes the two apart): terms lose
// at most 2^-(L+1) units each, 2^-37 of the bound at 128 key blocks. An
// integer add needs no load and never retries (a compare-and-swap loop on
// f32 bits, before, cost 9 ms more at S8192 D128 H32); a lo word shared by
// two elements makes 1.5 adds per element instead of 2. P is recomputed
// from Q, K and the forward's LSE, P = exp(scale·q·k − LSE), and
// dS = P ∘ (dP − Delta) with dP = dO Vᵀ. S, P and dS live only in registers
// and workgroup memory.
//
// Both tiled kernels share one shape. "Rows" are what the workgroup owns
// (queries in dq_main, keys in dkv_main), "columns" what it streams. Thread
// (tx, ty) owns rows 4(ty*RG + r) + i (r < RG, i < 4) and columns
// 4tx..4tx+3 of each BR x BC tile of S and dP, held as vec4s along columns,
// and the accumulator columns 4*(tx + TX*j) (j < NJ) of its rows.
//
// A step (one BC-wide block of columns) is a sequence of phases, each a run
// of chunks staged in workgroup memory: a product phase stages one row
// operand and one column operand d-chunk by d-chunk (KC wide) and adds
// their product to a BR x BC tile; an accumulation phase stages VC columns'
// worth of a D-wide operand and adds the transposed tile times it to the
// accumulators. dq_main runs S (Q, K), dP (dO, V), dQ += dS K; dkv_main runs
// Sᵀ (K, Q), dV += Pᵀ dO, dPᵀ (V, dO), dK += dSᵀ Q. Every chunk is fetched
// into registers while the chunk before it is being used, including across
// phases and steps, so each chunk costs one barrier, and the one tile
// buffer pt is reused for P and dS.
//
// Tensors are stored as IOV (four values: vec4<f32>, or vec2<u32> holding
// four f16 or bf16) and read with ld(); gradients are written as OV with
// st() (OV is IOV except in a WideK module, which reads an f32 copy of K
// and writes dQ as halves); the operands are fetched as LDV, 16 bytes a
// load where the dtype allows (VW IOVs: two of halves where D and KC are
// multiples of 8), taken apart with pick(). All come from the prelude
// (dtype.go); arithmetic, LSE and Delta are f32. The fused
// variant's dq_cast_main stores the fixed-point dQ in the storage type and
// clears the accumulator (and the bound) for the next run.
//
// In the stored variant (DSM = 1) dkv_main writes each step's dS tile, in
// f32, to a scratch buffer instead, and dqs_main multiplies the tiles by K:
// five tile products per step pair, as fused, with no atomics, for the
// cost of writing and reading dS once (4 bytes per visible query-key pair
// and query head). The host runs the two in passes of KV heads whose tiles
// fit the scratch; within a pass tile (h, query block, key block) lies at
// (h - first head of the pass) · ds_tiles + the block's first tile (ds_tile_off)
// + the key block. With half storage above D 64 dqs_main reads K as f32
// (WideK), from a copy that dkv_main writes in its first step (WKO) or,
// with too few storage bindings for that, widen_main before the passes.
//
// The constants below are generated per adapter and head dimension by
// shaders.BwdTiling.Source (see bwd.go) and prepended to this file:
//
//   D, DV4       head dimension and D/4 (vec4 columns)
//   TX, TY, NT   threads along columns, along rows, and TX*TY in all
//   RM, RG       rows per thread (a multiple of 4) and RM/4
//   BR, BC       rows per workgroup (RM*TY) and columns per step (4*TX)
//   KC, NKC      d-chunk of the S and dP products, and ceil(D/KC) chunks
//   KC4          KC/4: vec4 columns of a d-chunk
//   VW, KCL, DL  IOVs per operand load (1, or 2 for halves), KC4/VW loads
//                per d-chunk row and DV4/VW per tensor row
//   VC           column chunk of the accumulating products (divides BC)
//   NJ, NACC     ceil(DV4/TX) vec4 accumulator columns per thread; RM*NJ
//   SA, SB       loads of a d-chunk of the row operand (KC x BR) and of
//                the column operand (KC x BC)
//   PA, PB, PV   loads of a row chunk, a column chunk and an accumulation
//                chunk (VC x D) each thread fetches
//   SR, SW       rows and vec4 width of one staging buffer (there are
//                two, filled and used alternately): max(KC, VC) and
//                max((BR + BC)/4, D/4)
//   BR4          BR/4: vec4 columns of a staged row-operand chunk
//   RS, SWZ      row width of the transposed tile pt in vec4s, and the
//                mask of its swizzle (see pt_col)
//   DWG          workgroup size of the Delta pre-pass
//   FUSED, VC4   1: dkv_main computes dQ too (see above); VC/4
//   CPU          1: the fetch pattern for CPU drivers (BwdTiling.CPU)
//   RREG, NRA    1: dkv_main holds its K and V rows in registers
//                (BwdTiling.RowRegs); NKC*PA, a thread's share of them
//   KT, KU       how product operands are staged (exactly one is 1):
//                transposed or untransposed (BwdTiling.Transposed)
//   DSM, PD      1: dkv_main stores dS for dqs_main (BwdTiling.StoredDS);
//                loads of a dS chunk (VC x RS vec4s) each thread fetches
//   WKO          1: dkv_main also writes K as f32 (k_wide) for a WideK
//                dqs_main (BwdTiling.WritesWideK)
//
// Loops marked `// @unroll` are expanded by the generator (unroll.go), so
// that register arrays are only ever indexed by constants. Workgroup arrays
// are shaped so that in the inner loops the varying index (kk, c) is an
// outer, constant one and the innermost a per-thread value (see
// attn_fwd.wgsl): naga clamps every dynamic index, and clamps of the same
// value are computed once.

// The launch parameters, mirrored and documented by shaders.BwdParams (params.go).
struct Params {
	hq: u32,
	group: u32,
	total_q: u32,
	causal: u32,
	batch: u32,
	hkv: u32,
	n_rows: u32,
	delta_grid_x: u32,
	dq_tiles: u32,
	dq_grid_y: u32,
	dq_off: u32,
	scale_log2: f32,
	kv_tiles: u32,
	kv_grid_y: u32,
	kv_off: u32,
	scale: f32,
	kv_rows: u32,
	bound_grid_x: u32,
	lo_scale: f32,
	lo_inv: f32,
	hk0: u32,
	ds_tiles: u32,
	ds_block_off: u32,
	ds_tile_off: u32,
	wide_grid_x: u32,
	_pad0: u32,
	_pad1: u32,
	_pad2: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
// segs = cu_seqlens_q [B+1] ++ cu_seqlens_k [B+1] ++ dQ tiles (segment, q0)
//        ++ dK/dV tiles (segment, k0)
@group(0) @binding(1) var<storage, read> segs: array<u32>;
@group(0) @binding(2) var<storage, read> q: array<LDV>;   // the operands, read VW vec4s a load
@group(0) @binding(3) var<storage, read> k: array<LDV>;
@group(0) @binding(4) var<storage, read> v: array<LDV>;
@group(0) @binding(5) var<storage, read> d_o: array<LDV>;
@group(0) @binding(6) var<storage, read> lse: array<f32>;
@group(0) @binding(7) var<storage, read> dlt: array<f32>;                  // Delta [Hq, total_q], then the fixed-point scales 2^e [Hq, total_q]
@group(0) @binding(8) var<storage, read_write> grad_a: array<OV>;    // dQ or dK
@group(0) @binding(9) var<storage, read_write> grad_b: array<OV>;    // dV (dkv_main only)
@group(0) @binding(10) var<storage, read_write> dq_acc: array<atomic<u32>>; // fixed-point dQ: hi words [Hq * total_q * D], then lo words [Hq * total_q * D/2] (fused dkv_main only)
@group(0) @binding(10) var<storage, read_write> ds_out: array<vec4<f32>>;   // stored dS tiles (DSM dkv_main only; see ds_at)
@group(0) @binding(9) var<storage, read> ds_in: array<vec4<f32>>;           // the same, read by dqs_main
@group(0) @binding(11) var<storage, read_write> k_wide: array<vec4<f32>>;   // K as f32 for a WideK dqs_main (WKO dkv_main only; see widen_rows)

// The bound pre-pass binds these.
@group(0) @binding(1) var<storage, read> bnd_k: array<IOV>;
@group(0) @binding(2) var<storage, read> bnd_v: array<IOV>;
@group(0) @binding(3) var<storage, read_write> bnd_out: array<atomic<u32>, 2>;   // f32 bits of max |K|, max ‖V_j‖

// widen_main binds these.
@group(0) @binding(1) var<storage, read> wid_src: array<IOV>;
@group(0) @binding(2) var<storage, read_write> wid_dst: array<vec4<f32>>;

// The Delta pre-pass binds these.
@group(0) @binding(1) var<storage, read> pre_o: array<IOV>;
@group(0) @binding(2) var<storage, read> pre_do: array<IOV>;
@group(0) @binding(3) var<storage, read_write> pre_delta: array<f32>;   // Delta, then the scales (dlt)
@group(0) @binding(4) var<storage, read> pre_bound: array<f32, 2>;      // bound_main's maxima

// The dQ cast pass binds these.
@group(0) @binding(1) var<storage, read_write> cast_acc: array<vec4<i32>>;   // dq_acc, cleared as read
@group(0) @binding(2) var<storage, read_write> cast_dst: array<OV>;          // dQ
@group(0) @binding(3) var<storage, read> cast_scale: array<f32>;             // Delta, then the scales
@group(0) @binding(4) var<storage, read_write> cast_bound: array<f32, 2>;    // cleared for the next run

var<workgroup> bnd_wg: array<atomic<u32>, 2>;

const LOG2E: f32 = 1.4426950408889634;
const BIG: f32 = 1.0e30;   // stands in for an infinite LSE: exp2(s - BIG) is 0
const NONE: u32 = 0xffffffffu;

// stage[sb] holds, in turn, the d-chunks of a row operand (columns
// 0..BR4-1) beside a column operand (columns BR4..), both in one of
// fetch.wgsl's layouts (KU untransposed, KT transposed), and the column
// chunks (VC x D) of the accumulating products. pt holds the transposed P or dS tile, one row per
// column of the tile.
var<workgroup> stage: array<array<array<vec4<f32>, SW>, SR>, 2>;
var<workgroup> pt: array<array<vec4<f32>, RS>, BC>;

// Tile is the block a workgroup computes (see dq_tile and dkv_tile).
struct Tile {
	q_start: u32,   // first row of the segment in Q
	q_len: u32,
	k_start: u32,   // first row of the segment in K and V
	k_len: u32,
	r0: u32,        // first owned row within the segment (query or key)
	c_first: u32,   // dkv_main: first query row that sees the block
	c_end: u32,     // dq_main: end of the visible keys; dkv_main: column steps in all
	nqb: u32,       // dkv_main: column steps per query head
	seg: u32,       // the segment
}

// PairFetch is a fetched d-chunk of a row and a column operand, in
// registers between global and workgroup memory. Fetches hold the stored
// type (IOV) and are widened only when stored to workgroup memory, after
// the arithmetic they overlap: widening at the load would wait for it.
struct PairFetch {
	a: array<LDV, PA>,
	b: array<LDV, PB>,
}

// pow2 is 2^n for n in [-126, 127] (naga's ldexp takes no i32 exponent).
fn pow2(n: i32) -> f32 {
	return bitcast<f32>(u32(n + 127) << 23u);
}

// widen_main copies K (wid_src, the stored type) into wid_dst as f32, for
// a dQ kernel that reads K so (BwdTiling.WideK), where dkv_main does not
// write the copy itself (WKO needs an eleventh storage buffer): one
// invocation per vec4.
@compute @workgroup_size(DWG)
fn widen_main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
	let i = (wg.x + wg.y * P.wide_grid_x) * DWG + lid;
	if (i < P.kv_rows * DV4) {
		wid_dst[i] = ld(wid_src[i]);
	}
}

// bound_main reduces max |K| and max ‖V_j‖ over every (key row, KV head)
// pair, one per invocation, into bnd_out (zero before it runs: the buffer
// starts so and dq_cast_main clears it). Non-negative f32 values order as
// their bits, so an integer max is the float max (a NaN wins over all).
@compute @workgroup_size(DWG)
fn bound_main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
	if (lid == 0u) {
		atomicStore(&bnd_wg[0], 0u);
		atomicStore(&bnd_wg[1], 0u);
	}
	workgroupBarrier();
	let idx = (wg.x + wg.y * P.bound_grid_x) * DWG + lid;   // (key row, KV head) pair: row * hkv + h
	if (idx < P.kv_rows) {
		var kmax = vec4<f32>(0.0);
		var vsq = vec4<f32>(0.0);
		for (var d4 = 0u; d4 < DV4; d4++) {
			kmax = max(kmax, abs(ld(bnd_k[idx * DV4 + d4])));
			let x = ld(bnd_v[idx * DV4 + d4]);
			vsq = fma(x, x, vsq);
		}
		atomicMax(&bnd_wg[0], bitcast<u32>(max(max(kmax.x, kmax.y), max(kmax.z, kmax.w))));
		atomicMax(&bnd_wg[1], bitcast<u32>(sqrt((vsq.x + vsq.y) + (vsq.z + vsq.w))));
	}
	workgroupBarrier();
	if (lid == 0u) {
		atomicMax(&bnd_out[0], atomicLoad(&bnd_wg[0]));
		atomicMax(&bnd_out[1], atomicLoad(&bnd_wg[1]));
	}
}

@compute @workgroup_size(DWG)
fn delta_main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
	let idx = (wg.x + wg.y * P.delta_grid_x) * DWG + lid;   // (row, head) pair: row * hq + h
	if (idx >= P.n_rows) {
		return;
	}
	var acc = vec4<f32>(0.0);
	var dsq = vec4<f32>(0.0);
	for (var d4 = 0u; d4 < DV4; d4++) {
		let x = ld(pre_do[idx * DV4 + d4]);
		acc = fma(ld(pre_o[idx * DV4 + d4]), x, acc);
		dsq = fma(x, x, dsq);
	}
	let delta = (acc.x + acc.y) + (acc.z + acc.w);
	let at = (idx % P.hq) * P.total_q + idx / P.hq;
	pre_delta[at] = delta;
	// The fixed-point scale 2^e of the row's dQ (see the top of the file):
	// with the bound b < 2^(E-126) (E its biased exponent), e = 29 - (E -
	// 126), kept within f32's normal exponents; NaN where b is not finite
	// (non-finite inputs), 1 where it is 0 (dQ is then 0).
	let b = P.scale * pre_bound[0] * (sqrt((dsq.x + dsq.y) + (dsq.z + dsq.w)) * pre_bound[1] + abs(delta));
	let bits = bitcast<u32>(b);
	let biased = (bits >> 23u) & 0xffu;
	var e2 = 1.0;
	if (biased == 0xffu) {
		e2 = bitcast<f32>(0x7fc00000u);
	} else if (b > 0.0) {
		e2 = bitcast<f32>(min(282u - biased, 254u) << 23u);
	}
	pre_delta[P.n_rows + at] = e2;
}

// dq_cast_main stores the fixed-point dQ that the fused dkv_main added up
// in cast_acc as dQ in the storage type, (hi + lo 2^-L) 2^-e, and clears
// cast_acc (and the bound) for the next run. It has the Delta pre-pass's
// grid: one invocation per (row, head) pair.
@compute @workgroup_size(DWG)
fn dq_cast_main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
	let idx = (wg.x + wg.y * P.delta_grid_x) * DWG + lid;
	if (idx >= P.n_rows) {
		return;
	}
	if (idx == 0u) {
		cast_bound[0] = 0.0;
		cast_bound[1] = 0.0;
	}
	let bits = bitcast<u32>(cast_scale[P.n_rows + (idx % P.hq) * P.total_q + idx / P.hq]);
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
			let word = cast_acc[w / 4u][w % 4u];
			let low = (word << 16u) >> 16u;
			if ((col / TX) % 2u == 0u) {
				lo[c] = low;
			} else {
				lo[c] = (word - low) >> 16u;
				cast_acc[w / 4u][w % 4u] = 0;
			}
		}
		let u = vec4<f32>(cast_acc[i]) + vec4<f32>(lo) * P.lo_inv;   // in units of 2^-e
		var x = u * pow2(-e / 2) * pow2(-e - -e / 2);   // two factors, each a normal f32
		if (e == 128) {
			x = vec4<f32>(bitcast<f32>(0x7fc00000u));   // the bound was not finite
		}
		cast_dst[i] = st(x);
		cast_acc[i] = vec4<i32>(0);
	}
}

// lo_word is the word of dq_acc that holds the lo field of column col of
// (row, head) pair rh: column col = t + TX m shares it with column col + TX
// (m even, low field) or col - TX (m odd, high field), so that the threads
// of a row in dkv_main (t = tx) add into consecutive words. The lo words
// follow the hi words (n_rows D of them), D/2 per pair.
fn lo_word(rh: u32, col: u32) -> u32 {
	return P.n_rows * D + rh * (D / 2u) + col % TX + TX * (col / TX / 2u);
}

@compute @workgroup_size(NT)
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
	// segment get BIG, so that their P is 0.
	var lse2: array<vec4<f32>, RG>;
	var dl: array<vec4<f32>, RG>;
	// @unroll
	for (var r = 0u; r < RG; r++) {
		// @unroll
		for (var i = 0u; i < 4u; i++) {
			let qr = t.r0 + 4u * (ty * RG + r) + i;
			lse2[r][i] = BIG;
			dl[r][i] = 0.0;
			if (qr < t.q_len) {
				let idx = h * P.total_q + t.q_start + qr;
				lse2[r][i] = min(lse[idx] * LOG2E, BIG);
				dl[r][i] = dlt[idx];
			}
		}
	}
	var acc: array<vec4<f32>, NACC>;   // dQ: acc[(4r + i) * NJ + j] is row 4(ty*RG+r)+i, vec4 column tx+TX*j
	// @unroll
	for (var i = 0u; i < NACC; i++) {
		acc[i] = vec4<f32>(0.0);
	}

	var fp = dq_fetch(t, h, hk, lid, 0u, 0u, 0u);
	var fv: array<LDV, PV>;
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
		for (var c = 0u; c < NKC; c++) {
			if (c + 1u < NKC) {
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
		// barrier) while dP is computed. Only tiles that cross k_len or the
		// causal diagonal need the mask.
		let whole = kb + BC <= t.k_len && (P.causal == 0u || i32(kb + BC) <= i32(t.r0) + dseg + 1);
		// @unroll
		for (var r = 0u; r < RG; r++) {
			var p: array<vec4<f32>, 4>;
			// @unroll
			for (var i = 0u; i < 4u; i++) {
				p[i] = exp2(s[4u * r + i] * P.scale_log2 - vec4<f32>(lse2[r][i]));
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

		// dP = dO Vᵀ; then the first key chunk of dQ += dS K.
		var dp: array<vec4<f32>, RM>;
		// @unroll
		for (var i = 0u; i < RM; i++) {
			dp[i] = vec4<f32>(0.0);
		}
		for (var c = 0u; c < NKC; c++) {
			if (c + 1u < NKC) {
				fp = dq_fetch(t, h, hk, lid, kb, c + 1u, 1u);
			} else {
				fv = dq_fetch_acc(t, hk, lid, kb);
			}
			dp = products(sb, tx, ty, dp);
			sb = 1u - sb;
			if (c + 1u < NKC) {
				store_pair(sb, lid, fp);
			} else {
				store_acc(sb, lid, fv);
				// dS = P ∘ (dP − Delta) replaces P in pt.
				// @unroll
				for (var r = 0u; r < RG; r++) {
					var p = get_tile(tx, ty * RG + r);
					// @unroll
					for (var i = 0u; i < 4u; i++) {
						p[i] *= dp[4u * r + i] - vec4<f32>(dl[r][i]);
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

// write_dq stores the thread's share of the block's dQ, scaled, in grad_a:
// every row of the block is written, zeros included.
fn write_dq(t: Tile, h: u32, tx: u32, ty: u32, acc_in: array<vec4<f32>, NACC>) {
	var acc = acc_in;   // a var: a value array may only be indexed by constants
	// @unroll
	for (var r = 0u; r < RG; r++) {
		// @unroll
		for (var i = 0u; i < 4u; i++) {
			let qr = t.r0 + 4u * (ty * RG + r) + i;
			if (qr < t.q_len) {
				let row = t.q_start + qr;
				// @unroll
				for (var j = 0u; j < NJ; j++) {
					let d4 = tx + TX * j;
					if (d4 < DV4) {
						grad_a[(row * P.hq + h) * DV4 + d4] = st(acc[(4u * r + i) * NJ + j] * P.scale);
					}
				}
			}
		}
	}
}

// dqs_main is dq_main for dS stored by dkv_main (DSM): a workgroup owns BR
// query rows of one query head and adds dQ += dS K over key chunks of VC,
// staging each chunk's K rows in stage and its dS rows in pt (rows kc % BC
// onward: pt holds BC / VC chunks, so the chunk staged next never overlaps
// the one being read). No S, P or dP is recomputed and nothing is added
// atomically: every element of dQ has one writer.
@compute @workgroup_size(NT)
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

	var acc: array<vec4<f32>, NACC>;   // dQ, as in dq_main
	// @unroll
	for (var i = 0u; i < NACC; i++) {
		acc[i] = vec4<f32>(0.0);
	}
	var fv: array<LDV, PV>;
	var fd: array<vec4<f32>, PD>;
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

// ds_at is where vec4 g (query columns 4g..4g+3) of key row key of stored dS
// tile `tile` lies: tiles of BC key rows by RS vec4s, each laid out as pt is
// in dqs_main (pt_col's swizzle), so that dqs_main copies them flat. dkv_main
// writes them with its rows (keys) and columns (queries) the other way round,
// which needs BR = BC.
fn ds_at(tile: u32, key: u32, g: u32) -> u32 {
	return (tile * BC + key) * RS + pt_col(key, g);
}

// ds_fetch fetches the dS rows of keys kc..kc+VC-1 from the stored tiles that
// begin at tile base; store_ds writes them into pt rows cb..cb+VC-1.
fn ds_fetch(base: u32, kc: u32, lid: u32) -> array<vec4<f32>, PD> {
	var f: array<vec4<f32>, PD>;
	let at = ((base + kc / BC) * BC + kc % BC) * RS;   // the rows are contiguous
	// @unroll
	for (var u = 0u; u < PD; u++) {
		let it = lid + u * NT;
		f[u] = vec4<f32>(0.0);
		if ((VC * RS) % NT == 0u || it < VC * RS) {
			f[u] = ds_in[at + it];
		}
	}
	return f;
}

fn store_ds(cb: u32, lid: u32, f: array<vec4<f32>, PD>) {
	// @unroll
	for (var u = 0u; u < PD; u++) {
		let it = lid + u * NT;
		if ((VC * RS) % NT == 0u || it < VC * RS) {
			pt[cb + it / RS][it % RS] = f[u];
		}
	}
}

@compute @workgroup_size(NT)
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

	var acc_k: array<vec4<f32>, NACC>;   // acc_k[(4r + i) * NJ + j] is key 4(ty*RG+r)+i, vec4 column tx+TX*j
	var acc_v: array<vec4<f32>, NACC>;
	// @unroll
	for (var i = 0u; i < NACC; i++) {
		acc_k[i] = vec4<f32>(0.0);
		acc_v[i] = vec4<f32>(0.0);
	}

	// The block's K and V rows are the same for every step: with RREG they
	// are fetched once, into registers (ka, va: this thread's share of
	// every d-chunk, in the stored type), and only staged again; fp.a is
	// filled from them after each dkv_fetch.
	// @if RREG
	var ka: array<LDV, NRA>;
	var va: array<LDV, NRA>;
	// @unroll
	for (var c = 0u; c < NKC; c++) {
		let a = dkv_fetch_rows(t, hk, lid, c, 0u);
		let b = dkv_fetch_rows(t, hk, lid, c, 1u);
		// @unroll
		for (var u = 0u; u < PA; u++) {
			ka[c * PA + u] = a[u];
			va[c * PA + u] = b[u];
		}
	}
	// @end
	var fp = dkv_fetch(t, h0, hk, lid, t.c_first, 0u, 0u);
	// @if RREG
	// @unroll
	for (var u = 0u; u < PA; u++) {
		fp.a[u] = ka[u];
	}
	// @end
	var fv: array<LDV, PV>;
	var sb = 0u;
	store_pair(0u, lid, fp);
	// @if WKO
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
		// @if DSM
		// The step's dS tile goes to scratch for dqs_main (see ds_at).
		let ds_tile = (h - P.hk0 * P.group) * P.ds_tiles + segs[P.ds_tile_off + segs[P.ds_block_off + t.seg] + qb / BC] + t.r0 / BR;
		// @end
		var lse2 = vec4<f32>(BIG);   // of the thread's 4 query columns, log2 domain
		var dl = vec4<f32>(0.0);
		// @unroll
		for (var j = 0u; j < 4u; j++) {
			let qi = qb + 4u * tx + j;
			if (qi < t.q_len) {
				let idx = h * P.total_q + t.q_start + qi;
				lse2[j] = min(lse[idx] * LOG2E, BIG);
				dl[j] = dlt[idx];
			}
		}
		// @if FUSED
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

		// Sᵀ = K Qᵀ over d-chunks of KC; then the first dO chunk of dV. The
		// last chunk also writes Pᵀ into pt, idle since the last barrier.
		// Only tiles that cross the causal diagonal need the mask; queries
		// past the segment have an LSE of BIG.
		let whole = P.causal == 0u || i32(t.r0 + BR) <= i32(qb) + dseg + 1;
		var s: array<vec4<f32>, RM>;
		// @unroll
		for (var i = 0u; i < RM; i++) {
			s[i] = vec4<f32>(0.0);
		}
		// @if RREG
		// @unroll
		// @end
		for (var c = 0u; c < NKC; c++) {
			if (c + 1u < NKC) {
				fp = dkv_fetch(t, h, hk, lid, qb, c + 1u, 0u);
				// @if RREG
				// @unroll
				for (var u = 0u; u < PA; u++) {
					fp.a[u] = ka[(c + 1u) * PA + u];
				}
				// @end
			} else {
				fv = dkv_fetch_acc(t, h, lid, qb, 1u);
			}
			s = products(sb, tx, ty, s);
			sb = 1u - sb;
			if (c + 1u < NKC) {
				store_pair(sb, lid, fp);
				// @if WKO
				if (it == 0u) {
					widen_rows(t, hk, lid, c + 1u, fp.a);
				}
				// @end
			} else {
				store_acc(sb, lid, fv);
				// @unroll
				for (var r = 0u; r < RG; r++) {
					var p: array<vec4<f32>, 4>;
					// @unroll
					for (var i = 0u; i < 4u; i++) {
						p[i] = exp2(s[4u * r + i] * P.scale_log2 - lse2);
						if (!whole) {
							let key = i32(t.r0 + 4u * (ty * RG + r) + i);
							// @unroll
							for (var j = 0u; j < 4u; j++) {
								p[i][j] = select(0.0, p[i][j], key <= i32(qb + 4u * tx + j) + dseg);
							}
						}
					}
					put_tile(tx, ty * RG + r, p);
				}
			}
			workgroupBarrier();
		}

		// dV += Pᵀ dO over query chunks of VC; then the first chunk of dPᵀ.
		for (var cb = 0u; cb < BC; cb += VC) {
			if (cb + VC < BC) {
				fv = dkv_fetch_acc(t, h, lid, qb + cb + VC, 1u);
			} else {
				fp = dkv_fetch(t, h, hk, lid, qb, 0u, 1u);
				// @if RREG
				// @unroll
				for (var u = 0u; u < PA; u++) {
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

		// dPᵀ = V dOᵀ; then the first Q chunk of dK. The last chunk also
		// replaces Pᵀ in pt by dSᵀ = Pᵀ ∘ (dPᵀ − Delta): every thread reads
		// and writes only its own entries, and the barriers since the dV
		// phase read pt keep them apart from it.
		var dp: array<vec4<f32>, RM>;
		// @unroll
		for (var i = 0u; i < RM; i++) {
			dp[i] = vec4<f32>(0.0);
		}
		// @if RREG
		// @unroll
		// @end
		for (var c = 0u; c < NKC; c++) {
			if (c + 1u < NKC) {
				fp = dkv_fetch(t, h, hk, lid, qb, c + 1u, 1u);
				// @if RREG
				// @unroll
				for (var u = 0u; u < PA; u++) {
					fp.a[u] = va[(c + 1u) * PA + u];
				}
				// @end
			} else {
				fv = dkv_fetch_acc(t, h, lid, qb, 0u);
			}
			dp = products(sb, tx, ty, dp);
			sb = 1u - sb;
			if (c + 1u < NKC) {
				store_pair(sb, lid, fp);
			} else {
				store_acc(sb, lid, fv);
				// @unroll
				for (var r = 0u; r < RG; r++) {
					var p = get_tile(tx, ty * RG + r);
					// @unroll
					for (var i = 0u; i < 4u; i++) {
						p[i] *= dp[4u * r + i] - dl;
						// @if DSM
						ds_out[ds_at(ds_tile, 4u * (ty * RG + r) + i, tx)] = p[i];
						// @end
					}
					put_tile(tx, ty * RG + r, p);
				}
			}
			workgroupBarrier();
		}

		// dK += dSᵀ Q over query chunks of VC; then the next step's first
		// chunk, or with FUSED the first key chunk of dQ.
		let next = it + 1u < t.c_end;
		for (var cb = 0u; cb < BC; cb += VC) {
			if (cb + VC < BC) {
				fv = dkv_fetch_acc(t, h, lid, qb + cb + VC, 0u);
			} else if (FUSED == 1u) {
				fv = dq_fetch_acc(t, hk, lid, t.r0);
			} else if (next) {
				fp = dkv_fetch(t, h_next, hk, lid, qb_next, 0u, 0u);
				// @if RREG
				// @unroll
				for (var u = 0u; u < PA; u++) {
					fp.a[u] = ka[u];
				}
				// @end
			}
			acc_k = accumulate(sb, cb, tx, ty, acc_k);
			sb = 1u - sb;
			if (cb + VC < BC) {
				store_acc(sb, lid, fv);
			} else if (FUSED == 1u) {
				store_acc_cols(sb, lid, fv);
			} else if (next) {
				store_pair(sb, lid, fp);
			}
			workgroupBarrier();
		}
		if (FUSED == 0u) {
			continue;
		}

		// FUSED: dQ = dS K for the step's BC query rows over key chunks of
		// VC (the block's own keys, restaged each step); then the next
		// step's first chunk. Thread (tx, ty) holds queries 4(ty*RG+r)+i of
		// the step and, in acc_q[(4r + i) * NJ + j], the columns
		// tx + TX*(4j + e) (e < 4): the K chunks are staged in that order
		// (store_acc_cols), so that accumulate_t reads them as vec4s while
		// the threads of a row add into consecutive floats of dQ.
		var acc_q: array<vec4<f32>, NACC>;
		// @unroll
		for (var i = 0u; i < NACC; i++) {
			acc_q[i] = vec4<f32>(0.0);
		}
		for (var cb = 0u; cb < BR; cb += VC) {
			if (cb + VC < BR) {
				fv = dq_fetch_acc(t, hk, lid, t.r0 + cb + VC);
			} else if (next) {
				fp = dkv_fetch(t, h_next, hk, lid, qb_next, 0u, 0u);
				// @if RREG
				// @unroll
				for (var u = 0u; u < PA; u++) {
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
		// @if FUSED
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
				for (var j = 0u; j < NJ; j++) {
					let d4 = tx + TX * j;
					if (d4 < DV4) {
						let idx = (row * P.hkv + hk) * DV4 + d4;
						grad_a[idx] = st(acc_k[(4u * r + i) * NJ + j] * P.scale);
						grad_b[idx] = st(acc_v[(4u * r + i) * NJ + j]);
					}
				}
			}
		}
	}
}

// dq_tile and dkv_tile read the block a workgroup computes. Every
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
	if (DSM == 1u) {
		first = first / BC * BC;   // steps on dqs_main's query blocks, where the dS tiles are stored
	}
	let nqb = (ql - first + BC - 1u) / BC;
	return Tile(qs, ql, ks, kl, k0, first, P.group * nqb, nqb, b);
}

// pt_col is where row group g of tile column col lies in pt[col]. A
// power-of-two number of row groups is stored unpadded and swizzled
// (g XOR col/4) so that the threads of a warp, which write columns
// 4tx..4tx+3 of the same row group, hit distinct banks; any other number is
// padded by one.
fn pt_col(col: u32, g: u32) -> u32 {
	return g ^ ((col >> 2u) & SWZ);
}

// put_tile stores the thread's 4 x 4 block of rows 4g..4g+3 (p[i] holds row
// 4g+i, columns 4tx..4tx+3) transposed into pt; get_tile loads it back.
fn put_tile(tx: u32, g: u32, p: array<vec4<f32>, 4>) {
	// @unroll
	for (var j = 0u; j < 4u; j++) {
		pt[4u * tx + j][pt_col(4u * tx + j, g)] = vec4<f32>(p[0][j], p[1][j], p[2][j], p[3][j]);
	}
}

fn get_tile(tx: u32, g: u32) -> array<vec4<f32>, 4> {
	var c: array<vec4<f32>, 4>;
	// @unroll
	for (var j = 0u; j < 4u; j++) {
		c[j] = pt[4u * tx + j][pt_col(4u * tx + j, g)];
	}
	var p: array<vec4<f32>, 4>;
	// @unroll
	for (var i = 0u; i < 4u; i++) {
		p[i] = vec4<f32>(c[0][i], c[1][i], c[2][i], c[3][i]);
	}
	return p;
}

// products adds the product of the row and column d-chunks staged at sb to
// the thread's share of a BR x BC tile: four d-steps per read (KU), or one
// (KT).
fn products(sb: u32, tx: u32, ty: u32, s_in: array<vec4<f32>, RM>) -> array<vec4<f32>, RM> {
	var s = s_in;
	// @if KU
	// @unroll
	for (var c4 = 0u; c4 < KC4; c4++) {
		let bc = staged_cols(sb, BR4, tx, c4, BC);   // bc[j][e]: column 4tx+j, d-step 4*c4+e
		// @unroll
		for (var g = 0u; g < RG; g++) {
			let a = staged_cols(sb, 0u, ty * RG + g, c4, BR);   // a[i][e]: row 4(ty*RG+g)+i
			// @unroll
			for (var e = 0u; e < 4u; e++) {
				let b = vec4<f32>(bc[0][e], bc[1][e], bc[2][e], bc[3][e]);
				s[4u * g] = fma(vec4<f32>(a[0][e]), b, s[4u * g]);
				s[4u * g + 1u] = fma(vec4<f32>(a[1][e]), b, s[4u * g + 1u]);
				s[4u * g + 2u] = fma(vec4<f32>(a[2][e]), b, s[4u * g + 2u]);
				s[4u * g + 3u] = fma(vec4<f32>(a[3][e]), b, s[4u * g + 3u]);
			}
		}
	}
	// @end
	// @if KT
	// @unroll
	for (var kk = 0u; kk < KC; kk++) {
		let b = stage[sb][kk][BR4 + (tx ^ tswz(kk / 4u, BC))];
		// @unroll
		for (var g = 0u; g < RG; g++) {
			let a = stage[sb][kk][(ty * RG + g) ^ tswz(kk / 4u, BR)];
			s[4u * g] = fma(vec4<f32>(a.x), b, s[4u * g]);
			s[4u * g + 1u] = fma(vec4<f32>(a.y), b, s[4u * g + 1u]);
			s[4u * g + 2u] = fma(vec4<f32>(a.z), b, s[4u * g + 2u]);
			s[4u * g + 3u] = fma(vec4<f32>(a.w), b, s[4u * g + 3u]);
		}
	}
	// @end
	return s;
}

// accumulate adds columns cb..cb+VC-1 of the tile in pt times the VC rows of
// the operand staged at sb to the thread's accumulators.
fn accumulate(sb: u32, cb: u32, tx: u32, ty: u32, acc_in: array<vec4<f32>, NACC>) -> array<vec4<f32>, NACC> {
	var acc = acc_in;
	let q4 = cb >> 2u;   // cb is a multiple of VC: with VC % 4 == 0, (cb + c) >> 2 is q4 + c / 4
	// @unroll
	for (var c = 0u; c < VC; c++) {
		var w: array<vec4<f32>, RG>;
		// @unroll
		for (var r = 0u; r < RG; r++) {
			if (VC % 4u == 0u) {
				w[r] = pt[cb + c][(ty * RG + r) ^ ((q4 + c / 4u) & SWZ)];
			} else {
				w[r] = pt[cb + c][pt_col(cb + c, ty * RG + r)];
			}
		}
		// @unroll
		for (var j = 0u; j < NJ; j++) {
			let d4 = tx + TX * j;
			if (DV4 % TX == 0u || d4 < DV4) {
				let x = stage[sb][c][d4];
				// @unroll
				for (var r = 0u; r < RG; r++) {
					acc[(4u * r) * NJ + j] = fma(vec4<f32>(w[r].x), x, acc[(4u * r) * NJ + j]);
					acc[(4u * r + 1u) * NJ + j] = fma(vec4<f32>(w[r].y), x, acc[(4u * r + 1u) * NJ + j]);
					acc[(4u * r + 2u) * NJ + j] = fma(vec4<f32>(w[r].z), x, acc[(4u * r + 2u) * NJ + j]);
					acc[(4u * r + 3u) * NJ + j] = fma(vec4<f32>(w[r].w), x, acc[(4u * r + 3u) * NJ + j]);
				}
			}
		}
	}
	return acc;
}

// accumulate_t is accumulate with the tile in pt read the other way round
// (BR = BC): it adds rows cb..cb+VC-1 of the tile, taken as columns, times
// the VC rows of the operand staged at sb. Each 4 x 4 block of the tile is
// read as 4 vec4s and used for 4 staged rows, so it costs as many
// workgroup-memory reads per FMA as accumulate.
fn accumulate_t(sb: u32, cb: u32, tx: u32, ty: u32, acc_in: array<vec4<f32>, NACC>) -> array<vec4<f32>, NACC> {
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
			for (var j = 0u; j < NJ; j++) {
				let d4 = tx + TX * j;
				if (DV4 % TX == 0u || d4 < DV4) {
					let x = stage[sb][4u * c4 + e][d4];
					// @unroll
					for (var r = 0u; r < RG; r++) {
						// @unroll
						for (var i = 0u; i < 4u; i++) {
							acc[(4u * r + i) * NJ + j] = fma(vec4<f32>(w[4u * r + i][e]), x, acc[(4u * r + i) * NJ + j]);
						}
					}
				}
			}
		}
	}
	return acc;
}

// add_dq adds the thread's share of a step's dQ (query rows qb + 4(ty*RG+r)
// + i of head h; acc[(4r + i) * NJ + j][e] is column tx + TX*(4j + e)),
// times units[r][i] (the softmax scale times the row's 2^e), into the
// fixed-point accumulator (see the top of the file): the hi word round(x)
// and the lo field round((x - hi) 2^L). The workgroups of the segment's
// other key blocks add into the same elements; integer adds need no retry.
fn add_dq(t: Tile, h: u32, tx: u32, ty: u32, qb: u32, acc_in: array<vec4<f32>, NACC>, units: array<vec4<f32>, RG>) {
	var acc = acc_in;   // a var: a value array may only be indexed by constants
	// @unroll
	for (var r = 0u; r < RG; r++) {
		// @unroll
		for (var i = 0u; i < 4u; i++) {
			let qi = qb + 4u * (ty * RG + r) + i;
			if (qi < t.q_len) {
				let row = t.q_start + qi;
				// @unroll
				for (var j = 0u; j < NJ; j++) {
					let rh = row * P.hq + h;
					let idx = rh * D + tx + 4u * TX * j;
					let x = acc[(4u * r + i) * NJ + j] * units[r][i];
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

// Offsets of load l (VW vec4s each, DL a row) of row row, head h of
// Q-shaped and K-shaped tensors.
fn q_at(row: u32, h: u32, l: u32) -> u32 {
	return (row * P.hq + h) * DL + l;
}

fn k_at(row: u32, hk: u32, l: u32) -> u32 {
	return (row * P.hkv + hk) * DL + l;
}

// ld_q reads Q (sel 0) or dO (sel 1); ld_k reads K (sel 0) or V (sel 1).
// Every call passes sel as a literal.
fn ld_q(sel: u32, idx: u32) -> LDV {
	if (sel == 0u) {
		return q[idx];
	}
	return d_o[idx];
}

fn ld_k(sel: u32, idx: u32) -> LDV {
	if (sel == 0u) {
		return k[idx];
	}
	return v[idx];
}

// dq_fetch fetches d-chunk c of the block's Q rows and of the K rows
// kb..kb+BC-1 (sel 0), or of dO and V (sel 1).
fn dq_fetch(t: Tile, h: u32, hk: u32, lid: u32, kb: u32, c: u32, sel: u32) -> PairFetch {
	var f: PairFetch;
	// @unroll
	for (var u = 0u; u < PA; u++) {
		let it = lid + u * NT;
		let row = chunk_row(it, BR);
		let l = c * KCL + chunk_col(it, BR);
		f.a[u] = LDV();
		if ((SA % NT == 0u || it < SA) && t.r0 + row < t.q_len && l < DL) {
			f.a[u] = ld_q(sel, q_at(t.q_start + t.r0 + row, h, l));
		}
	}
	// @unroll
	for (var u = 0u; u < PB; u++) {
		let it = lid + u * NT;
		let row = chunk_row(it, BC);
		let l = c * KCL + chunk_col(it, BC);
		f.b[u] = LDV();
		if ((SB % NT == 0u || it < SB) && kb + row < t.k_len && l < DL) {
			f.b[u] = ld_k(sel, k_at(t.k_start + kb + row, hk, l));
		}
	}
	return f;
}

// dkv_fetch fetches d-chunk c of the block's K rows and of the Q rows
// qb..qb+BC-1 of head h (sel 0), or of V and dO (sel 1). With RREG it
// leaves the K or V rows to the caller, which holds them in registers (see
// dkv_main).
fn dkv_fetch(t: Tile, h: u32, hk: u32, lid: u32, qb: u32, c: u32, sel: u32) -> PairFetch {
	var f: PairFetch;
	if (RREG == 0u) {
		f.a = dkv_fetch_rows(t, hk, lid, c, sel);
	}
	// @unroll
	for (var u = 0u; u < PB; u++) {
		let it = lid + u * NT;
		let row = chunk_row(it, BC);
		let l = c * KCL + chunk_col(it, BC);
		f.b[u] = LDV();
		if ((SB % NT == 0u || it < SB) && qb + row < t.q_len && l < DL) {
			f.b[u] = ld_q(sel, q_at(t.q_start + qb + row, h, l));
		}
	}
	return f;
}

// dkv_fetch_rows fetches d-chunk c of the block's K (sel 0) or V (sel 1)
// rows.
fn dkv_fetch_rows(t: Tile, hk: u32, lid: u32, c: u32, sel: u32) -> array<LDV, PA> {
	var a: array<LDV, PA>;
	// @unroll
	for (var u = 0u; u < PA; u++) {
		let it = lid + u * NT;
		let row = chunk_row(it, BR);
		let l = c * KCL + chunk_col(it, BR);
		a[u] = LDV();
		if ((SA % NT == 0u || it < SA) && t.r0 + row < t.k_len && l < DL) {
			a[u] = ld_k(sel, k_at(t.k_start + t.r0 + row, hk, l));
		}
	}
	return a;
}

// widen_rows writes d-chunk c of the block's K rows, as dkv_fetch_rows
// fetched them (a), to k_wide as f32 (WKO). dkv_main calls it in its first
// step, which fetches every d-chunk: every key row that a query sees lies
// in a block with at least one step, so the copy holds every row that
// dqs_main reads.
fn widen_rows(t: Tile, hk: u32, lid: u32, c: u32, a: array<LDV, PA>) {
	// @unroll
	for (var u = 0u; u < PA; u++) {
		let it = lid + u * NT;
		let row = chunk_row(it, BR);
		let l = c * KCL + chunk_col(it, BR);
		if ((SA % NT == 0u || it < SA) && t.r0 + row < t.k_len && l < DL) {
			let i = k_at(t.k_start + t.r0 + row, hk, l) * VW;
			// @unroll
			for (var w = 0u; w < VW; w++) {
				k_wide[i + w] = ld(pick(a[u], w));
			}
		}
	}
}

// dq_fetch_acc fetches the K rows kb..kb+VC-1.
fn dq_fetch_acc(t: Tile, hk: u32, lid: u32, kb: u32) -> array<LDV, PV> {
	var f: array<LDV, PV>;
	// @unroll
	for (var u = 0u; u < PV; u++) {
		let it = lid + u * NT;
		let row = it / DL;
		f[u] = LDV();
		if (((VC * DL) % NT == 0u || it < VC * DL) && kb + row < t.k_len) {
			f[u] = k[k_at(t.k_start + kb + row, hk, it % DL)];
		}
	}
	return f;
}

// dkv_fetch_acc fetches the Q (sel 0) or dO (sel 1) rows qb..qb+VC-1 of head h.
fn dkv_fetch_acc(t: Tile, h: u32, lid: u32, qb: u32, sel: u32) -> array<LDV, PV> {
	var f: array<LDV, PV>;
	// @unroll
	for (var u = 0u; u < PV; u++) {
		let it = lid + u * NT;
		let row = it / DL;
		f[u] = LDV();
		if (((VC * DL) % NT == 0u || it < VC * DL) && qb + row < t.q_len) {
			f[u] = ld_q(sel, q_at(t.q_start + qb + row, h, it % DL));
		}
	}
	return f;
}

// store_pair writes a fetched pair of chunks into stage[sb]: the row
// operand (BR rows) in columns 0..BR4-1 beside the column operand (BC
// rows), untransposed (KU: one 16-byte store per vec4) or transposed (KT:
// four 4-byte stores). With the GPU pattern both are fetched KCL items per
// row, so that reads are contiguous; with the CPU pattern rows fastest.
fn store_pair(sb: u32, lid: u32, f: PairFetch) {
	// @unroll
	for (var u = 0u; u < PA; u++) {
		let it = lid + u * NT;
		if (SA % NT == 0u || it < SA) {
			// @unroll
			for (var w = 0u; w < VW; w++) {
				store_operand(sb, 0u, chunk_row(it, BR), VW * chunk_col(it, BR) + w, BR, ld(pick(f.a[u], w)));
			}
		}
	}
	// @unroll
	for (var u = 0u; u < PB; u++) {
		let it = lid + u * NT;
		if (SB % NT == 0u || it < SB) {
			// @unroll
			for (var w = 0u; w < VW; w++) {
				store_operand(sb, BR4, chunk_row(it, BC), VW * chunk_col(it, BC) + w, BC, ld(pick(f.b[u], w)));
			}
		}
	}
}

// store_acc_cols writes a fetched chunk of K rows (VC x D) into stage[sb] with
// each row's columns reordered for the fused dQ (DV4 % TX == 0): vec4
// tx + TX*j holds columns tx + TX*(4j + e), e < 4.
fn store_acc_cols(sb: u32, lid: u32, f: array<LDV, PV>) {
	// @unroll
	for (var u = 0u; u < PV; u++) {
		let it = lid + u * NT;
		if ((VC * DL) % NT == 0u || it < VC * DL) {
			let row = it / DL;
			// @unroll
			for (var w = 0u; w < VW; w++) {
				let x = ld(pick(f[u], w));
				// @unroll
				for (var e = 0u; e < 4u; e++) {
					let col = 4u * (VW * (it % DL) + w) + e;
					let m = col / TX;   // col = col % TX + TX * m, m = 4j + e'
					stage[sb][row][(m / 4u) * TX + col % TX][m % 4u] = x[e];
				}
			}
		}
	}
}

// store_acc writes a fetched accumulation chunk (VC x D) into stage[sb].
fn store_acc(sb: u32, lid: u32, f: array<LDV, PV>) {
	// @unroll
	for (var u = 0u; u < PV; u++) {
		let it = lid + u * NT;
		if ((VC * DL) % NT == 0u || it < VC * DL) {
			// @unroll
			for (var w = 0u; w < VW; w++) {
				stage[sb][it / DL][VW * (it % DL) + w] = ld(pick(f[u], w));
			}
		}
	}
}
