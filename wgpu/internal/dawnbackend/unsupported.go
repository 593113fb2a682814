//go:build !(linux && cgo)

package dawnbackend

import (
	"github.com/coreattn/coreattn/wgpu/internal/backend"
	"github.com/coreattn/coreattn/wgpu/internal/dawn"
)

// Name is the runtime's name in reports and options.
const Name = "dawn"

// Runtime is the Dawn runtime; this build has none.
type Runtime struct{}

// Load reports dawn.ErrUnsupportedPlatform: the Dawn runtime needs linux and cgo.
func Load(string) (*Runtime, error) { return nil, dawn.ErrUnsupportedPlatform }

// Name is "dawn".
func (*Runtime) Name() string { return Name }

// Path is empty: nothing was loaded.
func (*Runtime) Path() string { return "" }

// Adapters reports dawn.ErrUnsupportedPlatform.
func (*Runtime) Adapters(backend.Options) ([]backend.Info, error) {
	return nil, dawn.ErrUnsupportedPlatform
}

// Open reports dawn.ErrUnsupportedPlatform.
func (*Runtime) Open(int, backend.Options) (backend.Device, error) {
	return nil, dawn.ErrUnsupportedPlatform
}

// OpenNull reports dawn.ErrUnsupportedPlatform.
func (*Runtime) OpenNull(backend.Options) (backend.Device, error) {
	return nil, dawn.ErrUnsupportedPlatform
}
