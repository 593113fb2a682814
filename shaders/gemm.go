package shaders

import (
	_ "embed"
	"fmt"
	"strings"
)

//go:embed gemm.wgsl
var gemmSrc string

//go:embed gemm_reduce.wgsl
var gemmReduceSrc string

// GemmTiling is the tile shape and operand layout of the matrix-product
// kernel (gemm.wgsl), which computes C = op(A)·op(B) (+ C) in f32 with
// row-major operands. The tile fields are the kernel's parameters, in the
// manner of FlashAttention-2's block sizes; the layout fields follow from
// the product being computed (package gemm sets them).
type GemmTiling struct {
	BM, BN int // rows and columns of C per workgroup
	BK     int // depth of one K step staged in workgroup memory (a multiple of 4)
	TM, TN int // rows and columns of C per invocation (multiples of 4, at most 16)
	// WX is the number of invocation columns (of BN/TN) one group of 32
	// lanes covers, 32/WX rows of them (0 picks 8 where the shape allows
	// it, otherwise BN/TN, the row-major layout).
	WX int

	TransA bool // op(A) = Aᵀ: A is stored K×M
	TransB bool // op(B) = Bᵀ: B is stored N×K
	// VecA, VecB and VecC read A and B and write C as vec4s (16-byte
	// accesses); each needs the matrix's offset, row stride and contiguous
	// extent (columns as stored) to be multiples of 4.
	VecA, VecB, VecC bool
	Accumulate       bool // C += op(A)·op(B)
	// AliasA and AliasB read A (B) through C's binding, for an operand in
	// C's buffer (WebGPU forbids one buffer bound both read-only and
	// writable in a dispatch); VecA (VecB) must then equal VecC. The
	// operand's own binding is then absent from the kernel.
	AliasA, AliasB bool
	// Rolled leaves the loops marked @unroll to the driver (for comparison).
	Rolled bool
	// MMA, where set, selects the subgroup-matrix engine (tensor cores;
	// gemm_sgmat.wgsl) instead of FMAs on register tiles; TM, TN and WX
	// are then unused (0).
	MMA GemmMMA
}

// Named tile shapes. The chooser (ChooseGemm) takes them in this order of
// preference.
var (
	// GemmLarge is the 128×128 tile of 256 invocations with 8×8 each (64
	// FMAs per four 16-byte workgroup reads), K steps of 16 (32 KiB
	// double-buffered): the classic SGEMM shape.
	GemmLarge = GemmTiling{BM: 128, BN: 128, BK: 16, TM: 8, TN: 8}
	// GemmWide is 64×128 with 128 invocations of 8×8 (24 KiB), for
	// products with few rows of C.
	GemmWide = GemmTiling{BM: 64, BN: 128, BK: 16, TM: 8, TN: 8}
	// GemmTall is 128×64 with 128 invocations of 8×8, for few columns.
	GemmTall = GemmTiling{BM: 128, BN: 64, BK: 16, TM: 8, TN: 8}
	// GemmSmall is 64×64 with 64 invocations of 8×8 (16 KiB).
	GemmSmall = GemmTiling{BM: 64, BN: 64, BK: 16, TM: 8, TN: 8}
	// GemmFine is 64×64 with 256 invocations of 4×4 (16 KiB): the
	// smallest register tile, for adapters short of registers.
	GemmFine = GemmTiling{BM: 64, BN: 64, BK: 16, TM: 4, TN: 4}
)

// GemmTilings lists the named tile shapes in the chooser's order of
// preference, for tests and benchmarks.
var GemmTilings = []GemmTiling{GemmLarge, GemmWide, GemmTall, GemmSmall, GemmFine}

// Threads is the workgroup size.
func (t GemmTiling) Threads() int {
	if t.MMA.On() {
		return t.sgm() * t.sgn() * t.MMA.Subgroup
	}
	return t.txn() * t.tym()
}

func (t GemmTiling) txn() int { return t.BN / max(t.TN, 1) }
func (t GemmTiling) tym() int { return t.BM / max(t.TM, 1) }

