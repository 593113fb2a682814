package shaders

import "fmt"

var attnFwd = file("attn_fwd.wgsl")

// The forward module's entry points: the attention kernel, and the pass
// that merges split-KV pieces.
const (
	ForwardEntry = "main"
	CombineEntry = "combine_main"
)

// FwdTiling is the tile shape of the attention forward kernel.
type FwdTiling struct {
	D  int // head dimension, a multiple of 4
	TX int // threads along keys and O columns; Bc = 4*TX
	TY int // threads along queries; Br = RM*TY
	RM int // query rows per thread, a multiple of 4 (0 means 4)
	KC int // d-chunk of S = Q Kᵀ staged in workgroup memory (multiple of 4)
	VC int // key chunk of O += P V staged in workgroup memory (divides Bc; longer than KC, its rows fold side by side: see vFold)
	// DType is the storage type of Q, K, V and O.
	DType DType
	// WX is the number of tx values one group of 32 consecutive threads
	// covers (0 picks 8 where the shape allows it, else TX); 32/WX rows of
	// threads share the group.
	WX int
	// CPU selects the fetch pattern for CPU drivers (lavapipe): the block's
	// Q is fetched again for every key tile, and Q and K chunks are read
	// one row per invocation. The GPU pattern holds the block's Q in
	// registers (Q_REGS vec4s a thread; the d-chunk loop unrolled) and
	// reads K chunks in 16-byte loads, KC/4 invocations per row (KC/8 for
	// halves: see loadVecs), coalesced, storing them with a swizzle: faster
	// on GPUs, while CPU drivers compile the unrolled loop slowly and run
	// it slower. The automatic choice sets CPU on CPU adapters.
	CPU bool
	// TransposedK stages K chunks transposed (four 4-byte stores per
	// fetched vec4, one workgroup-memory read per d-step) instead of
	// untransposed (one 16-byte store, one read per key and four d-steps).
	// The untransposed S loop holds a 4 x 4 block of K in registers, 12
	// more, which pays at D 128 in f32 but not where registers are short
	// (D 64 at 384 threads) or with half storage, where the automatic
	// choice sets TransposedK.
	TransposedK bool
	// Rolled leaves the loops marked @unroll to the driver (for comparison).
	Rolled bool
}

// warpX resolves WX: 8 when TX is a multiple of 8 and the workgroup a
// multiple of 32 threads with TY a multiple of 4, otherwise TX (the plain
// row-major layout).
func (t FwdTiling) warpX() int {
	if t.WX != 0 {
		return t.WX
	}
	if t.TX%8 == 0 && t.Threads()%32 == 0 && t.TY%4 == 0 {
		return 8
	}
	return t.TX
}

// BR is the number of query rows per workgroup (FlashAttention's Br).
func (t FwdTiling) BR() int { return t.rows() * t.TY }

func (t FwdTiling) rows() int {
	if t.RM == 0 {
		return 4
	}
	return t.RM
}

// BC is the number of keys per tile (FlashAttention's Bc).
func (t FwdTiling) BC() int { return 4 * t.TX }

// Threads is the workgroup size.
func (t FwdTiling) Threads() int { return t.TX * t.TY }

// stageRows and stageWidth are the shape of one stage buffer in vec4s: it
// holds a Q/K chunk (KC rows of (Br+Bc)/4), a V chunk (VC rows of D/4,
// vFold of them side by side in each stage row), or the row partials
// (TX x Br floats).
func (t FwdTiling) stageRows() int { return max(t.KC, ceilDiv(t.VC, t.vFold())) }
func (t FwdTiling) stageWidth() int {
	return max((t.BR()+t.BC())/4, t.vFold()*t.D/4, ceilDiv(t.TX*t.BR()/4, t.stageRows()))
}

// vFold is how many V rows share a stage row: where V chunks are longer
// than the d-chunks (VC > KC), as many as fit the Q/K chunk's width
// ((Br+Bc)/4 vec4s) and VC/KC call for, so that longer V chunks (fewer
// barriers) need no taller buffers; otherwise 1. At D 64 with Br 96, KC
// 16 and VC 32 it is 2: the stage buffers stay 16 x 40 vec4s.
func (t FwdTiling) vFold() int {
	if t.VC <= t.KC {
		return 1
	}
	return max(1, min((t.BR()+t.BC())/t.D, ceilDiv(t.VC, t.KC)))
}

