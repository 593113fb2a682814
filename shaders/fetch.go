package shaders

import _ "embed"

// fetchHelpers are the WGSL functions that both kernel families use to
// fetch d-chunks and place them in workgroup memory (chunk_row, chunk_col,
// swz); Source prepends them after the generated constants.
//
//go:embed fetch.wgsl
var fetchHelpers string
