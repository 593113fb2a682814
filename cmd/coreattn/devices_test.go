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
	want, err := wgpu.Adapters(wgpu.Options{})
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
	require.Len(t, rows, len(want), "one line per adapter")
	for i, r := range rows {
		assert.EqualValues(t, i, r["index"])
		assert.Equal(t, want[i].Name, r["name"])
		assert.Equal(t, want[i].Backend, r["backend"])
		assert.NotEqual(t, "OpenGL", r["backend"], "GL only with --gl")
		for _, key := range []string{"type", "driver", "max_storage_buffer_binding_size", "max_workgroup_storage_size", "max_invocations_per_workgroup", "timestamps"} {
			assert.Contains(t, r, key)
		}
		assert.EqualValues(t, want[i].Limits.MaxWorkgroupStorageSize, r["max_workgroup_storage_size"])
	}
}

func TestDevicesTable(t *testing.T) {
	want, err := wgpu.Adapters(wgpu.Options{IncludeGL: true})
	require.NoError(t, err)
	stdout, _, err := execRoot(t, "devices", "--gl")
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	require.Len(t, lines, len(want)+1, "a header and one line per adapter")
	assert.Contains(t, lines[0], "TIMESTAMPS")
	for i, a := range want {
		assert.Contains(t, lines[i+1], a.Name)
		assert.Contains(t, lines[i+1], a.Backend)
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
