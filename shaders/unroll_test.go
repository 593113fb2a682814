package shaders

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestUnroll(t *testing.T) {
	tests := []struct {
		name, src, want, err string
	}{
		{
			name: "constant bound",
			src:  "a\n// @unroll\nfor (var i = 0u; i < N; i++) {\n\tx[i] = i;\n}\nb",
			want: "a\n{ let i = 0u;\n\tx[i] = i;\n}\n{ let i = 1u;\n\tx[i] = i;\n}\nb",
		},
		{
			name: "nested literal bound",
			src:  "// @unroll\nfor (var i = 0u; i < 2u; i++) {\n// @unroll\nfor (var j = 0u; j < 1u; j++) {\ny(i, j);\n}\n}",
			want: "{ let i = 0u;\n{ let j = 0u;\ny(i, j);\n}\n}\n{ let i = 1u;\n{ let j = 0u;\ny(i, j);\n}\n}",
		},
		{name: "not a loop", src: "// @unroll\nlet x = 1;", err: "must precede"},
		{name: "unknown bound", src: "// @unroll\nfor (var i = 0u; i < M; i++) {\n}", err: "neither"},
		{name: "unbalanced", src: "// @unroll\nfor (var i = 0u; i < 2u; i++) {\nx();", err: "unbalanced"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := unroll(tt.src, map[string]int{"N": 2})
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			assert.NotContains(t, got, "@unroll")
			assert.Equal(t, strings.Count(got, "{"), strings.Count(got, "}"))
		})
	}
}

func TestKeepIf(t *testing.T) {
	tests := []struct {
		name, src, want, err string
	}{
		{name: "true", src: "a\n// @if ON\nb\n// @end\nc", want: "a\nb\nc"},
		{name: "false", src: "a\n\t// @if OFF\nb\n\t// @end\nc", want: "a\nc"},
		{name: "nested", src: "// @if ON\na\n// @if OFF\nb\n// @end\nc\n// @end", want: "a\nc"},
		{name: "inside false", src: "// @if OFF\na\n// @if ON\nb\n// @end\nc\n// @end\nd", want: "d"},
		{name: "unknown", src: "// @if NOPE\n// @end", err: "not a generated constant"},
		{name: "unclosed", src: "// @if ON\na", err: "without @end"},
		{name: "stray end", src: "a\n// @end", err: "without @if"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := keepIf(tt.src, map[string]int{"ON": 1, "OFF": 0})
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestRuntimeBits: non-finite constants become module variables, declared
// once each; finite ones and other uses of the bits stay.
func TestRuntimeBits(t *testing.T) {
	src := "let a = bitcast<f32>(0x7f800000u);\nlet b = vec4<f32>(bitcast<f32>(0xff800000u));\nlet c = bitcast<f32>(0x7f800000u) + bitcast<f32>(0x3f800000u);\nlet d = x == 0x7fc00000u;\n"
	got := runtimeBits(src)
	want := "var<private> POS_INF_BITS: u32 = 0x7f800000u;\nvar<private> NEG_INF_BITS: u32 = 0xff800000u;\n" +
		"let a = bitcast<f32>(POS_INF_BITS);\nlet b = vec4<f32>(bitcast<f32>(NEG_INF_BITS));\nlet c = bitcast<f32>(POS_INF_BITS) + bitcast<f32>(0x3f800000u);\nlet d = x == 0x7fc00000u;\n"
	assert.Equal(t, want, got)
}
