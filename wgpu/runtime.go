package wgpu

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/coreattn/coreattn/wgpu/internal/backend"
	"github.com/coreattn/coreattn/wgpu/internal/dawnbackend"
	"github.com/coreattn/coreattn/wgpu/internal/gowebgpu"
)

// Runtime names a WebGPU implementation that a Device runs over.
type Runtime string

const (
	// RuntimeAuto picks per adapter: Dawn where Dawn is installed, sees
	// the adapter and offers it f16, subgroups or subgroup matrices (the
	// kernels that need them exist only there, and its f32 rate is at
	// least go-webgpu's: 64.8 against 58.4 TFLOP/s on an H100); go-webgpu
	// otherwise, and always where Dawn is absent.
	RuntimeAuto Runtime = "auto"
	// RuntimeDawn is Dawn, loaded at run time (scripts/dawn.sh installs
	// it): f16, subgroups and subgroup matrices where the adapter has them.
	RuntimeDawn Runtime = "dawn"
	// RuntimeGoWebGPU is go-webgpu (wgpu-native 0.17, linked into the
	// binary): no setup, no f16, subgroups or subgroup matrices.
	RuntimeGoWebGPU Runtime = "go-webgpu"
)

// EnvRuntime names the environment variable that chooses the runtime
// where Options.Runtime is empty.
const EnvRuntime = "COREATTN_RUNTIME"

// ErrNoRuntime is returned when the runtime asked for is not available
// (Dawn not installed, or not loadable on this platform).
var ErrNoRuntime = errors.New("wgpu: runtime not available")

// ParseRuntime is the Runtime that s names: "auto" (or ""), "dawn" or
// "go-webgpu".
func ParseRuntime(s string) (Runtime, error) {
	switch r := Runtime(strings.TrimSpace(s)); r {
	case "", RuntimeAuto:
		return RuntimeAuto, nil
	case RuntimeDawn, RuntimeGoWebGPU:
		return r, nil
	}
	return "", fmt.Errorf("wgpu: runtime %q: want auto, dawn or go-webgpu", s)
}

// RuntimeOf is the runtime opts ask for: Options.Runtime, else
// $COREATTN_RUNTIME, else RuntimeAuto.
func RuntimeOf(opts Options) (Runtime, error) { return opts.resolve() }

func (o Options) resolve() (Runtime, error) {
	if o.Runtime != "" {
		return ParseRuntime(string(o.Runtime))
	}
	r, err := ParseRuntime(os.Getenv(EnvRuntime))
	if err != nil {
		return "", fmt.Errorf("%s: %w", EnvRuntime, err)
	}
	return r, nil
}

// loadDawn loads the Dawn runtime, or returns an error wrapping
// ErrNoRuntime that says how to install it.
func loadDawn() (*dawnbackend.Runtime, error) {
	rt, err := dawnbackend.Load("")
	if err != nil {
		// dawn.ErrNotFound says how to install it; ErrUnsupportedPlatform
		// that this build cannot load it.
		return nil, fmt.Errorf("%w: %w", ErrNoRuntime, err)
	}
	return rt, nil
}

// entry is an adapter of the list a runtime choice gives, with the runtime
// that drives it.
type entry struct {
	info AdapterInfo
	rt   backend.Runtime
}

// listOf lists rt's adapters, indexed in its own order.
func listOf(rt backend.Runtime, opts Options) ([]entry, error) {
	infos, err := rt.Adapters(opts.backend())
	if err != nil {
		return nil, err
	}
	out := make([]entry, len(infos))
	for i, b := range infos {
		out[i] = entry{info: infoOf(b, i, i), rt: rt}
	}
	return out, nil
}

// sameAdapter reports whether two runtimes' descriptions are one adapter.
func sameAdapter(a, b AdapterInfo) bool {
	return a.Backend == b.Backend && a.VendorID == b.VendorID && a.DeviceID == b.DeviceID && a.Name == b.Name
}

// prefersDawn is RuntimeAuto's rule for an adapter that both runtimes see.
func prefersDawn(d AdapterInfo) bool {
	return d.F16 || d.Subgroups || len(d.MatrixConfigs) > 0
}

// merge is RuntimeAuto's list: go-webgpu's adapters in its order, each
// replaced by Dawn's view of the same adapter where prefersDawn; Dawn's
// adapters that go-webgpu does not see are added. webgpu.h cannot
// enumerate, so Dawn shows identical GPUs as one: it replaces the first
// of them only. The list is ordered best first and numbered.
func merge(gw, dw []entry) []entry {
	used := make([]bool, len(dw))
	out := make([]entry, 0, len(gw)+len(dw))
	for _, g := range gw {
		e := g
		for j, d := range dw {
			if !used[j] && sameAdapter(g.info, d.info) {
				used[j] = true
				if prefersDawn(d.info) {
					e = d
				}
				break
			}
		}
		out = append(out, e)
	}
	for j, d := range dw {
		if !used[j] {
			out = append(out, d)
		}
	}
	rank := map[string]int{"DiscreteGPU": 0, "IntegratedGPU": 1, "CPU": 3}
	r := func(e entry) int {
		if v, ok := rank[e.info.Type]; ok {
			return v
		}
		return 2
	}
	sort.SliceStable(out, func(i, j int) bool { return r(out[i]) < r(out[j]) })
	for i := range out {
		out[i].info.Index = i
	}
	return out
}

