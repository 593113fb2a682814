package shaders

// fetchHelpers are the WGSL functions that both kernel families use to
// fetch d-chunks, place them in workgroup memory and read them back
// (chunk_row, chunk_col, stage_row, stage_col, staged_cols); Source appends
// them to the kernel's own source, before unrolling.
var fetchHelpers = file("fetch.wgsl")
