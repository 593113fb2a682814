package shaders

// fetchHelpers are the WGSL functions that both kernel families use to
// fetch d-chunks, place them in workgroup memory and read them back
// (chunk_row, chunk_col, stage_row, stage_col, staged_cols); the generator
// appends them to the forward's module and to the backward's tiled kernels.
var fetchHelpers = file("fetch.wgsl")