// entries lists the adapters of the runtime opts asks for. For
// RuntimeAuto, dawnErr says why Dawn took no part (nil if it did).
func entries(opts Options) (list []entry, dawnErr error, err error) {
	rt, err := opts.resolve()
	if err != nil {
		return nil, nil, err
	}
	gw := gowebgpu.Runtime{}
	switch rt {
	case RuntimeGoWebGPU:
		list, err = listOf(gw, opts)
		return list, nil, err
	case RuntimeDawn:
		d, err := loadDawn()
		if err != nil {
			return nil, nil, err
		}
		list, err = listOf(d, opts)
		return list, nil, err
	}
	gl, gerr := listOf(gw, opts)
	if gerr != nil && !errors.Is(gerr, ErrNoAdapter) {
		return nil, nil, gerr
	}
	d, dawnErr := loadDawn()
	var dl []entry
	if dawnErr == nil {
		dl, dawnErr = listOf(d, opts)
	}
	list = merge(gl, dl)
	if len(list) == 0 {
		return nil, dawnErr, gerr
	}
	return list, dawnErr, nil
}

// Adapters lists the usable adapters of the runtime opts asks for, best
// first; with RuntimeAuto, each adapter once, on the runtime it uses.
func Adapters(opts Options) ([]AdapterInfo, error) {
	list, _, err := entries(opts)
	if err != nil {
		return nil, err
	}
	out := make([]AdapterInfo, len(list))
	for i, e := range list {
		out[i] = e.info
	}
	return out, nil
}

// AllAdapters lists every adapter under every runtime this process has
// (go-webgpu, then Dawn where installed), each numbered as that runtime's
// Adapters numbers it, with Chosen set on the rows RuntimeAuto uses.
// dawnErr says why Dawn lists nothing (not installed, no adapter it
// accepts), or is nil.
func AllAdapters(opts Options) (list []AdapterInfo, dawnErr error, err error) {
	opts.Runtime = RuntimeAuto
	auto, dawnErr, err := entries(opts)
	if err != nil {
		return nil, dawnErr, err
	}
	chosen := func(a AdapterInfo) bool {
		for _, e := range auto {
			if e.info.Runtime == a.Runtime && e.info.local == a.local {
				return true
			}
		}
		return false
	}
	for _, rt := range []Runtime{RuntimeGoWebGPU, RuntimeDawn} {
		if rt == RuntimeDawn && dawnErr != nil {
			break
		}
		o := opts
		o.Runtime = rt
		l, _, err := entries(o)
		if err != nil {
			if errors.Is(err, ErrNoAdapter) {
				continue
			}
			return nil, dawnErr, err
		}
		for _, e := range l {
			e.info.Chosen = chosen(e.info)
			list = append(list, e.info)
		}
	}
	return list, dawnErr, nil
}

// Open opens adapter index (as numbered by [Adapters] for the same
// options) with the adapter's own limits, so that large storage bindings
// and the full workgroup memory are available, with timestamp queries
// enabled where supported, and with f16, subgroups and subgroup matrices
// where the runtime offers them.
func Open(index int, opts Options) (*Device, error) {
	rt, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	if rt == RuntimeGoWebGPU {
		return open(gowebgpu.Runtime{}, index, index, opts)
	}
	if rt == RuntimeAuto {
		if _, err := loadDawn(); err != nil {
			// No Dawn: go-webgpu's list is the auto list.
			return open(gowebgpu.Runtime{}, index, index, opts)
		}
	}
	list, _, err := entries(opts)
	if err != nil {
		return nil, err
	}
	if index < 0 || index >= len(list) {
		return nil, fmt.Errorf("wgpu: adapter %d does not exist (have %d: 0..%d; see `coreattn devices`)", index, len(list), len(list)-1)
	}
	e := list[index]
	return open(e.rt, e.info.local, index, opts)
}

// open opens adapter local of rt's own list as adapter index.
func open(rt backend.Runtime, local, index int, opts Options) (*Device, error) {
	impl, err := rt.Open(local, opts.backend())
	if err != nil {
		return nil, err
	}
	return newDevice(impl, infoOf(impl.Info(), index, local)), nil
}

// OpenBest opens the first adapter [Adapters] lists: a discrete GPU if there
// is one, then an integrated GPU, then a software adapter.
func OpenBest(opts Options) (*Device, error) { return Open(0, opts) }

// OpenValidator opens a device on Dawn's Null backend: it compiles and
// validates WGSL with every extension Dawn knows (f16, subgroups, subgroup
// matrices) and runs nothing. For tests and tools that check kernels no
// local adapter can run (CI compiles the tensor-core kernels with it).
// Without Dawn it returns an error wrapping ErrNoRuntime.
func OpenValidator(opts Options) (*Device, error) {
	d, err := loadDawn()
	if err != nil {
		return nil, err
	}
	impl, err := d.OpenNull(opts.backend())
	if err != nil {
		return nil, err
	}
	return newDevice(impl, infoOf(impl.Info(), 0, 0)), nil
}
