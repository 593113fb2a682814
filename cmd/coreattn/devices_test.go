package main

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/wgpu"
)

func TestDevicesJSON(t *testing.T) {
	want, _, err := wgpu.AllAdapters(wgpu.Options{})
	require.NoError(t, err)
	stdout, _, err := execRoot(t, "devices", "--json")
	require.NoError(t, err)
	var rows []map[string]any
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		var r map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r), "line %q", sc.Text())
		rows = append(rows, r)
	}
	require.Len(t, rows, len(want), "one line per adapter and runtime")
	defaults := 0
	for i, r := range rows {
		assert.EqualValues(t, want[i].Index, r["index"])
		assert.Equal(t, want[i].Name, r["name"])
		assert.Equal(t, want[i].Backend, r["backend"])
		assert.Equal(t, string(want[i].Runtime), r["runtime"])
		assert.Equal(t, want[i].F16, r["f16"])
		assert.Equal(t, want[i].Subgroups, r["subgroups"])
		assert.Len(t, r["subgroup_matrices"], len(want[i].MatrixConfigs))
		assert.EqualValues(t, want[i].TimestampPeriod, r["timestamp_period_ns"])
		assert.NotEqual(t, "OpenGL", r["backend"], "GL only with --gl")
		for _, key := range []string{"type", "driver", "max_storage_buffer_binding_size", "max_workgroup_storage_size", "max_invocations_per_workgroup", "timestamps", "subgroup_min_size", "subgroup_max_size", "default"} {
			assert.Contains(t, r, key)
		}
		assert.EqualValues(t, want[i].Limits.MaxWorkgroupStorageSize, r["max_workgroup_storage_size"])
		if r["default"] == true {
			defaults++
		}
	}
	auto, err := wgpu.Adapters(wgpu.Options{Runtime: wgpu.RuntimeAuto})
	require.NoError(t, err)
	assert.Equal(t, len(auto), defaults, "auto uses one runtime per adapter")
}

// TestDevicesRuntime lists one runtime's adapters, and refuses a runtime
// that does not exist.
func TestDevicesRuntime(t *testing.T) {
	want, err := wgpu.Adapters(wgpu.Options{Runtime: wgpu.RuntimeGoWebGPU})
	require.NoError(t, err)
	stdout, _, err := execRoot(t, "devices", "--json", "--runtime", "go-webgpu")
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	require.Len(t, lines, len(want))
	for _, l := range lines {
		assert.Contains(t, l, `"runtime":"go-webgpu"`)
		assert.Contains(t, l, `"f16":false`, "wgpu-native 0.17 has no f16")
	}
	_, _, err = execRoot(t, "devices", "--runtime", "wgpu-native")
	require.ErrorContains(t, err, `--runtime "wgpu-native"`)
}

func TestMatrixList(t *testing.T) {
	h100 := []wgpu.MatrixConfig{
		{M: 16, N: 16, K: 16, Component: "f16", Result: "f16"}, {M: 16, N: 8, K: 16, Component: "f16", Result: "f16"},
		{M: 16, N: 16, K: 16, Component: "f16", Result: "f32"}, {M: 16, N: 8, K: 16, Component: "f16", Result: "f32"},
		{M: 16, N: 16, K: 32, Component: "i8", Result: "i32"},
	}
	assert.Equal(t, "f16->f32 16x16x16 16x8x16; f16->f16 16x16x16 16x8x16; i8->i32 16x16x32", matrixList(h100))
	assert.Equal(t, "-", matrixList(nil))
}

func TestDevicesTable(t *testing.T) {
	want, _, err := wgpu.AllAdapters(wgpu.Options{IncludeGL: true})
	require.NoError(t, err)
	stdout, _, err := execRoot(t, "devices", "--gl")
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	require.GreaterOrEqual(t, len(lines), len(want)+1, "a header and one line per adapter and runtime")
	for _, col := range []string{"RUNTIME", "F16", "SUBGROUPS", "SUBGROUP MATRICES", "TIMESTAMPS"} {
		assert.Contains(t, lines[0], col)
	}
	for i, a := range want {
		assert.Contains(t, lines[i+1], a.Name)
		assert.Contains(t, lines[i+1], a.Backend)
		assert.Contains(t, lines[i+1], string(a.Runtime))
	}
}

func TestByteSize(t *testing.T) {
	for _, c := range []struct {
		in   uint64
		want string
	}{{0, "0 B"}, {1000, "1000 B"}, {32768, "32 KiB"}, {134217728, "128 MiB"}, {2147483647, "2.0 GiB"}, {1536, "1.5 KiB"}} {
		assert.Equal(t, c.want, byteSize(c.in), "%d", c.in)
	}
}
