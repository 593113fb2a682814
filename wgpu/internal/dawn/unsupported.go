//go:build !(linux && cgo)

package dawn

// Library is a loaded Dawn; this build cannot load one.
type Library struct{}

// Open reports ErrUnsupportedPlatform: the Dawn runtime needs linux and cgo.
func Open(explicit string) (*Library, error) { return nil, ErrUnsupportedPlatform }

// Load reports ErrUnsupportedPlatform: the Dawn runtime needs linux and cgo.
func Load(path string) (*Library, error) { return nil, ErrUnsupportedPlatform }
