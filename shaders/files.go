package shaders

import "embed"

// kernelFiles are the WGSL sources: one or more files per kernel family,
// which the generator concatenates into modules, and fetch.wgsl, shared by
// all of them.
//
//go:embed *.wgsl
var kernelFiles embed.FS

// file is the embedded WGSL file name.
func file(name string) string {
	b, err := kernelFiles.ReadFile(name)
	if err != nil {
		panic("shaders: " + err.Error()) // the names are constants of this package
	}
	return string(b)
}