// warpX resolves WX: 8 where the invocations tile into groups of 8 x 4,
// otherwise the row-major layout.
func (t GemmTiling) warpX() int {
	if t.WX != 0 {
		return t.WX
	}
	if t.txn()%8 == 0 && t.Threads()%32 == 0 && t.tym()%4 == 0 {
		return 8
	}
	return t.txn()
}

// WorkgroupBytes is the workgroup memory the kernel declares: two K steps
// of both slabs (and, for the subgroup-matrix engine, a fragment block
// per subgroup).
func (t GemmTiling) WorkgroupBytes() int {
	if t.MMA.On() {
		return t.mmaBytes()
	}
	return 2 * t.BK * (t.BM + t.BN) * 4
}

// Validate reports a tiling the kernel cannot run.
func (t GemmTiling) Validate() error {
	if t.MMA.On() {
		return t.validateMMA()
	}
	for _, x := range []struct {
		name string
		v    int
	}{{"TM", t.TM}, {"TN", t.TN}} {
		if x.v < 4 || x.v > 16 || x.v%4 != 0 {
			return fmt.Errorf("shaders: gemm tiling %s: %s %d: want 4, 8, 12 or 16", t, x.name, x.v)
		}
	}
	switch {
	case t.BM < t.TM || t.BM%t.TM != 0 || t.BN < t.TN || t.BN%t.TN != 0:
		return fmt.Errorf("shaders: gemm tiling %s: BM %d and BN %d must be multiples of TM %d and TN %d", t, t.BM, t.BN, t.TM, t.TN)
	case t.BK < 4 || t.BK%4 != 0:
		return fmt.Errorf("shaders: gemm tiling %s: BK %d: want a positive multiple of 4", t, t.BK)
	case t.Threads() > 1024:
		return fmt.Errorf("shaders: gemm tiling %s: %d invocations exceed WebGPU's 1024", t, t.Threads())
	case t.AliasA && t.VecA != t.VecC || t.AliasB && t.VecB != t.VecC:
		return fmt.Errorf("shaders: gemm tiling %s: an operand read through C's binding must have C's access width", t)
	case t.warpX() != t.txn() && (t.warpX() > 32 || 32%t.warpX() != 0 || t.txn()%t.warpX() != 0 || t.Threads()%32 != 0 || t.tym()%(32/t.warpX()) != 0):
		return fmt.Errorf("shaders: gemm tiling %s: WX %d must divide 32 and BN/TN %d, with BM/TM %d a multiple of %d", t, t.warpX(), t.txn(), t.tym(), 32/max(t.warpX(), 1))
	case (t.BM*t.BK/4)%t.Threads() != 0 || (t.BN*t.BK/4)%t.Threads() != 0:
		return fmt.Errorf("shaders: gemm tiling %s: the %d invocations must split the slabs' %d and %d vec4s evenly", t, t.Threads(), t.BM*t.BK/4, t.BN*t.BK/4)
	}
	return nil
}

// Fits reports whether the adapter's limits allow the tiling.
func (t GemmTiling) Fits(wgBytes, maxThreads int) bool {
	return t.WorkgroupBytes() <= wgBytes && t.Threads() <= maxThreads
}

// Case names the transposition case as BLAS does for row-major operands:
// NN, NT (op(B) = Bᵀ), TN or TT.
func (t GemmTiling) Case() string {
	return string("NT"[boolInt(t.TransA)]) + string("NT"[boolInt(t.TransB)])
}

// Shape names the tile shape alone, e.g. "128x128x16 8x8 w8" (w: WX
// where it is not the row-major layout).
func (t GemmTiling) Shape() string {
	if t.MMA.On() {
		return t.mmaShape()
	}
	s := fmt.Sprintf("%dx%dx%d %dx%d", t.BM, t.BN, t.BK, t.TM, t.TN)
	if t.TM > 0 && t.TN > 0 && t.warpX() != t.txn() {
		s += fmt.Sprintf(" w%d", t.warpX())
	}
	return s
}

// String names the tiling and layout, e.g. "NT 128x128x16 8x8 w8 vec:ABC acc".
func (t GemmTiling) String() string {
	s := t.Case() + " " + t.Shape()
	vec := ""
	for _, v := range []struct {
		on   bool
		name string
	}{{t.VecA, "A"}, {t.VecB, "B"}, {t.VecC, "C"}} {
		if v.on {
			vec += v.name
		}
	}
	if vec != "" {
		s += " vec:" + vec
	}
	if t.Accumulate {
		s += " acc"
	}
	if t.AliasA || t.AliasB {
		s += " alias"
	}
	if t.Rolled {
		s += " rolled"
	}
	return s
}

