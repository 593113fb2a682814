//go:build linux && cgo

package dawn

/*
#cgo CFLAGS: -I${SRCDIR} -O2 -Wno-unused-function
#cgo LDFLAGS: -ldl -lpthread
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"unsafe"
)

// Library is a loaded Dawn. A library stays loaded for the life of the
// process (Dawn starts threads; unloading it is not safe), so Load returns
// the same *Library for the same path.
type Library struct {
	path  string
	form  Form
	procs *C.ca_procs
	// configStride is the size in 32-bit words of one subgroup-matrix
	// config in this build (see third_party/README.md).
	configStride int
}

// Path is the file the library was loaded from.
func (l *Library) Path() string { return l.path }

// Form says how the library ships the C API.
func (l *Library) Form() Form { return l.form }

// loaded holds the process's libraries: dlopen and dawn.node's proc table
// are process-wide, so this registry is too.
var loaded struct {
	sync.Mutex
	libs map[string]*Library
}

// Open loads the first usable library among [Candidates](explicit). It
// returns an error wrapping ErrNotFound when there is none, and one wrapping
// ErrUnsupportedLibrary (with every candidate's reason) when candidates
// exist but none loads.
func Open(explicit string) (*Library, error) {
	cands, err := Candidates(explicit)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, c := range cands {
		lib, err := Load(c.Path)
		if err == nil {
			return lib, nil
		}
		if isSoname(c.Path) && errors.Is(err, ErrNotFound) && len(cands) > 1 {
			continue // the bare soname is only a last resort
		}
		errs = append(errs, fmt.Errorf("%s (%s): %w", c.Path, c.Source, err))
	}
	if len(errs) == 0 || (len(cands) == 1 && isSoname(cands[0].Path) && errors.Is(errs[0], ErrNotFound)) {
		return nil, ErrNotFound
	}
	return nil, errors.Join(errs...)
}

// Load opens the library at path: a libwebgpu_dawn.so (or its bare soname)
// or a dawn.node.
func Load(path string) (*Library, error) {
	loaded.Lock()
	defer loaded.Unlock()
	if lib, ok := loaded.libs[path]; ok {
		return lib, nil
	}
	lib, err := load(path)
	if err != nil {
		return nil, err
	}
	if loaded.libs == nil {
		loaded.libs = map[string]*Library{}
	}
	loaded.libs[path] = lib
	return lib, nil
}

func procNames() []string {
	n := int(C.ca_nprocs())
	names := make([]string, n)
	for i := range names {
		names[i] = C.GoString(C.ca_proc_name(C.int(i)))
	}
	return names
}

func load(path string) (*Library, error) {
	names := procNames()
	form := FormSharedLibrary
	var img *elfImage
	if !isSoname(path) {
		want := map[string]bool{symGetProcs: true, symSetProcs: true}
		for _, n := range names {
			want[n] = true
		}
		var err error
		if img, err = readELF(path, want); err != nil {
			return nil, err
		}
		form = img.form
		if form == FormNodeAddon {
			var unknown []string
			for _, s := range img.napi {
				if !napiStubs[s] {
					unknown = append(unknown, s)
				}
			}
			if len(unknown) > 0 {
				sort.Strings(unknown)
				return nil, fmt.Errorf("%w: %s imports N-API functions this package does not stub (%v): only webgpu@%s's dawn.node is supported", ErrUnsupportedLibrary, path, unknown, PinnedNodeVersion)
			}
		}
	}

	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var handle unsafe.Pointer
	lazy := C.int(0)
	if form == FormNodeAddon {
		lazy = 1
	}
	if msg := C.ca_dlopen(cpath, lazy, &handle); msg != nil {
		text := C.GoString(msg)
		C.free(unsafe.Pointer(msg))
		if isSoname(path) {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, text)
		}
		return nil, fmt.Errorf("%w: dlopen: %s", ErrUnsupportedLibrary, text)
	}

	procs := C.ca_procs_new()
	lib := &Library{path: path, form: form, procs: procs, configStride: 5}
	var missing []string
	switch form {
	case FormSharedLibrary:
		for i, n := range names {
			cn := C.CString(n)
			fn := C.ca_dlsym(handle, cn)
			C.free(unsafe.Pointer(cn))
			if fn == nil {
				missing = append(missing, n)
			}
			C.ca_procs_set(procs, C.int(i), fn)
		}
	case FormNodeAddon:
		// Symbol values are offsets from the load address; the pinned
		// build's subgroup-matrix config entries are 7 words long.
		lib.configStride = 7
		bias := uintptr(C.ca_load_bias(handle))
		if bias == 0 {
			return nil, fmt.Errorf("%w: %s: no load address", ErrUnsupportedLibrary, path)
		}
		addr := func(n string) unsafe.Pointer {
			v, ok := img.funcs[n]
			if !ok {
				return nil
			}
			return C.ca_offset(C.uintptr_t(bias), C.uint64_t(v))
		}
		for i, n := range names {
			fn := addr(n)
			if fn == nil {
				missing = append(missing, n)
			}
			C.ca_procs_set(procs, C.int(i), fn)
		}
		get, set := addr(symGetProcs), addr(symSetProcs)
		if get == nil || set == nil {
			missing = append(missing, symGetProcs, symSetProcs)
		} else if len(missing) == 0 && C.ca_install_dawn_procs(get, set) != 0 {
			return nil, fmt.Errorf("%w: %s: dawn::native::GetProcs returned no table", ErrUnsupportedLibrary, path)
		}
	}
	if len(missing) > 0 {
		C.free(unsafe.Pointer(procs))
		return nil, fmt.Errorf("%w: %s lacks %v", ErrUnsupportedLibrary, path, missing)
	}
	return lib, nil
}
