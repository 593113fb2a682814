package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseByteSizes(t *testing.T) {
	got, err := parseByteSizes("1MiB, 64KiB,2GiB,12B")
	require.NoError(t, err)
	assert.Equal(t, []uint64{1 << 20, 64 << 10, 2 << 30, 12}, got)
	for _, bad := range []string{"", "1", "0MiB", "1TB", "MiB", "-1MiB", "1MiB,"} {
		_, err := parseByteSizes(bad)
		require.ErrorContains(t, err, "--sizes", bad)
	}
}

// TestBenchTransferFlagErrors: bad flags are refused, naming the flag and
// the value, before anything is opened.
func TestBenchTransferFlagErrors(t *testing.T) {
	base := benchTransferFlags{methods: "staged", dirs: "up", modes: "alone"}
	for _, tt := range []struct {
		name string
		edit func(*benchTransferFlags)
		err  string
	}{
		{"sizes", func(f *benchTransferFlags) { f.sizes = "1XB" }, `--sizes "1XB"`},
		{"method", func(f *benchTransferFlags) { f.methods = "staged,fast" }, `--method "staged,fast"`},
		{"direction", func(f *benchTransferFlags) { f.dirs = "sideways" }, `--direction "sideways"`},
		{"mode", func(f *benchTransferFlags) { f.modes = "apart" }, `--mode "apart"`},
		{"reps", func(f *benchTransferFlags) { f.reps = -1 }, "--reps -1"},
		{"many reps", func(f *benchTransferFlags) { f.reps = 1 << 30 }, "--reps 1073741824"},
		{"huge size", func(f *benchTransferFlags) { f.sizes = "1MiB,8GiB" }, `--sizes "1MiB,8GiB": 8 GiB is over`},
		{"odd size", func(f *benchTransferFlags) { f.sizes = "1MiB,13B" }, `--sizes "1MiB,13B": 13 bytes is not a multiple of 4`},
		{"chunk", func(f *benchTransferFlags) { f.chunkMiB = 2000 }, "--chunk 2000"},
		{"depth", func(f *benchTransferFlags) { f.depth = 17 }, "--depth 17"},
		{"adapter", func(f *benchTransferFlags) { f.adapters = "0,99" }, `--adapter "0,99"`},
		{"size beyond the limit", func(f *benchTransferFlags) { f.sizes = "4GiB" }, "every size exceeds"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := base
			tt.edit(&f)
			err := runBenchTransfer(context.Background(), &globalFlags{}, &f, io.Discard, io.Discard)
			require.ErrorContains(t, err, tt.err)
		})
	}
}

// TestBenchTransferJSON measures two small sizes on two devices of the
// first adapter, alone and together, every method and direction: each
// line is verified and carries the keys memcpy_anchor.py's lines have.
func TestBenchTransferJSON(t *testing.T) {
	var out bytes.Buffer
	f := &benchTransferFlags{adapters: "0,0", json: true, sizes: "64KiB,1MiB", reps: 2, methods: "all", dirs: "up,down,both", modes: "alone,together", chunkMiB: 0}
	require.NoError(t, runBenchTransfer(context.Background(), &globalFlags{}, f, &out, io.Discard))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	// Per device and size: 3 upload methods, a download, both at once.
	require.Len(t, lines, 2*2*5+2*2*5)
	seen := map[string]int{}
	for _, line := range lines {
		var raw map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &raw))
		for _, key := range []string{"impl", "direction", "gb_per_s"} {
			require.Contains(t, raw, key)
		}
		var r transferResult
		require.NoError(t, json.Unmarshal([]byte(line), &r))
		require.Empty(t, r.Error)
		require.True(t, r.Verified, line)
		require.Positive(t, r.GBPerS, line)
		require.Equal(t, 2, r.Reps)
		require.Contains(t, []string{dirUp, dirDown, dirBoth}, r.Direction)
		if r.Direction == dirBoth {
			require.Positive(t, r.UpGBPerS)
			require.Positive(t, r.DownGBPerS)
		}
		if r.Mode == "together" {
			require.Equal(t, 2, r.Adapters)
		}
		seen[r.Mode+" "+r.Direction+" "+r.Method]++
	}
	assert.Equal(t, 4, seen["alone host-to-device mapped-at-creation"])
	assert.Equal(t, 4, seen["together device-to-host staged"])
}

// TestBenchTransferTable prints the table, with a size the adapter cannot
// hold listed as skipped.
func TestBenchTransferTable(t *testing.T) {
	var out bytes.Buffer
	f := &benchTransferFlags{sizes: "256KiB,4GiB", reps: 1, methods: "staged", dirs: "up,down", modes: "alone"}
	require.NoError(t, runBenchTransfer(context.Background(), &globalFlags{}, f, &out, io.Discard))
	s := out.String()
	assert.Contains(t, s, "GB/s")
	assert.Contains(t, s, "256 KiB")
	assert.Contains(t, s, "4 GiB")
	assert.Contains(t, s, "skipped: beyond the adapter's buffer limit")
	assert.Equal(t, 2, strings.Count(s, " ok\n"), s)
}
