package shaders

import (
	_ "embed"
	"fmt"
)

//go:embed gemm_sgmat.wgsl
var gemmSgmatSrc string

// GemmMMA selects and configures the subgroup-matrix engine of a
// GemmTiling (gemm_sgmat.wgsl: tensor cores through Dawn's
// chromium_experimental_subgroup_matrix; f16 operands rounded from the f32
// matrices as they are staged, f32 accumulation). Its zero value selects
// the FMA engine (gemm.wgsl). The engine needs a runtime with f16,
// subgroups and the configuration (go-webgpu's wgpu-native 0.17 has none
// of them; its compiler rejects the kernel).
type GemmMMA struct {
	M, N, K int // matrix configuration: left M×K, right K×N, result M×N
	// Subgroup is the adapter's subgroup size, which must be fixed (its
	// minimum and maximum equal): the workgroup is laid out in subgroups
	// of this many lanes.
	Subgroup int
	FM, FN   int // result fragments per subgroup along M and N
	// Emulated replaces the subgroup-matrix builtins with plain WGSL
	// (every lane computes whole fragments; f16 rounding through
	// pack2x16float), so that the kernel's staging, fragment offsets and
	// epilogue run on any adapter: for tests, slow.
	Emulated bool
}

// On reports whether the subgroup-matrix engine is selected.
func (x GemmMMA) On() bool { return x.M != 0 }

// MMAConfig is a subgroup-matrix configuration an adapter offers for f16
// operands and f32 results (left M×K, right K×N). An H100 through Dawn
// offers 16×16×16, 16×8×16 and 16×8×8.
type MMAConfig struct{ M, N, K int }

// sgmPad is the padding of each staged row in halves: 16 bytes, so rows
// stay aligned for the matrix loads and consecutive rows start in
// different banks.
const sgmPad = 8

// mma geometry: subgroups along M and N, per-row vec4s of the staged
// slabs, and the slabs' row strides and sizes in halves.
func (t GemmTiling) sgm() int { return t.BM / max(t.MMA.FM*t.MMA.M, 1) }
func (t GemmTiling) sgn() int { return t.BN / max(t.MMA.FN*t.MMA.N, 1) }

func (t GemmTiling) mmaSlabs() (sas, saz, sbs, sbz, a4, b4 int) {
	// A buffer holds the slab in either layout (sizes are the larger of
	// the two), so that a tiling's memory does not depend on the case.
	saz = max(t.BM*(t.BK+sgmPad), t.BK*(t.BM+sgmPad))
	sbz = max(t.BN*(t.BK+sgmPad), t.BK*(t.BN+sgmPad))
	if t.TransA { // A is K×M: slab rows are K steps of BM
		sas, a4 = t.BM+sgmPad, t.BM/4
	} else {
		sas, a4 = t.BK+sgmPad, t.BK/4
	}
	if t.TransB { // B is N×K: slab rows are the BN columns
		sbs, b4 = t.BK+sgmPad, t.BK/4
	} else {
		sbs, b4 = t.BN+sgmPad, t.BN/4
	}
	return
}

// mmaBytes is the workgroup memory of the subgroup-matrix kernel: two
// buffers of both f16 slabs (f32 when emulated) and each subgroup's f32
// fragment block.
func (t GemmTiling) mmaBytes() int {
	_, saz, _, sbz, _, _ := t.mmaSlabs()
	half := 2
	if t.MMA.Emulated {
		half = 4
	}
	nsg := t.sgm() * t.sgn()
	return 2*half*(saz+sbz) + 4*nsg*t.MMA.M*t.MMA.N
}

// validateMMA is Validate for the subgroup-matrix engine.
func (t GemmTiling) validateMMA() error {
	x := t.MMA
	switch {
	case x.M <= 0 || x.N <= 0 || x.K <= 0 || x.M%4 != 0 || x.N%4 != 0 || x.K%4 != 0:
		return fmt.Errorf("shaders: gemm tiling %s: matrix configuration %dx%dx%d: want positive multiples of 4", t, x.M, x.N, x.K)
	case x.Subgroup < 4 || x.Subgroup > 128 || x.Subgroup&(x.Subgroup-1) != 0:
		return fmt.Errorf("shaders: gemm tiling %s: subgroup size %d: want a power of two in [4, 128]", t, x.Subgroup)
	case x.FM < 1 || x.FN < 1:
		return fmt.Errorf("shaders: gemm tiling %s: FM %d and FN %d must be positive", t, x.FM, x.FN)
	case t.TM != 0 || t.TN != 0 || t.WX != 0:
		return fmt.Errorf("shaders: gemm tiling %s: TM, TN and WX belong to the FMA engine; leave them 0", t)
	case t.BM%(x.FM*x.M) != 0 || t.BN%(x.FN*x.N) != 0:
		return fmt.Errorf("shaders: gemm tiling %s: BM %d and BN %d must be multiples of FM*M %d and FN*N %d", t, t.BM, t.BN, x.FM*x.M, x.FN*x.N)
	case t.BK < x.K || t.BK%x.K != 0 || t.BK%4 != 0:
		return fmt.Errorf("shaders: gemm tiling %s: BK %d must be a multiple of the configuration's K %d and of 4", t, t.BK, x.K)
	case t.Threads() > 1024:
		return fmt.Errorf("shaders: gemm tiling %s: %d invocations exceed WebGPU's 1024", t, t.Threads())
	case (x.M*x.N)%x.Subgroup != 0:
		return fmt.Errorf("shaders: gemm tiling %s: a %dx%d fragment must split evenly over %d lanes", t, x.M, x.N, x.Subgroup)
	case (t.BM*t.BK/4)%t.Threads() != 0 || (t.BN*t.BK/4)%t.Threads() != 0:
		return fmt.Errorf("shaders: gemm tiling %s: the %d invocations must split the slabs' %d and %d vec4s evenly", t, t.Threads(), t.BM*t.BK/4, t.BN*t.BK/4)
	case t.AliasA && t.VecA != t.VecC || t.AliasB && t.VecB != t.VecC:
		return fmt.Errorf("shaders: gemm tiling %s: an operand read through C's binding must have C's access width", t)
	}
	return nil
}

