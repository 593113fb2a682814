// How a d-chunk of a staged operand is fetched, and where each of its rows
// is kept in workgroup memory: appended to the forward's module and to the
// backward's tiled kernels (bwd_tiled.wgsl), which declare stage.
//
// chunk_row and chunk_col are the row and the load within the d-chunk of
// item it of an operand of n rows: CHUNK_LOADS = KC/(4 LOAD_VEC4S)
// consecutive items per row (the GPU pattern: contiguous reads), or rows
// fastest (CPU). Load l holds vec4 columns LOAD_VEC4S*l.. of the chunk (16
// bytes: one vec4 of f32, two of halves; see the dtype's prelude).
fn chunk_row(it: u32, n: u32) -> u32 {
	return select(it / CHUNK_LOADS, it % n, CPU == 1u);
}

fn chunk_col(it: u32, n: u32) -> u32 {
	return select(it % CHUNK_LOADS, it / n, CPU == 1u);
}

// A staged operand of n rows is kept untransposed, one 16-byte store per
// fetched vec4: vec4 column c4 of row x (four d-steps 4*c4..4*c4+3) lies at
// stage row stage_row(x, c4) and vec4 column stage_col(x, c4, n) of the
// operand's columns. The invocation that owns rows 4t..4t+3 of a product
// then reads them with four loads at a column t ^ (a constant) of four
// stage rows: conflict-free, and with clamps computed once (see
// attn_fwd.wgsl on naga's index clamps).
fn stage_row(x: u32, c4: u32) -> u32 {
	return (x % 4u) * KC4 + c4;
}

fn stage_col(x: u32, c4: u32, n: u32) -> u32 {
	return (x / 4u) ^ stage_swz(c4, x % 4u, n);
}

// stage_swz is the XOR on the vec4 column of row 4t + j at offset c4. With
// the GPU pattern with one vec4 a load (f32), eight consecutive
// invocations (one wavefront of 16-byte stores) hold 32/KC consecutive rows
// at KC/4 offsets c4; the XOR puts their eight stores in distinct banks
// (with two a load, halves, each invocation stores two c4 of one row). Only where n/4 is a power of two,
// so that columns stay below n/4.
fn stage_swz(c4: u32, j: u32, n: u32) -> u32 {
	let w = n / 4u;
	if (CPU == 1u || KC > 32u || (w & (w - 1u)) != 0u) {
		return 0u;
	}
	let m = 32u / KC;
	return (c4 * m + j % m) % w;
}

// staged_cols reads, from stage buffer sb, the staged operand of n rows
// whose columns start at vec4 column base: rows 4t..4t+3 at offset c4,
// element [j][e] being row 4t + j at d-step 4*c4 + e.
fn staged_cols(sb: u32, base: u32, t: u32, c4: u32, n: u32) -> array<vec4<f32>, 4> {
	var r: array<vec4<f32>, 4>;
	// @unroll
	for (var j = 0u; j < 4u; j++) {
		r[j] = stage[sb][j * KC4 + c4][base + (t ^ stage_swz(c4, j, n))];
	}
	return r;
}

// The transposed layout (FwdTiling.TransposedK, BwdTiling.Transposed) keeps
// element d-step 4*c4 + e of row x at stage row 4*c4 + e, column
// x ^ 4*tswz(c4, n), four 4-byte stores per fetched vec4 and one read per
// d-step. The XOR puts the transposed stores of a group of 32 invocations
// (32/(KC/4) consecutive rows at KC/4 offsets c4, GPU pattern) in distinct
// banks; columns move by multiples of 8 (never within a vec4), and only
// where n is a power of two, so that they stay below n.
fn tswz(c4: u32, n: u32) -> u32 {
	if (CPU == 1u || (n & (n - 1u)) != 0u) {
		return 0u;
	}
	return (2u * c4) % (n / 4u);
}

// store_operand stores val, vec4 column c4 of row x of an operand of n
// rows, into stage[sb], in the operand's columns from vec4 column base, in
// the layout UNTRANSPOSED or TRANSPOSED selects.
fn store_operand(sb: u32, base: u32, x: u32, c4: u32, n: u32, val: vec4<f32>) {
	if (UNTRANSPOSED == 1u) {
		stage[sb][stage_row(x, c4)][base + stage_col(x, c4, n)] = val;
		return;
	}
	let col = x ^ (4u * tswz(c4, n));
	// @unroll
	for (var e = 0u; e < 4u; e++) {
		stage[sb][4u * c4 + e][base + col / 4u][col % 4u] = val[e];
	}
}