// WorkgroupBytes is the workgroup memory the kernel declares: two stage
// buffers and Pᵀ.
func (t FwdTiling) WorkgroupBytes() int {
	return 16*2*t.stageRows()*t.stageWidth() + 4*t.BC()*t.BR()
}

// Validate reports a tiling the kernel cannot run.
func (t FwdTiling) Validate() error {
	switch {
	case t.D < 4 || t.D%4 != 0 || t.D > 256:
		return fmt.Errorf("shaders: head dim %d: want a multiple of 4 in [4, 256]", t.D)
	case t.TX < 1 || t.TY < 1:
		return fmt.Errorf("shaders: tiling %+v: TX and TY must be positive", t)
	case t.rows()%4 != 0 || t.rows() > 16:
		return fmt.Errorf("shaders: tiling %+v: RM must be 4, 8, 12 or 16", t)
	case t.KC < 4 || t.KC%4 != 0:
		return fmt.Errorf("shaders: tiling %+v: KC must be a positive multiple of 4", t)
	case t.VC < 1 || t.BC()%t.VC != 0:
		return fmt.Errorf("shaders: tiling %+v: VC must divide Bc = %d", t, t.BC())
	case t.warpX() != t.TX && (t.TX%t.warpX() != 0 || 32%t.warpX() != 0 || t.Threads()%32 != 0 || t.TY%(32/t.warpX()) != 0):
		return fmt.Errorf("shaders: tiling %+v: WX must divide TX and 32, with TY a multiple of 32/WX", t)
	case t.TX*t.BR() > 4*t.stageRows()*t.stageWidth():
		return fmt.Errorf("shaders: tiling %+v: the row partials (%d floats) must fit one stage buffer (%d)", t, t.TX*t.BR(), 4*t.stageRows()*t.stageWidth())
	}
	return nil
}

// String names the tiling, e.g. "D128 Br64 Bc64 KC16 VC16".
func (t FwdTiling) String() string {
	s := fmt.Sprintf("D%d Br%d Bc%d RM%d KC%d VC%d WX%d", t.D, t.BR(), t.BC(), t.rows(), t.KC, t.VC, t.warpX())
	if t.DType != Float32 {
		s += " " + t.DType.String()
	}
	if t.CPU {
		s += " cpu"
	}
	if t.TransposedK {
		s += " kt"
	}
	if t.Rolled {
		s += " rolled"
	}
	return s
}

// Source is the kernel's WGSL with the tiling's constants prepended and
// its marked loops unrolled.
func (t FwdTiling) Source() (string, error) {
	if err := t.Validate(); err != nil {
		return "", err
	}
	if !t.DType.Valid() {
		return "", fmt.Errorf("shaders: tiling %s: invalid dtype %d", t, int(t.DType))
	}
	return generate(t.String(), t.DType, t.DType, t.constants(t.DType.loadVecs(t.D, t.KC)), attnFwd+fetchHelpers, t.Rolled, "THREADS")
}

// constants are the tiling's WGSL constants for operand loads of vw vec4s:
// the tile shape's (see tileShape.constants), then the forward's own.
func (t FwdTiling) constants(vw int) []constant {
	nt := t.Threads()
	qFetches := ceilDiv(t.BR()*t.KC/4, nt)
	return append(t.shape(vw).constants(),
		constant{"WARP_COLS", t.warpX()},                     // tx values one 32-lane group covers (WX)
		constant{"GPU", boolInt(!t.CPU)},                     // 1: the GPU fetch pattern, the block's Q held in registers (CPU)
		constant{"Q_FETCHES", qFetches},                      // vec4s of a Q chunk each thread fetches
		constant{"Q_REGS", ceilDiv(t.D, t.KC) * qFetches},    // a thread's share of the block's Q (GPU pattern)
		constant{"K_FETCHES", ceilDiv(t.BC()*t.KC/4/vw, nt)}, // loads of a K chunk each thread fetches
		constant{"V_FETCHES", ceilDiv(t.VC*t.D/4/vw, nt)},    // loads of a V chunk (VC rows) each thread fetches
		constant{"V_CHUNKS", t.BC() / t.VC},                  // key chunks of O += P V
		constant{"V_UNFOLDED", boolInt(t.vFold() == 1)},      // 1: one V row to a stage row
		constant{"V_FOLDED", boolInt(t.vFold() > 1)},         // 1: V row c at stage row c % STAGE_ROWS, columns (c / STAGE_ROWS)*DV4.. (vFold)
	)
}