// Source is the kernel's WGSL, entry point "main", with the tiling's
// constants prepended and its marked loops unrolled.
func (t GemmTiling) Source() (string, error) {
	if err := t.Validate(); err != nil {
		return "", err
	}
	if t.MMA.On() {
		return t.mmaSource()
	}
	nt := t.Threads()
	consts := []constant{
		{"BM", t.BM}, {"BN", t.BN}, {"BK", t.BK}, {"TM", t.TM}, {"TN", t.TN},
		{"TM4", t.TM / 4}, {"TN4", t.TN / 4}, {"NACC", t.TM * t.TN / 4}, {"TXN", t.txn()}, {"TYM", t.tym()}, {"NT", nt}, {"WX", t.warpX()},
		{"BM4", t.BM / 4}, {"BN4", t.BN / 4}, {"LA", t.BM * t.BK / 4 / nt}, {"LB", t.BN * t.BK / 4 / nt},
		{"AK", boolInt(!t.TransA)}, {"AM", boolInt(t.TransA)}, {"BKS", boolInt(t.TransB)}, {"BNS", boolInt(!t.TransB)},
		{"VA", boolInt(t.VecA)}, {"SA", boolInt(!t.VecA)}, {"VB", boolInt(t.VecB)}, {"SB", boolInt(!t.VecB)},
		{"VC", boolInt(t.VecC)}, {"SC", boolInt(!t.VecC)}, {"ACC", boolInt(t.Accumulate)},
		{"DA", boolInt(!t.AliasA)}, {"DB", boolInt(!t.AliasB)},
	}
	subst := map[string]string{"SRC_A": source(t.AliasA, "a"), "SRC_B": source(t.AliasB, "b")}
	return gemmGenerate("gemm "+t.String(), consts, gemmSrc, t.Rolled, subst, "NT")
}

// source is the array an operand is read from: its own, or C's.
func source(alias bool, own string) string {
	if alias {
		return "c"
	}
	return own
}

// Bindings lists the kernel's @binding numbers in order: the parameters
// (0), A (1) and B (2) unless read through C's binding, and C (3).
func (t GemmTiling) Bindings() []uint32 {
	b := []uint32{0}
	if !t.AliasA {
		b = append(b, 1)
	}
	if !t.AliasB {
		b = append(b, 2)
	}
	return append(b, 3)
}

// GemmParams are the matrix products' parameters (struct Params of
// gemm.wgsl, gemm_sgmat.wgsl and gemm_reduce.wgsl; see params.go).
type GemmParams struct {
	M, N, K     uint32 // op(A) is M×K, op(B) K×N, C M×N
	KChunk      uint32 // K range of one split (whole BK steps; >= K when not split)
	AOff, LDA   uint32 // A's element offset and row stride, as stored
	BOff, LDB   uint32 // B's
	COff, LDC   uint32 // C's, or the partials' (split-K)
	SplitStride uint32 // elements between the partials of two splits
	Splits      uint32 // splits: the grid's z
	OutOff, LDO uint32 // split-K: C's offset and row stride, for gemm_reduce.wgsl
	ReduceGridX uint32 // gemm_reduce.wgsl's workgroups along x
	_           uint32
}

// Words is the uniform buffer's contents.
func (p GemmParams) Words() []uint32 { return words(p) }

// GemmReduce is the second pass of a split-K product (gemm_reduce.wgsl):
// it sums the splits' partial products in a fixed order into C.
type GemmReduce struct {
	VecPart    bool // the partials' row length is a multiple of 4
	VecC       bool // C's offset, stride and width are multiples of 4
	Accumulate bool // C += the sum
}

// GemmReduceThreads is the reduction's workgroup size.
const GemmReduceThreads = 256

// String names the variant, e.g. "reduce vec:PC acc".
func (r GemmReduce) String() string {
	s := "reduce"
	if r.VecPart || r.VecC {
		s += " vec:"
		if r.VecPart {
			s += "P"
		}
		if r.VecC {
			s += "C"
		}
	}
	if r.Accumulate {
		s += " acc"
	}
	return s
}

