package dawn

import (
	"debug/elf"
	"errors"
	"fmt"
	"runtime"
	"strings"
)

// Symbols of dawn.node that Load needs besides the wgpu* functions.
const (
	symGetProcs = "_ZN4dawn6native8GetProcsEv" // dawn::native::GetProcs()
	symSetProcs = "dawnProcSetProcs"
)

// elfImage is what Load learns from a library file before opening it.
type elfImage struct {
	form  Form
	funcs map[string]uint64 // wanted function symbols -> st_value (FormNodeAddon)
	napi  []string          // undefined napi_* imports
}

var elfMachine = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// readELF classifies a library and, for dawn.node, reads the values of the
// wanted functions from its symbol table (.symtab: they are local symbols,
// invisible to dlsym).
func readELF(path string, want map[string]bool) (*elfImage, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnsupportedLibrary, path, err)
	}
	defer f.Close()
	if m, ok := elfMachine[runtime.GOARCH]; !ok || f.Machine != m || f.Class != elf.ELFCLASS64 {
		return nil, fmt.Errorf("%w: %s is built for %v, not %s", ErrUnsupportedLibrary, path, f.Machine, runtime.GOARCH)
	}
	img := &elfImage{form: FormSharedLibrary}
	dyn, err := f.DynamicSymbols()
	if err != nil {
		return nil, fmt.Errorf("%w: %s has no dynamic symbols: %v", ErrUnsupportedLibrary, path, err)
	}
	exportsAPI := false
	for _, s := range dyn {
		switch {
		case s.Name == "napi_register_module_v1" && s.Section != elf.SHN_UNDEF:
			img.form = FormNodeAddon
		case s.Name == "wgpuCreateInstance" && s.Section != elf.SHN_UNDEF:
			exportsAPI = true
		case strings.HasPrefix(s.Name, "napi_") && s.Section == elf.SHN_UNDEF:
			img.napi = append(img.napi, s.Name)
		}
	}
	if exportsAPI {
		img.form = FormSharedLibrary
		return img, nil
	}
	if img.form != FormNodeAddon {
		return nil, fmt.Errorf("%w: %s neither exports wgpuCreateInstance nor is a Node addon", ErrUnsupportedLibrary, path)
	}
	syms, err := f.Symbols()
	if errors.Is(err, elf.ErrNoSymbols) {
		return nil, fmt.Errorf("%w: %s is stripped (no .symtab), so its C API cannot be found", ErrUnsupportedLibrary, path)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnsupportedLibrary, path, err)
	}
	img.funcs = funcValues(syms, want)
	return img, nil
}

// funcValues picks the defined functions named in want.
func funcValues(syms []elf.Symbol, want map[string]bool) map[string]uint64 {
	out := make(map[string]uint64, len(want))
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Value != 0 && s.Section != elf.SHN_UNDEF && want[s.Name] {
			out[s.Name] = s.Value
		}
	}
	return out
}
