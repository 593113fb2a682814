package shaders

import (
	_ "embed"
	"fmt"
)

//go:embed tc_bwd.wgsl
var tcBwd string

// TCBwdTiling is the tile shape of the tensor-core backward (tc_bwd.wgsl):
// delta_main, then per pass over KV heads dkv_main, which stores dS, and
// dq_main, which reads it.
//
// dkv_main: a workgroup owns BKV = NP·M key rows of one KV head, in NP
// pairs of subgroups of M rows. In each pair one subgroup holds the rows'
// K fragments, computes Sᵀ = K Qᵀ and accumulates dV += Pᵀ dO; the other
// holds V, computes dPᵀ = V dOᵀ and accumulates dK += dSᵀ Q: every
// subgroup runs two products per step and keeps one block of f32
// accumulators, so D 128 fits the registers. The query rows of every head
// of the GQA group stream through workgroup memory in steps of BQ.
//
// dq_main: a workgroup owns NQS·M query rows of one head and adds the
// stored dS tiles times K over the key blocks its rows see.
type TCBwdTiling struct {
	D     int         // head dimension, a multiple of 8
	Shape MatrixShape // subgroup-matrix shape
	SG    int         // subgroup size
	NP    int         // subgroup pairs of dkv_main: BKV = NP·M key rows
	BQ    int         // query rows per step of dkv_main, and of a dS tile
	NQS   int         // subgroups of dq_main: NQS·M query rows, a multiple of BQ
	DT    DType       // storage of O, dO, dQ, dK, dV: Float16 or Float32
	// Rolled leaves the loops rolled (see TCFwdTiling.Rolled).
	Rolled bool
}

// DP is the head dimension padded to whole matrix tiles.
func (t TCBwdTiling) DP() int { return roundUp(t.D, max(t.Shape.K, t.Shape.N)) }

// BKV is the number of key rows per dkv_main workgroup.
func (t TCBwdTiling) BKV() int { return t.NP * t.Shape.M }

// BQD is the number of query rows per dq_main workgroup.
func (t TCBwdTiling) BQD() int { return t.NQS * t.Shape.M }

// Threads is the larger of the two kernels' workgroup sizes.
func (t TCBwdTiling) Threads() int { return max(t.dkvThreads(), t.dqThreads()) }

func (t TCBwdTiling) dkvThreads() int { return 2 * t.NP * t.SG }
func (t TCBwdTiling) dqThreads() int  { return t.NQS * t.SG }

func (t TCBwdTiling) ks() int  { return t.DP() + 8 }      // stage row stride (halves)
func (t TCBwdTiling) tsw() int { return t.BQ + 4 }        // Sᵀ and dPᵀ tile stride (floats)
func (t TCBwdTiling) ptw() int { return t.BQ + 8 }        // Pᵀ and dSᵀ tile stride (halves)
func (t TCBwdTiling) cwq() int { return gcd(t.DP(), 64) } // dq_main's output chunk
func (t TCBwdTiling) qsw() int { return t.cwq() + 4 }

// DSTileBytes is the size of one stored dS tile (BQ × BKV halves).
func (t TCBwdTiling) DSTileBytes() int { return 2 * t.BKV() * t.BQ }

// WorkgroupBytes is the larger of the two kernels' workgroup memory:
// dkv_main stages Q and dO (2·BQ rows) and keeps each pair's Sᵀ and dPᵀ
// (f32), Pᵀ and dSᵀ (f16) and the step's LSE and Delta; dq_main stages a
// K block and its subgroups' dQ chunks.
func (t TCBwdTiling) WorkgroupBytes() int {
	m := t.Shape.M
	dkv := 2*2*t.BQ*t.ks() + 4*2*t.NP*m*t.tsw() + 2*2*t.NP*m*t.ptw() + 4*2*t.BQ
	dq := 2*t.BKV()*t.ks() + 4*t.NQS*m*t.qsw()
	return max(dkv, dq)
}

// Registers estimates the 32-bit registers a lane holds in the busier
// kernel, dkv_main: its K or V fragments, its dK or dV accumulators, a
// row of Sᵀ fragments, the prefetched Q and dO rows, and about 40 more.
func (t TCBwdTiling) Registers() int {
	s := t.Shape
	frag := func(rows, cols, bytes int) int { return ceilDiv(rows*cols*bytes, 4*t.SG) }
	res := (t.DP() / s.K) * frag(s.M, s.K, 2)
	acc := (t.DP() / s.N) * frag(s.M, s.N, 4)
	pre := 2 * 4 * ceilDiv(t.BQ*t.D/8, t.dkvThreads())
	return res + acc + frag(s.M, s.N, 4) + pre + 40
}

