package shaders

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Tensor-core ("TC") attention kernels: the products run on subgroup
// matrices (WGSL chromium_experimental_subgroup_matrix, Vulkan cooperative
// matrices) with f16 operands and f32 accumulation; the softmax works on
// the scores through workgroup memory, since matrix fragments are opaque.
// Their generator is generic over the matrix shape and the subgroup size an
// adapter offers: 8x8x8 with subgroups of 8 on Mesa's lavapipe, 16x16x16,
// 16x8x16 and 16x8x8 with subgroups of 32 on NVIDIA GPUs.

// MatrixShape is a subgroup-matrix configuration with f16 operands and an
// f32 result: an M×K left matrix times a K×N right one.
type MatrixShape struct{ M, N, K int }

func (s MatrixShape) String() string { return fmt.Sprintf("%dx%dx%d", s.M, s.N, s.K) }

// valid reports sizes the kernels handle: powers of two from 8 to 32.
func (s MatrixShape) valid() bool {
	ok := func(v int) bool { return v >= 8 && v <= 32 && v&(v-1) == 0 }
	return ok(s.M) && ok(s.N) && ok(s.K)
}

// TCTarget is what an adapter offers the tensor-core kernels.
type TCTarget struct {
	// Shapes are the adapter's f16→f32 subgroup-matrix configurations.
	Shapes []MatrixShape
	// SubgroupSize is the adapter's subgroup size; the kernels need one
	// size (the adapter's minimum equal to its maximum).
	SubgroupSize int
	// WorkgroupBytes and MaxThreads are the adapter's workgroup-storage
	// and invocations-per-workgroup limits.
	WorkgroupBytes, MaxThreads int
	// MaxRegisters bounds the 32-bit registers a lane of a chosen tiling
	// may hold (see TCFwdTiling.Registers), where a driver would spill or
	// run too few workgroups at once above it; 0 sets no bound (CPU
	// adapters). TCRegisterBudget suits NVIDIA GPUs (255 per thread).
	MaxRegisters int
	// CPU marks a CPU adapter (lavapipe): the chosen tilings leave their
	// loops rolled (see TCFwdTiling.Rolled).
	CPU bool
}

// TCRegisterBudget is the MaxRegisters for GPUs with 255 registers per
// thread: room for the compiler's temporaries above the estimate.
const TCRegisterBudget = 200

// fits reports whether a tiling's needs fit the target.
func (t TCTarget) fits(bytes, threads, regs int) bool {
	return bytes <= t.WorkgroupBytes && threads <= t.MaxThreads && (t.MaxRegisters == 0 || regs <= t.MaxRegisters)
}

// ErrNoTensorCores reports a target or a call the tensor-core kernels do
// not handle (no f16→f32 subgroup matrices, an unsupported head dimension
// or storage type); callers fall back to the FFMA kernels.
var ErrNoTensorCores = errors.New("no tensor-core attention")

// shapePreference orders the shapes a chooser tries: 16x8x16 first (the
// smallest f32 result of the 16-row shapes: fewer registers held for O
// and S at the same tensor-core rate), then the other 16-row shapes, then
// anything else the adapter offers (8x8x8 on lavapipe).
var shapePreference = []MatrixShape{{16, 8, 16}, {16, 16, 16}, {16, 8, 8}, {8, 8, 8}}

// shapes returns the target's shapes that the kernels handle, in order of
// preference.
func (t TCTarget) shapes() []MatrixShape {
	var out []MatrixShape
	for _, p := range shapePreference {
		for _, s := range t.Shapes {
			if s == p {
				out = append(out, s)
			}
		}
	}
	for _, s := range t.Shapes {
		known := false
		for _, p := range shapePreference {
			known = known || s == p
		}
		if !known && s.valid() {
			out = append(out, s)
		}
	}
	return out
}

// check reports why the target cannot run tensor-core kernels at all.
func (t TCTarget) check() error {
	switch {
	case len(t.shapes()) == 0:
		return fmt.Errorf("shaders: %w: the adapter offers no f16->f32 subgroup-matrix shape the kernels handle (offers %v)", ErrNoTensorCores, t.Shapes)
	case t.SubgroupSize < 4 || t.SubgroupSize > 128 || t.SubgroupSize&(t.SubgroupSize-1) != 0:
		return fmt.Errorf("shaders: %w: subgroup size %d, want a power of two from 4 to 128", ErrNoTensorCores, t.SubgroupSize)
	}
	return nil
}

