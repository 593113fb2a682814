// fetch.wgsl: how a d-chunk of a staged operand is fetched and where its
// transposed rows keep each column. Shared by attn_fwd.wgsl and
// attn_bwd.wgsl, after their generated constants (KC and CPU).
//
// chunk_row and chunk_col are the row and the vec4 column within the
// d-chunk of item it of an operand of n rows: KC/4 consecutive items per
// row (the GPU pattern: contiguous reads), or rows fastest (CPU).
fn chunk_row(it: u32, n: u32) -> u32 {
	return select(it / (KC / 4u), it % n, CPU == 1u);
}

fn chunk_col(it: u32, n: u32) -> u32 {
	return select(it % (KC / 4u), it / n, CPU == 1u);
}

// swz(c4, n) is the vec4-column swizzle of the transposed rows
// 4*c4..4*c4+3 of an operand of n columns: column j is kept at
// j ^ 4*swz(c4, n), so that a group of 32 invocations, which stores
// 32/(KC/4) consecutive rows at KC/4 offsets c4, hits distinct banks.
// Columns move by multiples of 8 (never within a vec4), and only with the
// GPU pattern where n is a power of two, so that they stay below n.
fn swz(c4: u32, n: u32) -> u32 {
	if (CPU == 1u || (n & (n - 1u)) != 0u) {
		return 0u;
	}
	return (2u * c4) % (n / 4u);
}