// mmaShape names the subgroup-matrix tile shape, e.g.
// "128x128x32 mma16x16x16 4x2 sg32".
func (t GemmTiling) mmaShape() string {
	x := t.MMA
	s := fmt.Sprintf("%dx%dx%d mma%dx%dx%d %dx%d sg%d", t.BM, t.BN, t.BK, x.M, x.N, x.K, x.FM, x.FN, x.Subgroup)
	if x.Emulated {
		s += " emulated"
	}
	return s
}

// mmaSource is Source for the subgroup-matrix engine.
func (t GemmTiling) mmaSource() (string, error) {
	x := t.MMA
	nt := t.Threads()
	sas, saz, sbs, sbz, a4, b4 := t.mmaSlabs()
	consts := []constant{
		{"BM", t.BM}, {"BN", t.BN}, {"BK", t.BK}, {"MM", x.M}, {"MN", x.N}, {"MK", x.K},
		{"FM", x.FM}, {"FN", x.FN}, {"NF", x.FM * x.FN}, {"SGM", t.sgm()}, {"SGN", t.sgn()}, {"NSG", t.sgm() * t.sgn()},
		{"SGS", x.Subgroup}, {"NT", nt}, {"NKK", t.BK / x.K},
		{"LA", t.BM * t.BK / 4 / nt}, {"LB", t.BN * t.BK / 4 / nt},
		{"AK", boolInt(!t.TransA)}, {"AM", boolInt(t.TransA)}, {"BKS", boolInt(t.TransB)}, {"BNS", boolInt(!t.TransB)},
		{"VA", boolInt(t.VecA)}, {"SA", boolInt(!t.VecA)}, {"VB", boolInt(t.VecB)}, {"SB", boolInt(!t.VecB)},
		{"VC", boolInt(t.VecC)}, {"SC", boolInt(!t.VecC)}, {"ACC", boolInt(t.Accumulate)},
		{"DA", boolInt(!t.AliasA)}, {"DB", boolInt(!t.AliasB)},
		{"SAS", sas}, {"SAZ", saz}, {"SA2", 2 * saz}, {"SBS", sbs}, {"SBZ", sbz}, {"SB2", 2 * sbz}, {"A4", a4}, {"B4", b4},
		{"FRAG", x.M * x.N}, {"FPL", x.M * x.N / x.Subgroup}, {"SCZ", t.sgm() * t.sgn() * x.M * x.N},
		{"FLK", x.M * x.K}, {"FKN", x.K * x.N},
		{"HW", boolInt(!x.Emulated)}, {"EMU", boolInt(x.Emulated)},
	}
	majA, majB := "row_major", "row_major"
	if t.TransA {
		majA = "col_major"
	}
	if t.TransB {
		majB = "col_major"
	}
	subst := map[string]string{"SRC_A": source(t.AliasA, "a"), "SRC_B": source(t.AliasB, "b"), "MAJ_A": majA, "MAJ_B": majB}
	return gemmGenerate("gemm "+t.String(), consts, gemmSgmatSrc, t.Rolled, subst, "NT")
}

// GemmTensor is the subgroup-matrix tile for 16×16×16 and subgroups of 32
// (NVIDIA): 128×128 in K steps of 32, eight subgroups of 64×32 (4×2
// fragments), 48 KiB of workgroup memory.
var GemmTensor = GemmTiling{BM: 128, BN: 128, BK: 32, MMA: GemmMMA{M: 16, N: 16, K: 16, Subgroup: 32, FM: 4, FN: 2}}

// ChooseGemmMMA picks a subgroup-matrix tiling for an adapter that offers
// configs (f16 operands, f32 results) with subgroups of subgroup lanes,
// wgBytes of workgroup memory and maxThreads invocations: 128×128 tiles of
// eight subgroups, each 64×32 of C, from the first configuration in the
// order 16×16×16, 16×8×16, 16×8×8, then any other; K steps of 32, or 16,
// or the configuration's K where the memory is short. ok is false where no
// configuration fits (the caller uses the FMA engine).
func ChooseGemmMMA(configs []MMAConfig, subgroup, wgBytes, maxThreads int) (GemmTiling, bool) {
	pref := []MMAConfig{{16, 16, 16}, {16, 8, 16}, {16, 8, 8}}
	order := append([]MMAConfig(nil), pref...)
	order = append(order, configs...)
	for _, c := range order {
		offered := false
		for _, o := range configs {
			offered = offered || o == c
		}
		if !offered {
			continue
		}
		for _, bk := range []int{max(32, c.K), max(16, c.K), c.K} {
			t := GemmTiling{BM: 128, BN: 128, BK: bk, MMA: GemmMMA{M: c.M, N: c.N, K: c.K, Subgroup: subgroup, FM: max(1, 64/c.M), FN: max(1, 32/c.N)}}
			if t.Validate() == nil && t.Fits(wgBytes, maxThreads) {
				return t, true
			}
		}
	}
	return GemmTiling{}, false
}
