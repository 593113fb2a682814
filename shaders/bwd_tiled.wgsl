// The three tiled kernels (dq_main, dkv_main, dqs_main) share one shape.
// "Rows" are what a workgroup owns (queries in the dQ kernels, keys in
// dkv_main), "columns" what it streams. Thread (tx, ty) owns rows
// 4(ty*RG + r) + i (r < RG, i < 4) and columns 4tx..4tx+3 of each BR x BC
// tile of S and dP, held as vec4s along columns, and the accumulator
// columns 4*(tx + TX*j) (j < ACC_COLS) of its rows.
//
// A step (one BC-wide block of columns) is a sequence of phases, each a run
// of chunks staged in workgroup memory: a product phase stages a row
// operand and a column operand d-chunk by d-chunk (KC wide) and adds their
// product to a BR x BC tile; an accumulation phase stages VC rows of a
// D-wide operand and adds the tile in pt (transposed) times them to the
// accumulators. dq_main runs S (Q, K), dP (dO, V), dQ += dS K; dkv_main runs
// Sᵀ (K, Q), dV += Pᵀ dO, dPᵀ (V, dO), dK += dSᵀ Q. Every chunk is fetched
// into registers while the one before it is used, across phases and steps
// too, so that global latency hides behind arithmetic and each chunk costs
// one barrier.
//
// Tensors are stored as IOV and read with ld(); gradients are written as OV
// with st() (OV is IOV except in a WideK dqs_main, which reads an f32 copy
// of K and writes dQ as halves); operands are fetched as LDV (LOAD_VEC4S
// IOVs, 16 bytes where the dtype allows) and taken apart with pick(). All come from
// the prelude (dtype.go). Workgroup arrays are shaped so that in the inner
// loops the varying index (kk, c) is an outer, constant one and the
// innermost a per-thread value: naga clamps every dynamic index, and
// clamps of the same value are computed once (see attn_fwd.wgsl).

// segs = cu_seqlens_q [B+1] ++ cu_seqlens_k [B+1] ++ dQ tiles (segment, q0)
//        ++ dK/dV tiles (segment, k0) ++ (stored dS) the tile offsets
@group(0) @binding(1) var<storage, read> segs: array<u32>;
@group(0) @binding(2) var<storage, read> q: array<LDV>;   // the operands, read LOAD_VEC4S vec4s a load
@group(0) @binding(3) var<storage, read> k: array<LDV>;
@group(0) @binding(4) var<storage, read> v: array<LDV>;
@group(0) @binding(5) var<storage, read> d_o: array<LDV>;
@group(0) @binding(6) var<storage, read> lse: array<f32>;
@group(0) @binding(7) var<storage, read> dlt: array<f32>;   // Delta [Hq, total_q], then the fixed-point scales 2^e [Hq, total_q]

const LOG2E: f32 = 1.4426950408889634;

// stage[sb] holds, in turn, the d-chunks of a row operand (columns
// 0..BR4-1) beside a column operand (columns BR4..), both in one of
// fetch.wgsl's layouts (UNTRANSPOSED or TRANSPOSED), and the VC x D chunks
// of the accumulating products; the two buffers are filled and used
// alternately. pt holds the transposed P or dS tile, one row per column of
// the tile.
var<workgroup> stage: array<array<array<vec4<f32>, STAGE_WIDTH>, STAGE_ROWS>, 2>;
var<workgroup> pt: array<array<vec4<f32>, PT_STRIDE>, BC>;

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
	a: array<LDV, ROW_FETCHES>,
	b: array<LDV, COL_FETCHES>,
}

