package wgpu

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/wgpu/internal/backend"
)

func TestParseRuntime(t *testing.T) {
	for s, want := range map[string]Runtime{"": RuntimeAuto, "auto": RuntimeAuto, "dawn": RuntimeDawn, "go-webgpu": RuntimeGoWebGPU, " dawn ": RuntimeDawn} {
		got, err := ParseRuntime(s)
		require.NoError(t, err, "%q", s)
		assert.Equal(t, want, got, "%q", s)
	}
	_, err := ParseRuntime("wgpu-native")
	require.ErrorContains(t, err, `"wgpu-native"`)

	t.Setenv(EnvRuntime, "vulkan")
	_, err = Adapters(Options{})
	require.ErrorContains(t, err, EnvRuntime, "a bad environment variable is named")
	_, err = Open(0, Options{})
	require.ErrorContains(t, err, `"vulkan"`)
	_, err = Adapters(Options{Runtime: "metal"})
	require.ErrorContains(t, err, `"metal"`)
}

// fakeRuntime stands for a runtime in the tests of the auto list.
type fakeRuntime struct{ name string }

func (f fakeRuntime) Name() string                                    { return f.name }
func (fakeRuntime) Adapters(backend.Options) ([]backend.Info, error)  { return nil, nil }
func (fakeRuntime) Open(int, backend.Options) (backend.Device, error) { return nil, nil }

func TestMergeAuto(t *testing.T) {
	gw, dw := fakeRuntime{"go-webgpu"}, fakeRuntime{"dawn"}
	h100 := backend.Info{Name: "NVIDIA H100", Backend: "Vulkan", Type: "DiscreteGPU", VendorID: 0x10de, DeviceID: 0x2330}
	lvp := backend.Info{Name: "llvmpipe (LLVM 15.0.6, 256 bits)", Backend: "Vulkan", Type: "CPU", VendorID: 0x10005}
	igpu := backend.Info{Name: "Intel UHD", Backend: "Vulkan", Type: "IntegratedGPU", VendorID: 0x8086, DeviceID: 7}
	with := func(b backend.Info, rt string, f16, sg bool, m ...backend.MatrixConfig) backend.Info {
		b.Runtime, b.F16, b.Subgroups, b.MatrixConfigs = rt, f16, sg, m
		return b
	}
	list := func(rt backend.Runtime, infos ...backend.Info) []entry {
		out := make([]entry, len(infos))
		for i, b := range infos {
			out[i] = entry{info: infoOf(b, i, i), rt: rt}
		}
		return out
	}
	type row struct {
		name  string
		rt    Runtime
		local int
	}
	rows := func(es []entry) []row {
		var out []row
		for i, e := range es {
			assert.Equal(t, i, e.info.Index, "numbered in order")
			assert.Equal(t, string(e.info.Runtime), e.rt.Name(), "driven by the runtime that described it")
			out = append(out, row{e.info.Name, e.info.Runtime, e.info.local})
		}
		return out
	}
	mm := backend.MatrixConfig{M: 16, N: 16, K: 16, Component: "f16", Result: "f32"}
	for _, tt := range []struct {
		name   string
		gw, dw []entry
		want   []row
	}{
		{"no Dawn: go-webgpu's list",
			list(gw, with(h100, "go-webgpu", false, false), with(lvp, "go-webgpu", false, false)), nil,
			[]row{{"NVIDIA H100", RuntimeGoWebGPU, 0}, {lvp.Name, RuntimeGoWebGPU, 1}}},
		{"Dawn with f16 and matrices wins",
			list(gw, with(h100, "go-webgpu", false, false), with(lvp, "go-webgpu", false, false)), list(dw, with(h100, "dawn", true, true, mm)),
			[]row{{"NVIDIA H100", RuntimeDawn, 0}, {lvp.Name, RuntimeGoWebGPU, 1}}},
		{"Dawn without f16, subgroups or matrices: go-webgpu",
			list(gw, with(lvp, "go-webgpu", false, false)), list(dw, with(lvp, "dawn", false, false)),
			[]row{{lvp.Name, RuntimeGoWebGPU, 0}}},
		{"subgroups alone are enough",
			list(gw, with(lvp, "go-webgpu", false, false)), list(dw, with(lvp, "dawn", false, true)),
			[]row{{lvp.Name, RuntimeDawn, 0}}},
		{"identical GPUs: Dawn shows one, which takes the first",
			list(gw, with(h100, "go-webgpu", false, false), with(h100, "go-webgpu", false, false)), list(dw, with(h100, "dawn", true, true)),
			[]row{{"NVIDIA H100", RuntimeDawn, 0}, {"NVIDIA H100", RuntimeGoWebGPU, 1}}},
		{"an adapter only Dawn sees is added, best first",
			list(gw, with(lvp, "go-webgpu", false, false)), list(dw, with(lvp, "dawn", true, true), with(igpu, "dawn", true, true)),
			[]row{{"Intel UHD", RuntimeDawn, 1}, {lvp.Name, RuntimeDawn, 0}}},
	} {
		assert.Equal(t, tt.want, rows(merge(tt.gw, tt.dw)), tt.name)
	}
}
