package shaders

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// unrollHeader matches a counted loop `for (var i = 0u; i < N; i++) {`
// where N is a literal or a generated constant.
var unrollHeader = regexp.MustCompile(`^\s*for \(var (\w+) = 0u; \w+ < (\w+); \w+\+\+\) \{\s*$`)

// unroll expands every loop whose header follows a line holding only
// `// @unroll` into N copies of its body, each in a block that binds the
// loop variable to a literal: `{ let i = 0u; ... }`. Naga translates loops
// as loops and leaves unrolling to the driver, which does not always do it;
// unrolled bodies index register arrays with constants, so the arrays stay
// in registers. Loops may nest; inner marked loops are expanded first.
func unroll(src string, consts map[string]int) (string, error) {
	lines := strings.Split(src, "\n")
	out, err := unrollLines(lines, consts)
	if err != nil {
		return "", err
	}
	return strings.Join(out, "\n"), nil
}

func unrollLines(lines []string, consts map[string]int) ([]string, error) {
	var out []string
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != "// @unroll" {
			out = append(out, lines[i])
			continue
		}
		if i+1 >= len(lines) {
			return nil, fmt.Errorf("shaders: @unroll at the end of the source")
		}
		m := unrollHeader.FindStringSubmatch(lines[i+1])
		if m == nil {
			return nil, fmt.Errorf("shaders: line %d: @unroll must precede `for (var i = 0u; i < N; i++) {`, got %q", i+2, strings.TrimSpace(lines[i+1]))
		}
		n, ok := consts[m[2]]
		if !ok {
			v, err := strconv.ParseUint(strings.TrimSuffix(m[2], "u"), 10, 32)
			if err != nil {
				return nil, fmt.Errorf("shaders: line %d: loop bound %q is neither a literal nor a generated constant", i+2, m[2])
			}
			n = int(v)
		}
		end, err := closingLine(lines, i+1)
		if err != nil {
			return nil, err
		}
		body, err := unrollLines(lines[i+2:end], consts)
		if err != nil {
			return nil, err
		}
		indent := lines[i+1][:len(lines[i+1])-len(strings.TrimLeft(lines[i+1], "\t "))]
		for k := 0; k < n; k++ {
			out = append(out, fmt.Sprintf("%s{ let %s = %du;", indent, m[1], k))
			out = append(out, body...)
			out = append(out, indent+"}")
		}
		i = end
	}
	return out, nil
}

// closingLine finds the line that closes the brace opened on line open.
func closingLine(lines []string, open int) (int, error) {
	depth := 0
	for j := open; j < len(lines); j++ {
		code := lines[j]
		if c := strings.Index(code, "//"); c >= 0 {
			code = code[:c]
		}
		depth += strings.Count(code, "{") - strings.Count(code, "}")
		if depth == 0 {
			return j, nil
		}
	}
	return 0, fmt.Errorf("shaders: line %d: unbalanced braces in unrolled loop", open+1)
}

// keepIf removes the lines between `// @if NAME` and the matching
// `// @end` (each on a line of its own; blocks may nest) when the generated
// constant NAME is 0, and drops the directive lines themselves. It is for
// code that must not even be present in some variants: a call that makes an
// entry point use a binding, which WGSL counts whether or not the call can
// run.
func keepIf(src string, consts map[string]int) (string, error) {
	var out []string
	var open []int // line numbers of the open @if directives
	skip := 0      // how many of them are false
	for i, line := range strings.Split(src, "\n") {
		d := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(d, "// @if "):
			name := strings.TrimSpace(strings.TrimPrefix(d, "// @if "))
			v, ok := consts[name]
			if !ok {
				return "", fmt.Errorf("shaders: line %d: @if %q is not a generated constant", i+1, name)
			}
			open = append(open, i+1)
			if skip > 0 || v == 0 {
				skip++
			}
		case d == "// @end":
			if len(open) == 0 {
				return "", fmt.Errorf("shaders: line %d: @end without @if", i+1)
			}
			open = open[:len(open)-1]
			if skip > 0 {
				skip--
			}
		case skip == 0:
			out = append(out, line)
		}
	}
	if len(open) > 0 {
		return "", fmt.Errorf("shaders: line %d: @if without @end", open[len(open)-1])
	}
	return strings.Join(out, "\n"), nil
}

// constant is one generated WGSL constant: `const name: u32 = val;`.
type constant struct {
	name string
	val  int
}