// elemsPerLane is how many elements of a pair's M × BQ tiles each of its
// 2·SG lanes takes in dkv_main's element-wise step: runs of a query's
// keys, or whole queries.
func (t TCBwdTiling) elemsPerLane() int { return t.Shape.M * t.BQ / (2 * t.SG) }

// Validate reports a tiling the kernels cannot run.
func (t TCBwdTiling) Validate() error {
	s := t.Shape
	if err := tcHeadDim(t.D); err != nil {
		return err
	}
	if err := tcOut(t.DT); err != nil {
		return err
	}
	epl := 0
	if t.SG > 0 {
		epl = t.elemsPerLane()
	}
	ll := lanes(t.SG, s.M)
	switch {
	case !s.valid():
		return fmt.Errorf("shaders: tensor-core tiling %s: matrix shape %v: want powers of two from 8 to 32", t, s)
	case t.SG < 4 || t.SG > 128 || t.SG&(t.SG-1) != 0:
		return fmt.Errorf("shaders: tensor-core tiling %s: subgroup size %d, want a power of two from 4 to 128", t, t.SG)
	case t.NP < 1 || t.NP > 8 || t.NQS < 1 || t.NQS > 16:
		return fmt.Errorf("shaders: tensor-core tiling %s: NP = %d and NQS = %d, want 1 to 8 and 1 to 16", t, t.NP, t.NQS)
	case t.BQ < 8 || t.BQ%s.N != 0 || t.BQ%s.K != 0 || t.BQ%8 != 0:
		return fmt.Errorf("shaders: tensor-core tiling %s: BQ = %d must be a multiple of 8, N = %d and K = %d", t, t.BQ, s.N, s.K)
	case t.BQ%s.M != 0 || t.BKV()%s.K != 0 || t.BQD()%t.BQ != 0:
		return fmt.Errorf("shaders: tensor-core tiling %s: BQ must be a multiple of M, BKV = %d of K, BQD = %d of BQ", t, t.BKV(), t.BQD())
	case epl < 2 || epl%2 != 0 || (s.M%epl != 0 && epl%s.M != 0) || (s.M*t.BQ)%(2*t.SG) != 0:
		return fmt.Errorf("shaders: tensor-core tiling %s: a pair's %d x %d tile does not split into even runs of keys over %d lanes", t, s.M, t.BQ, 2*t.SG)
	case gcd(t.BQ, t.DP())%ll.lpr != 0 || t.cwq()%ll.lpr != 0 || t.cwq()%s.N != 0:
		return fmt.Errorf("shaders: tensor-core tiling %s: %d lanes per row do not divide the output chunks", t, ll.lpr)
	}
	return nil
}

// String names the tiling, e.g. "tc bwd D128 16x8x16 sg32 NP4 BKV64 BQ32 BQD64 f16".
func (t TCBwdTiling) String() string {
	return fmt.Sprintf("tc bwd D%d %v sg%d NP%d BKV%d BQ%d BQD%d %s%s", t.D, t.Shape, t.SG, t.NP, t.BKV(), t.BQ, t.BQD(), shortDType(t.DT), rolledName(t.Rolled))
}

// Entry points of the backward module, in the order they run.
const (
	TCDeltaEntry     = "delta_main"
	TCDKVEntry       = "dkv_main"
	TCDQEntry        = "dq_main"
	TCDeltaWorkgroup = 64
)