// Source is the reduction's WGSL, entry point "main".
func (r GemmReduce) Source() (string, error) {
	consts := []constant{
		{"RT", GemmReduceThreads}, {"VP", boolInt(r.VecPart)}, {"SP", boolInt(!r.VecPart)},
		{"VO", boolInt(r.VecC)}, {"SO", boolInt(!r.VecC)}, {"ACC", boolInt(r.Accumulate)},
	}
	return gemmGenerate("gemm "+r.String(), consts, gemmReduceSrc, false, nil, "RT")
}

// gemmGenerate is a gemm module's WGSL: src with its @if blocks kept or
// dropped by the constants, then a line naming the variant, the kept
// source's directives, the constants and the rest of it, its @unroll
// loops expanded unless rolled, its placeholders replaced (subst:
// placeholder to text) and @workgroup_size(NAME) given the value of each
// constant named in sizes.
func gemmGenerate(name string, consts []constant, src string, rolled bool, subst map[string]string, sizes ...string) (string, error) {
	values := make(map[string]int, len(consts))
	for _, c := range consts {
		values[c.name] = c.val
	}
	body, err := keepIf(src, values)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "// generated: %s\n", name)
	// WGSL wants directives (enable, diagnostic) before any declaration:
	// move those of the kept source to the top.
	var rest []string
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "enable ") || strings.HasPrefix(line, "diagnostic(") {
			b.WriteString(line + "\n")
		} else {
			rest = append(rest, line)
		}
	}
	body = strings.Join(rest, "\n")
	for _, c := range consts {
		fmt.Fprintf(&b, "const %s: u32 = %du;\n", c.name, c.val)
	}
	if !rolled {
		if body, err = unroll(body, values); err != nil {
			return "", err
		}
	}
	for _, s := range sizes {
		body = strings.ReplaceAll(body, "@workgroup_size("+s+")", fmt.Sprintf("@workgroup_size(%d)", values[s]))
	}
	for k, v := range subst {
		body = strings.ReplaceAll(body, k, v)
	}
	b.WriteString(body)
	return b.String(), nil
}

// ChooseGemm picks the tile shape for an m×n product on an adapter with
// wgBytes of workgroup memory and maxThreads invocations per workgroup: the
// first of GemmTilings that the adapter allows and that wastes at most a
// quarter of its rows and of its columns past the matrix's edge (GemmLarge
// for every model shape; split-K, chosen by package gemm, supplies the
// parallelism that small products lack), or, for a matrix smaller than
// such tiles, the one that pads it least. The layout fields are left zero.
// CPU adapters take the same order: on lavapipe GemmLarge ran the model's
// shapes about twice as fast as GemmFine (its invocations are SIMD lanes,
// and larger tiles mean fewer barriers per FMA).
func ChooseGemm(m, n int, wgBytes, maxThreads int) (GemmTiling, error) {
	var fits []GemmTiling
	for _, t := range GemmTilings {
		if t.Fits(wgBytes, maxThreads) {
			fits = append(fits, t)
		}
	}
	if len(fits) == 0 {
		return GemmTiling{}, fmt.Errorf("shaders: no gemm tiling fits %d bytes of workgroup memory and %d invocations", wgBytes, maxThreads)
	}
	best := fits[0]
	for _, t := range fits {
		if waste(m, t.BM) <= 0.25 && waste(n, t.BN) <= 0.25 {
			return t, nil
		}
		if paddedArea(m, n, t) < paddedArea(m, n, best) {
			best = t
		}
	}
	// Nothing fits the matrix well (it is smaller than the tiles): take the
	// tile that pads it least.
	return best, nil
}

// paddedArea is the area of C's tiles of tiling t.
func paddedArea(m, n int, t GemmTiling) int {
	return ceilDiv(max(m, 1), t.BM) * t.BM * ceilDiv(max(n, 1), t.BN) * t.BN
}

// waste is the share of a dimension's tiles that lies past its end.
func waste(n, tile int) float64 {
	padded := ceilDiv(max(n, 1), tile) * tile
	return float64(padded-n) / float64(padded)
}
