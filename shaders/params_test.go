package shaders

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// paramMirrors maps each kernel file that declares a struct Params to its
// Go mirror.
var paramMirrors = map[string]any{
	"attn_fwd.wgsl":    FwdParams{},
	"bwd_common.wgsl":  BwdParams{},
	"gemm.wgsl":        GemmParams{},
	"gemm_sgmat.wgsl":  GemmParams{},
	"gemm_reduce.wgsl": GemmParams{},
	"tc_fwd.wgsl":      TCFwdParams{},
	"tc_bwd.wgsl":      TCBwdParams{},
	"tc_cast.wgsl":     TCCastParams{},
}

// wgslField is one field of a WGSL struct.
type wgslField struct{ name, typ string }

var (
	wgslComment = regexp.MustCompile(`//[^\n]*`)
	wgslParams  = regexp.MustCompile(`struct\s+Params\s*\{([^}]*)\}`)
	wgslMember  = regexp.MustCompile(`^(?:@\w+(?:\([^)]*\))?\s*)*(\w+)\s*:\s*([\w<>, ]+?)\s*$`)
)

// parseParams returns the fields of src's struct Params, or ok false where
// it declares none.
func parseParams(src string) (fields []wgslField, ok bool, err error) {
	m := wgslParams.FindStringSubmatch(wgslComment.ReplaceAllString(src, ""))
	if m == nil {
		return nil, false, nil
	}
	for _, decl := range strings.Split(m[1], ",") {
		decl = strings.TrimSpace(decl)
		if decl == "" {
			continue
		}
		f := wgslMember.FindStringSubmatch(decl)
		if f == nil {
			return nil, true, fmt.Errorf("cannot read struct member %q", decl)
		}
		fields = append(fields, wgslField{f[1], f[2]})
	}
	return fields, true, nil
}

// goFields describes a parameter struct's fields as WGSL would declare
// them, by the naming rule of params.go: blank fields as padding.
func goFields(v any) ([]wgslField, error) {
	typ := reflect.TypeOf(v)
	var out []wgslField
	for i := range typ.NumField() {
		f := typ.Field(i)
		name := wgslName(f.Name)
		if f.Name == "_" {
			name = "_pad"
		}
		var wt string
		switch f.Type.Kind() {
		case reflect.Uint32:
			wt = "u32"
		case reflect.Int32:
			wt = "i32"
		case reflect.Float32:
			wt = "f32"
		default:
			return nil, fmt.Errorf("field %s: type %s has no 4-byte WGSL scalar", f.Name, f.Type)
		}
		out = append(out, wgslField{name, wt})
	}
	return out, nil
}

// TestParamsMirrorWGSL reads the struct Params of every kernel file and
// checks that its Go mirror has the same fields, named by wgslName, of the
// same types, in the same order, and a size that uniform buffers allow.
func TestParamsMirrorWGSL(t *testing.T) {
	names, err := fs.Glob(kernelFiles, "*.wgsl")
	require.NoError(t, err)
	seen := 0
	for _, name := range names {
		fields, ok, err := parseParams(file(name))
		require.NoError(t, err, name)
		mirror, mirrored := paramMirrors[name]
		if !ok {
			assert.False(t, mirrored, "%s: has a Go mirror but declares no struct Params", name)
			continue
		}
		seen++
		require.True(t, mirrored, "%s declares struct Params: add its Go mirror to paramMirrors", name)
		t.Run(name, func(t *testing.T) {
			want, err := goFields(mirror)
			require.NoError(t, err)
			for i := range max(len(fields), len(want)) {
				var w, g wgslField
				if i < len(fields) {
					w = fields[i]
				}
				if i < len(want) {
					g = want[i]
				}
				if strings.HasPrefix(w.name, "_") && g.name == "_pad" {
					g.name = w.name // any padding name
				}
				assert.Equal(t, w, g, "%s: field %d of struct Params (WGSL) against %T (as WGSL)", name, i, mirror)
			}
			size := binary.Size(mirror)
			assert.Equal(t, 4*len(fields), size, "%T: bytes", mirror)
			assert.Zero(t, size%16, "%T: a uniform buffer's size is a multiple of 16 bytes", mirror)
		})
	}
	assert.Equal(t, len(paramMirrors), seen, "every mirror's file declares struct Params")
}

func TestWGSLName(t *testing.T) {
	for goName, want := range map[string]string{
		"HQ": "hq", "TotalQ": "total_q", "DQGridY": "dq_grid_y", "ScaleLog2": "scale_log2",
		"HK0": "hk0", "LSEOff": "lse_off", "NTiles": "n_tiles", "DSBlockOff": "ds_block_off",
	} {
		assert.Equal(t, want, wgslName(goName), goName)
	}
}

func TestParamsWords(t *testing.T) {
	p := BwdParams{HQ: 7, ScaleLog2: 1.5, HK0: 3, WideGridX: 9}
	w := p.Words()
	require.Len(t, w, 28)
	assert.Equal(t, uint32(7), w[0])
	assert.Equal(t, uint32(0x3fc00000), w[11], "scale_log2 is word 11, as f32 bits")
	assert.Equal(t, uint32(3), w[20], "hk0 is word 20")
	assert.Equal(t, uint32(9), w[24])
	assert.Equal(t, []uint32{0, 0, 0}, w[25:], "padding")
	assert.Len(t, FwdParams{}.Words(), 16)
}