// Source is the backward module's WGSL.
func (t TCBwdTiling) Source() (string, error) {
	if err := t.Validate(); err != nil {
		return "", err
	}
	s := t.Shape
	m := s.M
	dp := t.DP()
	ll := lanes(t.SG, m)
	cw := gcd(t.BQ, dp)
	cwq := t.cwq()
	epl := t.elemsPerLane()
	consts := []constant{
		{"D", t.D}, {"DP", dp}, {"DV8", t.D / 8}, {"PADD", boolInt(dp > t.D)}, {"IN32", boolInt(t.DT == Float32)}, {"IN16", boolInt(t.DT == Float16)},
		{"M", m}, {"N", s.N}, {"K", s.K}, {"SG", t.SG},
		{"NP", t.NP}, {"NT", t.dkvThreads()}, {"BKV", t.BKV()}, {"BQ", t.BQ},
		{"NQS", t.NQS}, {"NTQ", t.dqThreads()}, {"BQD", t.BQD()},
		{"KS", t.ks()}, {"TSW", t.tsw()}, {"PTW", t.ptw()},
		{"QON", 2 * t.BQ * t.ks()}, {"TTN", 2 * t.NP * m * t.tsw()}, {"PDN", 2 * t.NP * m * t.ptw()},
		{"NDK", dp / s.K}, {"NDN", dp / s.N}, {"NQN", t.BQ / s.N}, {"NQK", t.BQ / s.K}, {"NKK", t.BKV() / s.K},
		{"LPR", ll.lpr}, {"RPL", ll.rpl}, {"RSTEP", t.SG / ll.lpr},
		{"CW", cw}, {"CWL", cw / ll.lpr}, {"NCH", dp / cw}, {"NFC", cw / s.N},
		{"CWQ", cwq}, {"CWQL", cwq / ll.lpr}, {"NCHQ", dp / cwq}, {"NFCQ", cwq / s.N}, {"QSW", t.qsw()}, {"DQN", t.NQS * m * t.qsw()}, {"SKN", t.BKV() * t.ks()},
		{"EPL", epl}, {"EPW", epl / 2},
		{"KR2", 2 * t.BQ}, {"NKR", ceilDiv(2*t.BKV(), 2*t.BQ)}, {"LDR", ceilDiv(2*t.BQ*t.D/8, t.dkvThreads())},
		{"LDQ", ceilDiv(t.BQ*t.D/8, t.dkvThreads())}, {"LDL", ceilDiv(t.BQ, t.dkvThreads())},
		{"LDKQ", ceilDiv(t.BKV()*t.D/8, t.dqThreads())}, {"DWG", TCDeltaWorkgroup},
	}
	aliases := append(matrixAliases(s), outAlias(t.DT))
	src, err := tcGenerate(t.String(), aliases, consts, tcBwd, t.Rolled)
	if err != nil {
		return "", err
	}
	return src, nil
}

// tcBwdCandidates lists the backward shapes a chooser tries, best first:
// (NP, BQ, NQS). Four pairs (256 invocations, 64 key rows with M 16) with
// 32-query steps fill 48 KiB at D 128; at D 64 and below two pairs with
// 16-query steps run more workgroups per SM. The order is the H100's
// (docs/tensorcores.md).
var tcBwdCandidatesWide = [][3]int{{4, 32, 4}, {4, 16, 4}, {2, 32, 4}, {2, 16, 4}, {4, 32, 2}, {2, 16, 2}, {1, 16, 2}, {1, 8, 1}}
var tcBwdCandidatesNarrow = [][3]int{{2, 16, 4}, {2, 32, 4}, {4, 16, 4}, {4, 32, 4}, {4, 32, 2}, {2, 16, 2}, {1, 16, 2}, {1, 8, 1}}

// tcBwdCandidates returns the candidate order for head dimension d.
func tcBwdCandidates(d int) [][3]int {
	if d > 64 {
		return tcBwdCandidatesWide
	}
	return tcBwdCandidatesNarrow
}

// tcBwdShapes orders the target's shapes for the backward at head dimension
// d: above D 64 the H100 runs 16x16x16 about 4% faster than 16x8x16 (one
// product of dS·K covers twice the columns); otherwise as the forward.
func tcBwdShapes(d int, tg TCTarget) []MatrixShape {
	shapes := tg.shapes()
	if d <= 64 {
		return shapes
	}
	for i, s := range shapes {
		if s == (MatrixShape{16, 16, 16}) {
			return append(append([]MatrixShape{s}, shapes[:i]...), shapes[i+1:]...)
		}
	}
	return shapes
}

// TCBwdTilings lists every backward tiling from the candidates that fits
// the target for head dimension d and storage dt, in order of preference.
func TCBwdTilings(d int, dt DType, tg TCTarget) ([]TCBwdTiling, error) {
	if err := tg.check(); err != nil {
		return nil, err
	}
	if err := tcHeadDim(d); err != nil {
		return nil, err
	}
	if err := tcOut(dt); err != nil {
		return nil, err
	}
	var all []TCBwdTiling
	for _, s := range tcBwdShapes(d, tg) {
		for _, c := range tcBwdCandidates(d) {
			t := TCBwdTiling{D: d, Shape: s, SG: tg.SubgroupSize, NP: c[0], BQ: c[1], NQS: c[2], DT: dt, Rolled: tg.CPU}
			if t.Validate() == nil && tg.fits(t.WorkgroupBytes(), t.Threads(), t.Registers()) {
				all = append(all, t)
			}
		}
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("shaders: %w: no backward tiling for D=%d fits %d bytes of workgroup memory and %d threads with subgroups of %d", ErrNoTensorCores, d, tg.WorkgroupBytes, tg.MaxThreads, tg.SubgroupSize)
	}
	return all, nil
}

// ChooseTCBwd picks the tensor-core backward tiling for head dimension d
// and storage dt on target tg: the first of TCBwdTilings.
func ChooseTCBwd(d int, dt DType, tg TCTarget) (TCBwdTiling, error) {
	all, err := TCBwdTilings(d, dt, tg)
	if err != nil {
		return TCBwdTiling{}, err
	}
	return all[0], nil
}