// generate is a kernel module's WGSL: a line naming the tiling, the
// prelude (see DType.prelude: ld for dtype in, st for dtype out, the load
// type from the constant LOAD_VEC4S), the constants, then src with its @if
// blocks kept or dropped by the constants, its @unroll loops expanded
// unless rolled, and @workgroup_size(NAME) given the value of each
// constant named in sizes (naga wants literal workgroup sizes).
func generate(tiling string, in, out DType, consts []constant, src string, rolled bool, sizes ...string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "// generated tiling: %s\n", tiling)
	values := make(map[string]int, len(consts))
	for _, c := range consts {
		values[c.name] = c.val
	}
	b.WriteString(in.prelude(values["LOAD_VEC4S"], out))
	for _, c := range consts {
		fmt.Fprintf(&b, "const %s: u32 = %du;\n", c.name, c.val)
	}
	body, err := keepIf(src, values)
	if err != nil {
		return "", err
	}
	if !rolled {
		if body, err = unroll(body, values); err != nil {
			return "", err
		}
	}
	for _, name := range sizes {
		body = strings.ReplaceAll(body, "@workgroup_size("+name+")", fmt.Sprintf("@workgroup_size(%d)", values[name]))
	}
	b.WriteString(runtimeBits(body))
	return b.String(), nil
}

// nonFinite are the f32 bit patterns kernels spell as bitcast<f32>(bits)
// that are not finite numbers, and the module variables that hold them.
var nonFinite = []struct{ bits, name string }{
	{"0x7f800000u", "POS_INF_BITS"}, // +Inf
	{"0xff800000u", "NEG_INF_BITS"}, // -Inf
	{"0x7fc00000u", "NAN_BITS"},     // a quiet NaN
}

// runtimeBits rewrites each bitcast<f32>(bits) of a non-finite value in src
// to read a module variable holding the bits, declared ahead of src: a WGSL
// constant expression cannot be infinite or NaN (Dawn's Tint rejects one;
// naga folds it quietly), and a variable's value is known at run time only.
func runtimeBits(src string) string {
	var decls strings.Builder
	for _, n := range nonFinite {
		lit := "bitcast<f32>(" + n.bits + ")"
		if strings.Contains(src, lit) {
			src = strings.ReplaceAll(src, lit, "bitcast<f32>("+n.name+")")
			fmt.Fprintf(&decls, "var<private> %s: u32 = %s;\n", n.name, n.bits)
		}
	}
	return decls.String() + src
}

// tileShape is what the WGSL constants both kernel families share derive
// from. "Rows" are what a workgroup owns (the forward's queries, the
// backward's queries or keys), "columns" what it streams a step at a time
// (keys, or keys or queries).
type tileShape struct {
	d, tx, ty, rm, kc, vc int
	vw                    int // vec4s one operand load reads
	stageRows, stageWidth int
	cpu, transposed       bool
}

// constants are the shape's WGSL constants, each documented here once.
func (s tileShape) constants() []constant {
	br, accCols := s.rm*s.ty, ceilDiv(s.d/4, s.tx)
	return []constant{
		{"D", s.d},                               // head dimension
		{"DV4", s.d / 4},                         // vec4 columns of a head row
		{"TX", s.tx},                             // threads along columns; a thread owns 4 columns of each tile
		{"TY", s.ty},                             // threads along rows
		{"THREADS", s.tx * s.ty},                 // the workgroup size
		{"RM", s.rm},                             // rows a thread owns, a multiple of 4
		{"RG", s.rm / 4},                         // groups of 4 rows a thread owns; a vec4's lanes are a group's rows
		{"BR", br},                               // rows a workgroup owns (FlashAttention's Br): RM*TY
		{"BC", 4 * s.tx},                         // columns a step streams (Bc): 4*TX
		{"BR4", br / 4},                          // vec4 columns of a staged row-operand chunk
		{"KC", s.kc},                             // d-chunk of a product's operands staged at a time, a multiple of 4
		{"KC4", s.kc / 4},                        // vec4 columns of a d-chunk
		{"D_CHUNKS", ceilDiv(s.d, s.kc)},         // d-chunks of a product
		{"VC", s.vc},                             // rows of an accumulating operand staged at a time; divides BC
		{"ACC_COLS", accCols},                    // vec4 accumulator columns a thread owns in each of its rows
		{"ACC_VEC4S", s.rm * accCols},            // a thread's accumulator vec4s
		{"LOAD_VEC4S", s.vw},                     // vec4s (IOVs) an operand load reads: 2 for halves where 16 bytes fit, else 1
		{"CHUNK_LOADS", s.kc / 4 / s.vw},         // loads per row of a d-chunk
		{"ROW_LOADS", s.d / 4 / s.vw},            // loads per row of a tensor
		{"STAGE_ROWS", s.stageRows},              // rows of one of the two stage buffers, filled and used alternately
		{"STAGE_WIDTH", s.stageWidth},            // vec4 width of a stage buffer
		{"CPU", boolInt(s.cpu)},                  // 1: the fetch pattern for CPU drivers (FwdTiling.CPU, BwdTiling.CPU)
		{"TRANSPOSED", boolInt(s.transposed)},    // 1: product operands staged transposed (see fetch.wgsl)
		{"UNTRANSPOSED", boolInt(!s.transposed)}, // 1: staged untransposed
	}
}