// shape is the tile shape the constants of both kernel families share.
func (t FwdTiling) shape(vw int) tileShape {
	return tileShape{d: t.D, tx: t.TX, ty: t.TY, rm: t.rows(), kc: t.KC, vc: t.VC, vw: vw,
		stageRows: t.stageRows(), stageWidth: t.stageWidth(), cpu: t.CPU, transposed: t.TransposedK}
}

// ChooseFwd picks the forward tiling for head dimension d and storage type
// dt on an adapter that offers wgBytes of workgroup memory and maxThreads
// invocations per workgroup: a shape measured faster for this d and dt
// (see measuredFwd) where it fits, otherwise the largest workgroup that
// fits, then the preferred chunk sizes (see chunkSizes), V rows unfolded
// (folding is measured only where measuredFwd picks it).
func ChooseFwd(d int, dt DType, wgBytes, maxThreads int) (FwdTiling, error) {
	if t, ok := measuredFwd(d, dt); ok && t.Threads() <= maxThreads && t.Validate() == nil && t.WorkgroupBytes() <= wgBytes {
		return t, nil
	}
	for _, txy := range [][2]int{{16, 16}, {8, 16}, {8, 8}, {4, 8}, {4, 4}} {
		if txy[0]*txy[1] > maxThreads {
			continue
		}
		for _, kc := range chunkSizes(dt) {
			if kc > d && kc > 4 {
				continue
			}
			for _, vc := range append(chunkSizes(dt), 2, 1) {
				t := FwdTiling{D: d, TX: txy[0], TY: txy[1], KC: kc, VC: vc, DType: dt, TransposedK: transposedStaging(dt)}
				if t.vFold() == 1 && t.Validate() == nil && t.WorkgroupBytes() <= wgBytes {
					return t, nil
				}
			}
		}
	}
	return FwdTiling{}, fmt.Errorf("shaders: no forward tiling for D=%d fits %d bytes of workgroup memory and %d threads", d, wgBytes, maxThreads)
}

// measuredFwd is the tiling measured fastest on the H200 for head dimension
// d and storage type dt, where it differs from the general rule:
//   - D 64, f32: Br 96 at 384 threads with chunks of 16 (44 KiB), K
//     transposed (see TransposedK);
//   - D 64, f16 and bf16: the same Br 96 with V chunks of 32, two V rows
//     to a stage row (see vFold: still 44 KiB, two barriers fewer per
//     tile; in f32 the folded rows cost registers);
//   - D 128, f32: K and V chunks of 32 (48 KiB: two barriers fewer per
//     tile), with K staged untransposed in 16-byte stores.
func measuredFwd(d int, dt DType) (FwdTiling, bool) {
	switch {
	case d == 64 && dt == Float32:
		return FwdTiling{D: d, TX: 16, TY: 24, KC: 16, VC: 16, DType: dt, TransposedK: true}, true
	case d == 64 && dt.Size() == 2:
		return FwdTiling{D: d, TX: 16, TY: 24, KC: 16, VC: 32, DType: dt, TransposedK: true}, true
	case d == 128 && dt == Float32:
		return FwdTiling{D: d, TX: 16, TY: 16, KC: 32, VC: 32, DType: dt}, true
	}
	return FwdTiling{}, false
}

// transposedStaging reports whether ChooseFwd stages K transposed for
// storage type dt (FwdTiling.TransposedK): for half storage, which measured
// slower on the H200 staged untransposed.
func transposedStaging(dt DType) bool { return dt.Size() == 2 }

// chunkSizes lists chunk sizes (KC, VC) in order of preference: 64 bytes
// of each fetched row first (16 floats or 32 halves), then larger, then
// smaller. The fetches of a chunk wait in registers while the one before
// it is used: 64 bytes balanced those registers against the barriers that
// smaller chunks need (measured on the H200).
func chunkSizes(dt DType) []int {
	if dt.Size() == 2 {
		return []int{32, 16, 8, 4}
	}
	return []int{16, 32, 8, 4}
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
