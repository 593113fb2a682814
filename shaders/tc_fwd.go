package shaders

import (
	_ "embed"
	"fmt"
)

//go:embed tc_fwd.wgsl
var tcFwd string

// TCFwdTiling is the tile shape of the tensor-core forward kernel
// (tc_fwd.wgsl). A workgroup of NS subgroups computes Br = NS·MT·M query
// rows of one head; each subgroup owns MT·M of them, holds their Q as
// matrix fragments, and streams the keys in tiles of BC.
type TCFwdTiling struct {
	D     int         // head dimension, a multiple of 8
	Shape MatrixShape // subgroup-matrix shape
	SG    int         // subgroup size
	NS    int         // subgroups per workgroup
	MT    int         // M-row blocks of queries per subgroup: 1, 2 or 4
	BC    int         // keys per tile (FlashAttention's Bc)
	Out   DType       // storage of O: Float16 or Float32
	// Rolled leaves the loops rolled: matrix arrays are then indexed
	// dynamically (memory, not registers), which CPU adapters do not mind
	// and compile many times faster; the choosers set it where the target
	// is a CPU.
	Rolled bool
}

// DP is the head dimension padded to whole matrix tiles.
func (t TCFwdTiling) DP() int { return roundUp(t.D, max(t.Shape.K, t.Shape.N)) }

// RS is the number of query rows a subgroup owns.
func (t TCFwdTiling) RS() int { return t.MT * t.Shape.M }

// BR is the number of query rows per workgroup (FlashAttention's Br).
func (t TCFwdTiling) BR() int { return t.NS * t.RS() }

// Threads is the workgroup size.
func (t TCFwdTiling) Threads() int { return t.NS * t.SG }

// Row strides of the workgroup arrays, padded so that the rows of a
// matrix load or store start in different banks: kv rows (halves), the S
// tile (floats), the P tile (halves).
func (t TCFwdTiling) ks() int  { return t.DP() + 8 }
func (t TCFwdTiling) ssw() int { return t.BC + 4 }
func (t TCFwdTiling) psw() int { return t.BC + 8 }

// WorkgroupBytes is the workgroup memory the kernel declares: the K and V
// tiles, each subgroup's S (f32) and P (f16) tiles, and NS flags.
func (t TCFwdTiling) WorkgroupBytes() int {
	rs := t.RS()
	return 2*2*t.BC*t.ks() + 4*t.NS*rs*t.ssw() + 2*t.NS*rs*t.psw() + 4*t.NS
}

// Registers estimates the 32-bit registers a lane holds across the key
// loop: Q and O fragments, one S fragment row, its scores, the prefetched
// K and V tiles, and about 40 for addresses and the softmax state.
func (t TCFwdTiling) Registers() int {
	s := t.Shape
	frag := func(rows, cols, bytes int) int { return ceilDiv(rows*cols*bytes, 4*t.SG) }
	ll := lanes(t.SG, t.RS())
	q := t.MT * (t.DP() / s.K) * frag(s.M, s.K, 2)
	o := t.MT * (t.DP() / s.N) * frag(s.M, s.N, 4)
	sf := t.MT * frag(s.M, s.N, 4)
	sv := ll.rpl * t.BC / ll.lpr
	pre := 2 * 4 * ceilDiv(t.BC*t.D/8, t.Threads())
	return q + o + sf + sv + pre + 40
}

// Validate reports a tiling the kernel cannot run.
func (t TCFwdTiling) Validate() error {
	s := t.Shape
	if err := tcHeadDim(t.D); err != nil {
		return err
	}
	if err := tcOut(t.Out); err != nil {
		return err
	}
	ll := lanes(t.SG, t.RS())
	switch {
	case !s.valid():
		return fmt.Errorf("shaders: tensor-core tiling %s: matrix shape %v: want powers of two from 8 to 32", t, s)
	case t.SG < 4 || t.SG > 128 || t.SG&(t.SG-1) != 0:
		return fmt.Errorf("shaders: tensor-core tiling %s: subgroup size %d, want a power of two from 4 to 128", t, t.SG)
	case t.NS < 1 || t.NS > 16:
		return fmt.Errorf("shaders: tensor-core tiling %s: NS = %d subgroups, want 1 to 16", t, t.NS)
	case t.MT != 1 && t.MT != 2 && t.MT != 4:
		return fmt.Errorf("shaders: tensor-core tiling %s: MT = %d, want 1, 2 or 4", t, t.MT)
	case t.BC < 8 || t.BC%s.N != 0 || t.BC%s.K != 0 || (2*t.BC)%s.M != 0:
		return fmt.Errorf("shaders: tensor-core tiling %s: BC = %d must be a multiple of N = %d and K = %d, 2·BC of M = %d", t, t.BC, s.N, s.K, s.M)
	case t.BC%ll.lpr != 0 || gcd(t.BC, t.DP())%ll.lpr != 0:
		return fmt.Errorf("shaders: tensor-core tiling %s: %d lanes per row do not divide the tile's columns", t, ll.lpr)
	}
	return nil
}

// String names the tiling, e.g. "tc D128 16x8x16 sg32 NS8 MT1 Br128 Bc32 f32".
func (t TCFwdTiling) String() string {
	return fmt.Sprintf("tc D%d %v sg%d NS%d MT%d Br%d Bc%d %s%s", t.D, t.Shape, t.SG, t.NS, t.MT, t.BR(), t.BC, shortDType(t.Out), rolledName(t.Rolled))
}

