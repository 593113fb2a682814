package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestBenchGemmFlagErrors checks that bad flags are refused, naming the
// flag and the value, before anything is measured.
func TestBenchGemmFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		f    benchGemmFlags
		err  string
	}{
		{"tiling syntax", benchGemmFlags{tilings: "128x128"}, `--tiling "128x128": want BMxBNxBK/TMxTN[/wWX][/rolled]`},
		{"tiling invalid", benchGemmFlags{tilings: "128x128x16/8x8,64x64x16/6x4"}, `--tiling "64x64x16/6x4": shaders: gemm tiling`},
		{"tiling option", benchGemmFlags{tilings: "128x128x16/8x8/x"}, `--tiling "128x128x16/8x8/x"`},
		{"tiling wx", benchGemmFlags{tilings: "128x128x16/8x8/w3"}, `WX 3 must divide 32`},
		{"tokens", benchGemmFlags{tokens: "16384,x"}, `--tokens "16384,x": want integers from 1 to 16777216`},
		{"split", benchGemmFlags{splits: "0,-1"}, `--split "0,-1": want integers from 0 to 1024`},
		{"tokens too many", benchGemmFlags{tokens: "99999999"}, `--tokens "99999999": want integers from 1 to`},
		{"cube", benchGemmFlags{cube: 1 << 20}, "--cube 1048576: want 0 to 65536"},
		{"reps", benchGemmFlags{reps: -2}, "--reps -2: want 0 to"},
		{"too large for the adapter", benchGemmFlags{cube: 1 << 16, shapes: "NN"}, "more than the adapter's"},
		{"shapes", benchGemmFlags{shapes: "nothing-like-this"}, `--shapes "nothing-like-this" matches no shape`},
		{"adapter", benchGemmFlags{adapter: -1}, "--adapter -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.f.splits == "" {
				tt.f.splits = "0"
			}
			err := runBenchGemm(context.Background(), &globalFlags{}, &tt.f, io.Discard, io.Discard)
			require.ErrorContains(t, err, tt.err)
		})
	}
}

// TestBenchGemmJSON runs two small shapes and checks the JSON lines carry
// what matmul_anchor.py joins on.
func TestBenchGemmJSON(t *testing.T) {
	var out bytes.Buffer
	f := &benchGemmFlags{json: true, cube: 40, tokens: "24", shapes: "NT 40x40x40,small T24 wo dw", reps: 1, splits: "0"}
	require.NoError(t, runBenchGemm(context.Background(), &globalFlags{}, f, &out, io.Discard))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 2)
	for i, want := range []struct {
		shape, cas string
		m, n, k    int
	}{{"NT 40x40x40", "NT", 40, 40, 40}, {"small T24 wo dw TN 384x384x24", "TN", 384, 384, 24}} {
		var r gemmResult
		require.NoError(t, json.Unmarshal([]byte(lines[i]), &r))
		require.Equal(t, want.shape, r.Shape)
		require.Equal(t, want.cas, r.Case)
		require.Equal(t, [3]int{want.m, want.n, want.k}, [3]int{r.M, r.N, r.K})
		require.Positive(t, r.TFLOPS)
		require.NotEmpty(t, r.Tiling)
	}
}

// TestBenchGemmSweep: a sweep reports a tiling the adapter refuses (256x128
// needs 48 KiB of workgroup memory; lavapipe has 32) and goes on.
func TestBenchGemmSweep(t *testing.T) {
	var out bytes.Buffer
	f := &benchGemmFlags{json: true, cube: 32, shapes: "NN 32x", reps: 1, splits: "0", tilings: "256x128x16/8x8,64x64x16/4x4"}
	require.NoError(t, runBenchGemm(context.Background(), &globalFlags{}, f, &out, io.Discard))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 2)
	var bad, good gemmResult
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &bad))
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &good))
	require.Contains(t, bad.Error, "workgroup memory")
	require.Empty(t, good.Error)
	require.Positive(t, good.TFLOPS)
}
