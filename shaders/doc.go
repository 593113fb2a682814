// Package shaders holds coreattn's WGSL compute kernels, one file per kernel
// family, embedded into the binary, and generates the source for a given
// tiling: the tile shapes are prepended to each kernel as WGSL constants, so
// that every loop has constant bounds and arrays stay in registers.
package shaders