// tcHeadDim checks a head dimension for the tensor-core kernels: they
// fetch 16 bytes (8 halves) at a time.
func tcHeadDim(d int) error {
	if d < 8 || d > 256 || d%8 != 0 {
		return fmt.Errorf("shaders: %w: head dim %d: the tensor-core kernels need a multiple of 8 in [8, 256]", ErrNoTensorCores, d)
	}
	return nil
}

// tcOut checks an output storage type: the kernels write f16 or f32.
func tcOut(dt DType) error {
	if dt != Float16 && dt != Float32 {
		return fmt.Errorf("shaders: %w: output dtype %v: want float16 or float32", ErrNoTensorCores, dt)
	}
	return nil
}

// roundUp rounds a up to a multiple of b.
func roundUp(a, b int) int { return (a + b - 1) / b * b }

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func log2(v int) int {
	n := 0
	for v > 1 {
		v >>= 1
		n++
	}
	return n
}

// laneLayout is how the SG lanes of a subgroup share the element-wise work
// on an rs × cols tile of its own: lpr lanes per row (interleaved columns),
// each with rpl rows (lane/lpr + i·(SG/lpr)) and cols/lpr columns.
type laneLayout struct{ lpr, rpl int }

func lanes(sg, rs int) laneLayout {
	if sg >= rs {
		return laneLayout{lpr: sg / rs, rpl: 1}
	}
	return laneLayout{lpr: 1, rpl: rs / sg}
}

// constRE matches the lines that unroll writes for each copy of a body.
var unrolledLet = regexp.MustCompile(`(?m)^(\s*)\{ let (\w+) = (\d+)u;$`)

// tcGenerate is a tensor-core module's WGSL: a line naming the tiling, the
// enables, the aliases, the constants, then src with its @if blocks kept
// or dropped and its @unroll loops expanded unless rolled. Unrolled loop
// variables are consts, so that indices into arrays of matrices are
// constant expressions: the fragments stay in registers. Rolled modules
// (for CPU adapters) are a fraction of the size and compile that much
// faster.
func tcGenerate(tiling string, aliases []string, consts []constant, src string, rolled bool) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "// generated tiling: %s\n", tiling)
	b.WriteString("enable f16;\nenable subgroups;\nenable chromium_experimental_subgroup_matrix;\nrequires subgroup_id;\n")
	// Every matrix call runs in subgroup-uniform control flow by
	// construction; the analysis cannot see it through storage loads.
	b.WriteString("diagnostic(off, chromium_experimental.subgroup_matrix_uniformity);\n")
	for _, a := range aliases {
		b.WriteString(a + "\n")
	}
	values := make(map[string]int, len(consts))
	for _, c := range consts {
		values[c.name] = c.val
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
		body = unrolledLet.ReplaceAllString(body, "$1{ const $2 = ${3}u;")
	}
	if v, ok := values["NT"]; ok {
		body = strings.ReplaceAll(body, "@workgroup_size(NT)", fmt.Sprintf("@workgroup_size(%d)", v))
	}
	b.WriteString(body)
	return b.String(), nil
}

// matrixAliases declares the module's matrix types for shape s: QL (M×K
// left), KR (K×N right) and SA (M×N f32 result).
func matrixAliases(s MatrixShape) []string {
	return []string{
		fmt.Sprintf("alias QL = subgroup_matrix_left<f16, %d, %d>;", s.K, s.M),
		fmt.Sprintf("alias KR = subgroup_matrix_right<f16, %d, %d>;", s.N, s.K),
		fmt.Sprintf("alias SA = subgroup_matrix_result<f32, %d, %d>;", s.N, s.M),
	}
}

// outAlias declares OT, the element type the kernel writes results in.
func outAlias(dt DType) string {
	if dt == Float16 {
		return "alias OT = f16;"
	}
	return "alias OT = f32;"
}