// pt_col is where row group g of tile column col lies in pt[col]. A
// power-of-two number of row groups is stored unpadded and swizzled
// (g XOR col/4) so that the threads of a warp, which write columns
// 4tx..4tx+3 of the same row group, hit distinct banks; any other number is
// padded by one.
fn pt_col(col: u32, g: u32) -> u32 {
	return g ^ ((col >> 2u) & PT_SWIZZLE);
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
// the thread's share of a BR x BC tile: four d-steps per read
// (UNTRANSPOSED), or one (TRANSPOSED).
fn products(sb: u32, tx: u32, ty: u32, s_in: array<vec4<f32>, RM>) -> array<vec4<f32>, RM> {
	var s = s_in;
	// @if UNTRANSPOSED
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
	// @if TRANSPOSED
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
fn accumulate(sb: u32, cb: u32, tx: u32, ty: u32, acc_in: array<vec4<f32>, ACC_VEC4S>) -> array<vec4<f32>, ACC_VEC4S> {
	var acc = acc_in;
	let q4 = cb >> 2u;   // cb is a multiple of VC: with VC % 4 == 0, (cb + c) >> 2 is q4 + c / 4
	// @unroll
	for (var c = 0u; c < VC; c++) {
		var w: array<vec4<f32>, RG>;
		// @unroll
		for (var r = 0u; r < RG; r++) {
			if (VC % 4u == 0u) {
				w[r] = pt[cb + c][(ty * RG + r) ^ ((q4 + c / 4u) & PT_SWIZZLE)];
			} else {
				w[r] = pt[cb + c][pt_col(cb + c, ty * RG + r)];
			}
		}
		// @unroll
		for (var j = 0u; j < ACC_COLS; j++) {
			let d4 = tx + TX * j;
			if (DV4 % TX == 0u || d4 < DV4) {
				let x = stage[sb][c][d4];
				// @unroll
				for (var r = 0u; r < RG; r++) {
					acc[(4u * r) * ACC_COLS + j] = fma(vec4<f32>(w[r].x), x, acc[(4u * r) * ACC_COLS + j]);
					acc[(4u * r + 1u) * ACC_COLS + j] = fma(vec4<f32>(w[r].y), x, acc[(4u * r + 1u) * ACC_COLS + j]);
					acc[(4u * r + 2u) * ACC_COLS + j] = fma(vec4<f32>(w[r].z), x, acc[(4u * r + 2u) * ACC_COLS + j]);
					acc[(4u * r + 3u) * ACC_COLS + j] = fma(vec4<f32>(w[r].w), x, acc[(4u * r + 3u) * ACC_COLS + j]);
				}
			}
		}
	}
	return acc;
}

// Offsets of load l (LOAD_VEC4S vec4s each, ROW_LOADS a row) of row row,
// head h of Q-shaped and K-shaped tensors.
fn q_at(row: u32, h: u32, l: u32) -> u32 {
	return (row * P.hq + h) * ROW_LOADS + l;
}

fn k_at(row: u32, hk: u32, l: u32) -> u32 {
	return (row * P.hkv + hk) * ROW_LOADS + l;
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

// dq_fetch_acc fetches the K rows kb..kb+VC-1.
fn dq_fetch_acc(t: Tile, hk: u32, lid: u32, kb: u32) -> array<LDV, ACC_FETCHES> {
	var f: array<LDV, ACC_FETCHES>;
	// @unroll
	for (var u = 0u; u < ACC_FETCHES; u++) {
		let it = lid + u * THREADS;
		let row = it / ROW_LOADS;
		f[u] = LDV();
		if (((VC * ROW_LOADS) % THREADS == 0u || it < VC * ROW_LOADS) && kb + row < t.k_len) {
			f[u] = k[k_at(t.k_start + kb + row, hk, it % ROW_LOADS)];
		}
	}
	return f;
}

// store_pair writes a fetched pair of chunks into stage[sb]: the row
// operand (BR rows) in columns 0..BR4-1 beside the column operand (BC
// rows), untransposed (one 16-byte store per vec4) or transposed (four
// 4-byte stores). With the GPU pattern both are fetched CHUNK_LOADS items
// per row, so that reads are contiguous; with the CPU pattern rows fastest.
fn store_pair(sb: u32, lid: u32, f: PairFetch) {
	// @unroll
	for (var u = 0u; u < ROW_FETCHES; u++) {
		let it = lid + u * THREADS;
		if (ROW_CHUNK_LOADS % THREADS == 0u || it < ROW_CHUNK_LOADS) {
			// @unroll
			for (var w = 0u; w < LOAD_VEC4S; w++) {
				store_operand(sb, 0u, chunk_row(it, BR), LOAD_VEC4S * chunk_col(it, BR) + w, BR, ld(pick(f.a[u], w)));
			}
		}
	}
	// @unroll
	for (var u = 0u; u < COL_FETCHES; u++) {
		let it = lid + u * THREADS;
		if (COL_CHUNK_LOADS % THREADS == 0u || it < COL_CHUNK_LOADS) {
			// @unroll
			for (var w = 0u; w < LOAD_VEC4S; w++) {
				store_operand(sb, BR4, chunk_row(it, BC), LOAD_VEC4S * chunk_col(it, BC) + w, BC, ld(pick(f.b[u], w)));
			}
		}
	}
}

// store_acc writes a fetched accumulation chunk (VC x D) into stage[sb].
fn store_acc(sb: u32, lid: u32, f: array<LDV, ACC_FETCHES>) {
	// @unroll
	for (var u = 0u; u < ACC_FETCHES; u++) {
		let it = lid + u * THREADS;
		if ((VC * ROW_LOADS) % THREADS == 0u || it < VC * ROW_LOADS) {
			// @unroll
			for (var w = 0u; w < LOAD_VEC4S; w++) {
				stage[sb][it / ROW_LOADS][LOAD_VEC4S * (it % ROW_LOADS) + w] = ld(pick(f[u], w));
			}
		}
	}
}
