package main

import (
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &benchFlags{pass: "all", dtypes: "f32", dq: "auto"}
			tt.set(f)
			err := runBench(context.Background(), &globalFlags{}, f, io.Discard, io.Discard)
			require.ErrorContains(t, err, tt.err)
		})
	}
}
