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
	// registers (NKC*PQ vec4s a thread; the d-chunk loop unrolled) and reads
	// K chunks in 16-byte loads, KC/4 invocations per row (KC/8 for
	// halves: see loadVecs), coalesced, storing them with a swizzle; on the
	// H200 it is 16% faster, while lavapipe compiles its
	// unrolled loop several times slower and runs it 15-20% slower. The
	// automatic choice sets CPU on CPU adapters.
	CPU bool
	// TransposedK stages K chunks transposed (four 4-byte stores per
	// fetched vec4, one workgroup-memory read per d-step) instead of
	// untransposed (one 16-byte store, one read per key and four d-steps).
	// The untransposed S loop holds a 4 x 4 block of K in registers, 12
	// more: on the H200 it is 2-3% faster at D 128 in f32 (and allows K
	// chunks of 32), 1.3% slower at D 64 with 384 threads, where the
	// registers are capped at 170, and 4-5% slower with half storage. The
	// automatic choice sets TransposedK for those.
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
	vw := t.DType.loadVecs(t.D, t.KC)
	consts := []constant{
		{"VW", vw}, {"KCL", t.KC / 4 / vw}, {"DL", t.D / 4 / vw},
		{"D", t.D}, {"DV4", t.D / 4}, {"TX", t.TX}, {"TY", t.TY}, {"NT", t.Threads()},
		{"BR", t.BR()}, {"BC", t.BC()}, {"KC", t.KC}, {"KC4", t.KC / 4}, {"NKC", (t.D + t.KC - 1) / t.KC},
		{"VC", t.VC}, {"NCB", t.BC() / t.VC}, {"NJ", (t.D/4 + t.TX - 1) / t.TX},
		{"BR4", t.BR() / 4}, {"SR", t.stageRows()}, {"SW", t.stageWidth()}, {"NACC", t.rows() * ((t.D/4 + t.TX - 1) / t.TX)},
		{"RM", t.rows()}, {"RG", t.rows() / 4}, {"WX", t.warpX()},
		{"PQ", ceilDiv(t.BR()*t.KC/4, t.Threads())}, {"NQ", ceilDiv(t.D, t.KC) * ceilDiv(t.BR()*t.KC/4, t.Threads())}, {"GPU", boolInt(!t.CPU)}, {"CPU", boolInt(t.CPU)}, {"KT", boolInt(t.TransposedK)}, {"KU", boolInt(!t.TransposedK)}, {"PK", ceilDiv(t.BC()*t.KC/4/vw, t.Threads())}, {"PV", ceilDiv(t.VC*t.D/4/vw, t.Threads())},
		{"VS", boolInt(t.vFold() == 1)}, {"VFD", boolInt(t.vFold() > 1)},
	}
	return generate(t.String(), t.DType, t.DType, consts, attnFwd, t.Rolled, "NT")
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
//   - D 64, f32: Br 96 at 384 threads with chunks of 16 (44 KiB), 4% faster
//     than Br 64 at S4096 D64 H32 (slower at D 128), K transposed (see
//     TransposedK);
//   - D 64, f16 and bf16: the same Br 96 with V chunks of 32, two V rows
//     to a stage row (see vFold; still 44 KiB, two barriers fewer per
//     tile), at S4096 D64 H32 1% (f16) and 2.5% (bf16) faster than Br 64
//     with chunks of 32 (medians of four rounds in two calls), 4% faster
//     than Br 96 with V chunks of 16; in f32 the folded V chunks were 9%
//     slower (168 registers against 150, capped at 170);
//   - D 128, f32: K chunks of 32, 3% faster than 16 at S8192 D128 H32
//     since K is staged untransposed with 16-byte stores (no faster
//     before: each K vec4 then cost four 4-byte stores), and V chunks of
//     32 (48 KiB: two barriers fewer per tile), 3.5% faster than 16 at
//     S8192, S16384 and on the CA batch.
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
// slower on the H200 with the untransposed layout (S8192 D128 H32 f16 with
// 16-byte loads: 19.4 ms against 18.4 transposed).
func transposedStaging(dt DType) bool { return dt.Size() == 2 }

// chunkSizes lists chunk sizes (KC, VC) in order of preference: 64 bytes
// of each fetched row first (16 floats or 32 halves), then larger, then
// smaller. The fetches of a chunk wait in registers while the one before
// it is used: on the H200 (S8192 D128 H32), 64 bytes balanced those
// registers against the barriers that smaller chunks need (f32: KC 16 VC 16
// 23.9 TFLOP/s, KC 32 VC 32 21.8; f16: KC 32 VC 32 24.6, KC 16 VC 16 22.9).
func chunkSizes(dt DType) []int {
	if dt.Size() == 2 {
		return []int{32, 16, 8, 4}
	}
	return []int{16, 32, 8, 4}
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