func rolledName(rolled bool) string {
	if rolled {
		return " rolled"
	}
	return ""
}

func shortDType(dt DType) string {
	switch dt {
	case Float16:
		return "f16"
	case Float32:
		return "f32"
	case BFloat16:
		return "bf16"
	}
	return dt.String()
}

// Source is the kernel module's WGSL: entry points main (the forward) and
// combine_main (the split-KV merge).
func (t TCFwdTiling) Source() (string, error) {
	if err := t.Validate(); err != nil {
		return "", err
	}
	s := t.Shape
	ll := lanes(t.SG, t.RS())
	dp := t.DP()
	cw := gcd(t.BC, dp)
	qr := 2 * t.BC
	consts := []constant{
		{"D", t.D}, {"DP", dp}, {"DV8", t.D / 8}, {"PADD", boolInt(dp > t.D)},
		{"M", s.M}, {"N", s.N}, {"K", s.K},
		{"SG", t.SG}, {"NS", t.NS}, {"NT", t.Threads()}, {"MT", t.MT}, {"RS", t.RS()}, {"BR", t.BR()}, {"BC", t.BC},
		{"KS", t.ks()}, {"SSW", t.ssw()}, {"PSW", t.psw()},
		{"KVN", 2 * t.BC * t.ks()}, {"SSN", t.NS * t.RS() * t.ssw()}, {"PSN", t.NS * t.RS() * t.psw()},
		{"NDK", dp / s.K}, {"NKN", t.BC / s.N}, {"NKK", t.BC / s.K}, {"NDN", dp / s.N},
		{"NQF", t.MT * dp / s.K}, {"NOF", t.MT * dp / s.N},
		{"LPR", ll.lpr}, {"LPRB", log2(ll.lpr)}, {"RPL", ll.rpl}, {"RSTEP", t.SG / ll.lpr}, {"CPL", t.BC / ll.lpr}, {"NSV", ll.rpl * t.BC / ll.lpr},
		{"CW", cw}, {"CWL", cw / ll.lpr}, {"NCH", dp / cw}, {"NFC", cw / s.N},
		{"LDK", ceilDiv(t.BC*t.D/8, t.Threads())}, {"QR", qr}, {"NQR", ceilDiv(t.BR(), qr)}, {"LDQ", ceilDiv(qr*t.D/8, t.Threads())},
	}
	aliases := append(matrixAliases(s), outAlias(t.Out))
	return tcGenerate(t.String(), aliases, consts, tcFwd, t.Rolled)
}

// tcFwdCandidates lists the forward shapes a chooser tries, best first:
// (NS, MT, BC). The order is the H100's (docs/tensorcores.md, measured
// through Dawn): above D 64, eight subgroups share one K and V staging among
// 128 query rows; at D 64 and below four subgroups with 32-key tiles keep
// two or three workgroups per SM, ahead of eight subgroups and of 64-key
// tiles. The rest follow for targets where these do not fit.
var tcFwdCandidatesWide = [][3]int{{8, 1, 32}, {8, 1, 16}, {4, 1, 16}, {4, 1, 32}, {4, 2, 32}, {4, 1, 64}, {2, 1, 32}, {2, 1, 16}, {1, 1, 16}, {1, 1, 8}}
var tcFwdCandidatesNarrow = [][3]int{{4, 1, 32}, {8, 1, 32}, {4, 2, 32}, {4, 1, 64}, {8, 1, 16}, {4, 1, 16}, {2, 1, 32}, {2, 1, 16}, {1, 1, 16}, {1, 1, 8}}

// tcFwdCandidates returns the candidate order for head dimension d.
func tcFwdCandidates(d int) [][3]int {
	if d > 64 {
		return tcFwdCandidatesWide
	}
	return tcFwdCandidatesNarrow
}

// TCFwdTilings lists every forward tiling from the candidates that fits
// the target for head dimension d and output dtype out, in order of
// preference (the benchmarks measure them all).
func TCFwdTilings(d int, out DType, tg TCTarget) ([]TCFwdTiling, error) {
	if err := tg.check(); err != nil {
		return nil, err
	}
	if err := tcHeadDim(d); err != nil {
		return nil, err
	}
	if err := tcOut(out); err != nil {
		return nil, err
	}
	var all []TCFwdTiling
	for _, s := range tg.shapes() {
		for _, c := range tcFwdCandidates(d) {
			t := TCFwdTiling{D: d, Shape: s, SG: tg.SubgroupSize, NS: c[0], MT: c[1], BC: c[2], Out: out, Rolled: tg.CPU}
			if t.Validate() == nil && tg.fits(t.WorkgroupBytes(), t.Threads(), t.Registers()) {
				all = append(all, t)
			}
		}
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("shaders: %w: no forward tiling for D=%d fits %d bytes of workgroup memory and %d threads with subgroups of %d", ErrNoTensorCores, d, tg.WorkgroupBytes, tg.MaxThreads, tg.SubgroupSize)
	}
	return all, nil
}

// ChooseTCFwd picks the tensor-core forward tiling for head dimension d
// and output dtype out on target tg: the first of TCFwdTilings.
func ChooseTCFwd(d int, out DType, tg TCTarget) (TCFwdTiling, error) {
	all, err := TCFwdTilings(d, out, tg)
	if err != nil {
		return TCFwdTiling{}, err
	}
	return all[0], nil
}
