package dawn

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// EnvLibrary names the environment variable that points at a Dawn library
// (a libwebgpu_dawn.so or a dawn.node). When set, it is the only candidate.
const EnvLibrary = "COREATTN_DAWN"

// PinnedNodeVersion is the npm package webgpu whose dawn.node the install
// script fetches and whose layout this package knows.
const PinnedNodeVersion = "0.6.2"

// Form says how a library ships Dawn's C API.
type Form int

// Library forms.
const (
	// FormSharedLibrary exports the webgpu.h functions (Debian's
	// libwebgpu_dawn.so): they are found with dlsym.
	FormSharedLibrary Form = iota + 1
	// FormNodeAddon is npm webgpu's dawn.node: the C API exists only as
	// local ELF symbols, resolved from its symbol table.
	FormNodeAddon
)

func (f Form) String() string {
	switch f {
	case FormSharedLibrary:
		return "shared library"
	case FormNodeAddon:
		return "dawn.node"
	}
	return "unknown"
}

// Candidate is one place a Dawn library may be.
type Candidate struct {
	Path   string // absolute path, or a bare soname for the dynamic linker to search
	Source string // "COREATTN_DAWN", "option", "install cache" or "system"
}

// CacheDir is where scripts/dawn.sh installs Dawn: $XDG_CACHE_HOME/coreattn/dawn
// (or ~/.cache/coreattn/dawn).
func CacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("dawn: no cache directory: %w", err)
	}
	return filepath.Join(base, "coreattn", "dawn"), nil
}

// NodeAddonPath is where scripts/dawn.sh puts the pinned dawn.node.
func NodeAddonPath(cache string) string {
	return filepath.Join(cache, "webgpu-"+PinnedNodeVersion, "dawn.node")
}

// multiarch is Debian's library directory name for this architecture.
func multiarch() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64-linux-gnu"
	case "arm64":
		return "aarch64-linux-gnu"
	}
	return runtime.GOARCH + "-linux-gnu"
}

// Candidates lists where to look for Dawn, in order: explicit (an option),
// else $COREATTN_DAWN, each of which is then the only candidate; otherwise
// the install cache, then Debian's libwebgpu_dawn.so.0 in the system
// library directories, then the bare soname for the dynamic linker's own
// search (LD_LIBRARY_PATH, ld.so.cache). A directory given explicitly is
// searched for dawn.node or libwebgpu_dawn.so*.
func Candidates(explicit string) ([]Candidate, error) {
	src := "option"
	if explicit == "" {
		explicit, src = os.Getenv(EnvLibrary), EnvLibrary
	}
	if explicit != "" {
		p, err := explicitPath(explicit)
		if err != nil {
			return nil, fmt.Errorf("%w: %s=%q: %v", ErrNotFound, src, explicit, err)
		}
		return []Candidate{{Path: p, Source: src}}, nil
	}
	var out []Candidate
	if cache, err := CacheDir(); err == nil {
		if p := NodeAddonPath(cache); isFile(p) {
			out = append(out, Candidate{Path: p, Source: "install cache"})
		}
	}
	for _, dir := range []string{"/usr/lib/" + multiarch(), "/usr/lib64", "/usr/lib", "/usr/local/lib"} {
		if p := filepath.Join(dir, "libwebgpu_dawn.so.0"); isFile(p) {
			out = append(out, Candidate{Path: p, Source: "system"})
			break
		}
	}
	return append(out, Candidate{Path: "libwebgpu_dawn.so.0", Source: "system"}), nil
}

func explicitPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		return abs, nil
	}
	for _, name := range []string{"dawn.node", "libwebgpu_dawn.so", "libwebgpu_dawn.so.0"} {
		if q := filepath.Join(abs, name); isFile(q) {
			return q, nil
		}
	}
	return "", fmt.Errorf("no dawn.node or libwebgpu_dawn.so in the directory")
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// isSoname reports whether p is a bare library name for dlopen to search.
func isSoname(p string) bool { return !strings.ContainsRune(p, '/') }
