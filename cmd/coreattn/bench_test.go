package main

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coreattn/coreattn/attention/gpu"
	"github.com/coreattn/coreattn/wgpu"
)

// TestBenchFlagErrors checks that bad bench flags are refused, naming the
// flag and the value, before anything is measured.
func TestBenchFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		set  func(f *benchFlags)
		err  string
	}{
		{"pass", func(f *benchFlags) { f.pass = "sideways" }, `--pass "sideways"`},
		{"dtype", func(f *benchFlags) { f.dtypes = "f32,f8" }, `--dtype "f32,f8"`},
		{"dq", func(f *benchFlags) { f.dq = "maybe" }, `--dq: attention: DQ mode "maybe": want one of auto, fused, separate, stored`},
		{"tiling", func(f *benchFlags) { f.tiling = "16,16" }, `--fwd-tiling "16,16": want five positive integers`},
		{"dkv tiling", func(f *benchFlags) { f.dkvTile = "0,16,4,16,16" }, `--dkv-tiling "0,16,4,16,16"`},
		{"transposed alone", func(f *benchFlags) { f.transp = true }, "--transposed applies to a forced tiling"},
		{"kernels", func(f *benchFlags) { f.kernels = "wmma" }, `--kernels "wmma"`},
		{"sweep without tensor cores", func(f *benchFlags) { f.tcSweep = 2 }, "--tc-sweep 2: applies to --kernels tensor-core"},
		{"runtime", func(f *benchFlags) {}, `"metal"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &benchFlags{pass: "all", dtypes: "f32", dq: "auto", kernels: "auto"}
			tt.set(f)
			g := &globalFlags{}
			if tt.name == "runtime" {
				g.runtime = "metal"
			}
			err := runBench(context.Background(), g, f, io.Discard, io.Discard)
			require.ErrorContains(t, err, tt.err)
		})
	}
}

// TestBenchKernels runs the smallest shape with the FFMA kernels and with
// tensor cores: each row names its kernels and runtime; tensor cores on an
// adapter without subgroup matrices are a clear error.
func TestBenchKernels(t *testing.T) {
	stdout, _, err := execRoot(t, "bench", "--json", "--kernels", "ffma", "--shapes", "S512", "--pass", "fwd", "--reps", "1")
	require.NoError(t, err)
	var row benchResult
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(stdout)), &row))
	assert.Equal(t, "ffma", row.Kernels)
	dev, err := wgpu.OpenBest(wgpu.Options{})
	require.NoError(t, err)
	info := dev.Info()
	dev.Close()
	assert.Equal(t, string(info.Runtime), row.Runtime)
	_, tcErr := gpu.TensorCoreDevice(info)
	_, _, err = execRoot(t, "bench", "--json", "--kernels", "tensor-core", "--shapes", "S512", "--pass", "fwd", "--dtype", "f16", "--reps", "1")
	if tcErr != nil {
		require.ErrorIs(t, err, gpu.ErrNoTensorCores)
		require.ErrorContains(t, err, "--kernels tensor-core")
		return
	}
	require.NoError(t, err)
}

// TestAttentionKernelsFlag refuses a kernel family that does not exist and
// one asked of a pool, before any file is read.
func TestAttentionKernelsFlag(t *testing.T) {
	base := []string{"attention", "--q", "q.npy", "--k", "k.npy", "--v", "v.npy", "--cu-seqlens-q", "cq.npy", "--cu-seqlens-k", "ck.npy", "--out", "o.npy", "--lse", "l.npy"}
	_, _, err := execRoot(t, append(base, "--kernels", "wmma")...)
	require.ErrorContains(t, err, `--kernels "wmma"`)
	_, _, err = execRoot(t, append(base, "--kernels", "ffma", "--servers", "2")...)
	require.ErrorContains(t, err, "--kernels ffma applies to one server")
}
