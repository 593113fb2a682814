package shaders

import "fmt"

var attnBwd = file("attn_bwd.wgsl")

// BwdKernel names one of the two tiled kernels of the attention backward.
type BwdKernel int

const (
	// BwdDQ is the query-block-major kernel: a workgroup owns a block of
	// query rows of one query head and streams the keys to produce dQ. Its
	// module also holds the Delta pre-pass (entry point "delta_main").
	BwdDQ BwdKernel = iota
	// BwdDKV is the key-block-major kernel: a workgroup owns a block of key
	// rows of one KV head and streams the query rows of every query head of
	// its group to produce dK and dV.
	BwdDKV
)

// Entry is the kernel's WGSL entry point.
func (k BwdKernel) Entry() string {
	if k == BwdDKV {
		return "dkv_main"
	}
	return "dq_main"
}

// String names the kernel: "dq" or "dkv".
func (k BwdKernel) String() string {
	if k == BwdDKV {
		return "dkv"
	}
	return "dq"
}

// DeltaEntry is the entry point of the Delta = rowsum(dO ∘ O) pre-pass in
// the BwdDQ module, and DeltaWorkgroup its workgroup size.
const (
	DeltaEntry     = "delta_main"
	DeltaWorkgroup = 64
)

// DQCastEntry is the entry point, in the BwdDQ module, of the pass that
// stores the fixed-point dQ of the fused dK/dV kernel in the storage type.
// It has the Delta pre-pass's workgroup size and grid.
const DQCastEntry = "dq_cast_main"

// BoundEntry is the entry point, in the BwdDQ module, of the pass that
// finds max |K| and max ‖V_j‖, from which the Delta pre-pass scales the
// fused dK/dV kernel's fixed-point dQ. It has the Delta pre-pass's
// workgroup size and one invocation per (key row, KV head) pair.
const BoundEntry = "bound_main"

// WidenEntry is the entry point, in either backward module (not a WideK
// dQ one), of the pass that copies K into an f32 buffer for a WideK dQ
// kernel where the dK/dV kernel does not (see WideK): one invocation per
// vec4 of K, in workgroups of DeltaWorkgroup, Params.wide_grid_x of them
// along x.
const WidenEntry = "widen_main"

// DQStoredEntry is the entry point, in the BwdDQ module, of the dQ kernel
// for dS tiles stored by a StoredDS dK/dV kernel: dQ = scale · dS K, with
// no recomputation of S and dP and no atomics. It binds the parameters, the
// tile table, K, dQ and the stored tiles at bindings 0, 1, 3, 8 and 9.
const DQStoredEntry = "dqs_main"

// BwdTiling is the tile shape of one backward kernel. Both kernels share
// one structure: a workgroup owns BR "rows" (queries for dQ, keys for dK/dV)
// and streams "columns" (keys, queries) in steps of BC; thread (tx, ty) owns
// RM rows and 4 columns of each S and dP tile, and RM rows by NJ vec4
// columns of each accumulator.
type BwdTiling struct {
	Kernel BwdKernel
	D      int // head dimension, a multiple of 4
	TX     int // threads along columns and accumulator columns; BC = 4*TX
	TY     int // threads along rows; BR = RM*TY
	RM     int // rows per thread, a multiple of 4 (0 means 4)
	KC     int // d-chunk of the S and dP products staged in workgroup memory (multiple of 4)
	VC     int // column chunk of the accumulating products (divides BC)
	// FusedDQ (BwdDKV only) makes the dK/dV kernel compute dQ as well,
	// adding each step's dS K into a fixed-point accumulator (an i32 word
	// per element and a lo word per two) with integer atomics (WGSL has no float atomics;
	// integer sums are also the same bits on every run), so that the dQ
	// kernel and its recomputation of S and dP are not needed. The
	// BoundEntry and DeltaEntry passes run before it, the DQCastEntry pass
	// after it. It needs BR = BC, VC a multiple of 4, D/4 a multiple of TX,
	// and a tenth storage buffer.
	FusedDQ bool
	// StoredDS (BwdDKV only) makes the dK/dV kernel store each step's dS
	// tile (f32) in a scratch buffer, laid out for DQStoredEntry, instead of
	// computing dQ itself; its query steps then start on the dQ kernel's
	// query blocks. It needs BR = BC, the dQ kernel's tile shape, and an
	// eleventh storage binding.
	StoredDS bool
	// DType is the storage type of Q, K, V, O, dO and the gradients.
	DType DType
	// WideK (half storage, dS stored) gives the dQ kernel an f32 copy of
	// K. In the BwdDQ module of DQStoredEntry it makes the dQ kernel read
	// K from that copy instead of widening the halves as it stages them;
	// it still writes dQ in DType, and the module's other entry points must
	// not be used (they would read their operands as f32 too). On the H200
	// the dQ kernel with half K took 9.55 ms at S8192 D128 H32 against 7.80
	// with f32 K, for no cause found (see docs/perf.md, Storage types). In
	// a StoredDS dK/dV kernel it makes the kernel write the copy as it
	// stages K in its first step, into a twelfth binding (an eleventh
	// storage buffer); without it the WidenEntry pass writes the copy
	// (0.13 ms at S8192 D128 H32, 0.96 on bench's CA-task batch, whose K
	// has 11.5 times its query rows).
	WideK bool
	// CPU selects the fetch pattern for CPU drivers (lavapipe): staged
	// d-chunks read one row per invocation and stored unswizzled. The GPU
	// pattern reads them in 16-byte loads, KC/4 invocations per row (KC/8
	// for halves; contiguous) and swizzles the transposed stores; on the
	// H200 it is 5 to 9 ms faster at S8192, on lavapipe 2-4% slower. The automatic choice sets CPU on CPU adapters.
	CPU bool
	// Transposed stages the operands of the S and dP products transposed
	// (four 4-byte stores per fetched vec4, one workgroup-memory read per
	// d-step) instead of untransposed (one 16-byte store, one read per row
	// and four d-steps; see fetch.wgsl). On the H200 the untransposed
	// layout makes fwd+bwd 3-4% faster at S8192 D128 in f32 and 1% in f16
	// (16-byte loads); the automatic choice never sets Transposed.
	Transposed bool
	// RowRegs (dK/dV kernel, GPU fetch pattern) holds the block's K and V
	// rows in registers, fetched once instead of every step (the forward
	// does so with Q), with the S and dP d-chunk loops unrolled. On the
	// H200 fwd+bwd at S4096 D64 H32 is 4% faster with it; at D 128 the
	// kernel then takes 255 registers (176 without) and runs 40% slower.
	// The automatic choice sets it for D <= 64.
	RowRegs bool
	// Rolled leaves the loops marked @unroll to the driver (for comparison).
	Rolled bool
}

// BR is the number of rows a workgroup owns.
func (t BwdTiling) BR() int { return t.rows() * t.TY }

func (t BwdTiling) rows() int {
	if t.RM == 0 {
		return 4
	}
	return t.RM
}

// BC is the number of columns per step.
func (t BwdTiling) BC() int { return 4 * t.TX }

// Threads is the workgroup size.
func (t BwdTiling) Threads() int { return t.TX * t.TY }

// stageRows and stageWidth are the shape of one staging buffer in vec4s:
// it holds a d-chunk of a row operand beside one of a column operand
// (KC rows of (BR+BC)/4), or a column chunk of an accumulating operand
// (VC rows of D/4).
func (t BwdTiling) stageRows() int  { return max(t.KC, t.VC) }
func (t BwdTiling) stageWidth() int { return max((t.BR()+t.BC())/4, t.D/4) }

// ptLayout is the row stride (in vec4s) of the transposed tile and the
// mask of its swizzle: a power-of-two number of row groups is stored
// unpadded, the row group XORed with (column/4) & mask so that the stores of
// a warp hit distinct banks; any other number is padded by one vec4.
func (t BwdTiling) ptLayout() (rs, swz int) {
	g := t.BR() / 4
	if g&(g-1) == 0 {
		return g, min(g, 8) - 1
	}
	return g + 1, 0
}

func (t BwdTiling) pt4() int {
	rs, _ := t.ptLayout()
	return t.BC() * rs
}

// DSTileBytes is the size of one dS tile stored for DQStoredEntry (see
// StoredDS): BC key rows of the transposed tile's row stride, in f32.
func (t BwdTiling) DSTileBytes() int { return 16 * t.pt4() }

// WorkgroupBytes is the workgroup memory the kernel declares: two staging
// buffers and the transposed P/dS tile.
func (t BwdTiling) WorkgroupBytes() int {
	return 2*16*t.stageRows()*t.stageWidth() + 16*t.pt4()
}

// Validate reports a tiling the kernel cannot run.
func (t BwdTiling) Validate() error {
	switch {
	case t.Kernel != BwdDQ && t.Kernel != BwdDKV:
		return fmt.Errorf("shaders: backward kernel %d does not exist", int(t.Kernel))
	case t.D < 4 || t.D%4 != 0 || t.D > 256:
		return fmt.Errorf("shaders: head dim %d: want a multiple of 4 in [4, 256]", t.D)
	case t.TX < 1 || t.TY < 1:
		return fmt.Errorf("shaders: tiling %+v: TX and TY must be positive", t)
	case t.rows()%4 != 0 || t.rows() > 16:
		return fmt.Errorf("shaders: tiling %+v: RM must be 4, 8, 12 or 16", t)
	case t.KC < 4 || t.KC%4 != 0:
		return fmt.Errorf("shaders: tiling %+v: KC must be a positive multiple of 4", t)
	case t.VC < 1 || t.BC()%t.VC != 0:
		return fmt.Errorf("shaders: tiling %+v: VC must divide BC = %d", t, t.BC())
	case !t.DType.Valid():
		return fmt.Errorf("shaders: tiling %+v: invalid dtype %d", t, int(t.DType))
	case t.FusedDQ && t.Kernel != BwdDKV:
		return fmt.Errorf("shaders: tiling %+v: only the dK/dV kernel can fuse dQ", t)
	case t.FusedDQ && (t.BR() != t.BC() || t.VC%4 != 0 || (t.D/4)%t.TX != 0):
		return fmt.Errorf("shaders: tiling %+v: fusing dQ needs BR = BC (here %d and %d), VC a multiple of 4 and D/4 a multiple of TX", t, t.BR(), t.BC())
	case t.StoredDS && (t.Kernel != BwdDKV || t.FusedDQ):
		return fmt.Errorf("shaders: tiling %+v: only the dK/dV kernel without fused dQ can store dS", t)
	case t.StoredDS && t.BR() != t.BC():
		return fmt.Errorf("shaders: tiling %+v: storing dS needs BR = BC (here %d and %d)", t, t.BR(), t.BC())
	}
	return nil
}

// String names the tiling, e.g. "dkv D128 BR64 BC64 RM4 KC8 VC8".
func (t BwdTiling) String() string {
	s := fmt.Sprintf("%s D%d BR%d BC%d RM%d KC%d VC%d", t.Kernel, t.D, t.BR(), t.BC(), t.rows(), t.KC, t.VC)
	if t.FusedDQ {
		s += " fused-dq"
	}
	if t.StoredDS {
		s += " stored-ds"
	}
	if t.DType != Float32 {
		s += " " + t.DType.String()
	}
	if t.WidensK() || t.WritesWideK() {
		s += " widek"
	}
	if t.CPU {
		s += " cpu"
	}
	if t.Transposed {
		s += " transposed"
	}
	if t.rowRegs() {
		s += " rowregs"
	}
	if t.Rolled {
		s += " rolled"
	}
	return s
}

// WidensK reports whether the tiling's dQ kernel reads K from an f32 copy:
// WideK, for the BwdDQ kernel with half storage.
func (t BwdTiling) WidensK() bool { return t.WideK && t.Kernel == BwdDQ && t.DType != Float32 }

// WritesWideK reports whether the tiling's dK/dV kernel writes the f32
// copy of K for a WideK dQ kernel: WideK, for the BwdDKV kernel with
// StoredDS and half storage.
func (t BwdTiling) WritesWideK() bool {
	return t.WideK && t.Kernel == BwdDKV && t.StoredDS && t.DType != Float32
}

// rowRegs reports whether the kernel holds its K and V rows in registers:
// RowRegs, for the dK/dV kernel with the GPU fetch pattern.
func (t BwdTiling) rowRegs() bool { return t.RowRegs && t.Kernel == BwdDKV && !t.CPU }

// Source is the backward module's WGSL with the tiling's constants
// prepended and its marked loops unrolled. The module holds every backward
// entry point; use t.Kernel.Entry() (or DeltaEntry, with a BwdDQ tiling).
func (t BwdTiling) Source() (string, error) {
	if err := t.Validate(); err != nil {
		return "", err
	}
	nj := ceilDiv(t.D/4, t.TX)
	rs, swz := t.ptLayout()
	in := t.DType
	if t.WidensK() {
		in = Float32
	}
	vw := in.loadVecs(t.D, t.KC)
	consts := []constant{
		{"VW", vw}, {"KCL", t.KC / 4 / vw}, {"DL", t.D / 4 / vw},
		{"D", t.D}, {"DV4", t.D / 4}, {"TX", t.TX}, {"TY", t.TY}, {"NT", t.Threads()},
		{"RM", t.rows()}, {"RG", t.rows() / 4}, {"BR", t.BR()}, {"BC", t.BC()},
		{"KC", t.KC}, {"KC4", t.KC / 4}, {"NKC", ceilDiv(t.D, t.KC)}, {"VC", t.VC}, {"NJ", nj}, {"NACC", t.rows() * nj},
		{"SA", t.KC * t.BR() / 4 / vw}, {"SB", t.KC * t.BC() / 4 / vw},
		{"PA", ceilDiv(t.KC*t.BR()/4/vw, t.Threads())}, {"PB", ceilDiv(t.KC*t.BC()/4/vw, t.Threads())},
		{"PV", ceilDiv(t.VC*t.D/4/vw, t.Threads())},
		{"SR", t.stageRows()}, {"SW", t.stageWidth()}, {"BR4", t.BR() / 4},
		{"RS", rs}, {"SWZ", swz}, {"DWG", DeltaWorkgroup},
		{"FUSED", boolInt(t.FusedDQ)}, {"VC4", t.VC / 4}, {"CPU", boolInt(t.CPU)}, {"RREG", boolInt(t.rowRegs())},
		{"NRA", ceilDiv(t.D, t.KC) * ceilDiv(t.KC*t.BR()/4/vw, t.Threads())},
		{"KT", boolInt(t.Transposed)}, {"KU", boolInt(!t.Transposed)},
		{"DSM", boolInt(t.StoredDS)}, {"PD", ceilDiv(t.VC*rs, t.Threads())},
		{"WKO", boolInt(t.WritesWideK())},
	}
	return generate(t.String(), in, t.DType, consts, attnBwd, t.Rolled, "NT", "DWG")
}

// ChooseBwd picks the tiling of backward kernel k for head dimension d and
// storage type dt on an adapter that offers wgBytes of workgroup memory and
// maxThreads invocations per workgroup: the largest workgroup that fits,
// then the preferred d-chunk (see bwdChunks) and column chunk (see
// bwdColChunks), staged untransposed, for every storage type: since half
// storage is fetched 16 bytes a load (8 values), it runs fastest with
// d-chunks of 32 untransposed too (S8192 D128 H32 f16: KC 32 VC 16 71.9
// ms, transposed 72.7; KC 16 VC 32 transposed, its choice with 8-byte
// loads, 77.2). The dK/dV kernel holds its rows in registers for D <= 64
// (see RowRegs).
func ChooseBwd(k BwdKernel, d int, dt DType, wgBytes, maxThreads int) (BwdTiling, error) {
	for _, txy := range [][2]int{{16, 16}, {8, 16}, {16, 8}, {8, 8}, {4, 8}, {4, 4}} {
		if txy[0]*txy[1] > maxThreads {
			continue
		}
		for _, kc := range bwdChunks(k) {
			if kc > d && kc > 4 {
				continue
			}
			for _, vc := range bwdColChunks(k, d, dt) {
				t := BwdTiling{Kernel: k, D: d, TX: txy[0], TY: txy[1], KC: kc, VC: vc, DType: dt, RowRegs: d <= 64}
				if t.Validate() == nil && t.WorkgroupBytes() <= wgBytes {
					return t, nil
				}
			}
		}
	}
	return BwdTiling{}, fmt.Errorf("shaders: no %s backward tiling for D=%d fits %d bytes of workgroup memory and %d threads", k, d, wgBytes, maxThreads)
}

// ChooseDQStored picks the tiling of the dQ kernel that reads stored dS
// (DQStoredEntry) for head dimension d and storage type dt, as ChooseBwd
// does, among square tiles whose key chunks (VC) leave pt room for two
// (BC >= 2 VC): the largest workgroup that fits, then the largest chunk.
// Its d-chunk (KC) is unused there and kept at 16 or less. On the H200 VC
// 32 made fwd+bwd 6% faster than 16 (S8192 D128 H32 63.3, 63.5 ms against
// 67.6, 67.4; S16384 D128 H16 127.0 against 135.3, 134.7; S4096 D64 H32
// 9.60 against 9.98). Above D 64 with half storage it sets WideK (at
// S4096 D64 H32 the kernel is as fast with half K as with f32: 1.75 and
// 1.77 ms, so there the copy would only cost).
func ChooseDQStored(d int, dt DType, wgBytes, maxThreads int) (BwdTiling, error) {
	for _, txy := range [][2]int{{16, 16}, {8, 8}, {4, 4}} {
		if txy[0]*txy[1] > maxThreads {
			continue
		}
		for _, vc := range []int{32, 16, 8, 4} {
			t := BwdTiling{Kernel: BwdDQ, D: d, TX: txy[0], TY: txy[1], KC: min(16, vc), VC: vc, DType: dt, WideK: d > 64 && dt != Float32}
			if 2*vc <= t.BC() && t.Validate() == nil && t.WorkgroupBytes() <= wgBytes {
				return t, nil
			}
		}
	}
	return BwdTiling{}, fmt.Errorf("shaders: no dQ tiling for stored dS at D=%d fits %d bytes of workgroup memory and %d threads", d, wgBytes, maxThreads)
}

// bwdChunks lists the backward's d-chunks in order of preference. On the
// H200 (fwd+bwd, dQ fused into dK/dV) the untransposed dK/dV kernel runs
// fastest with chunks of 32 (f32 S8192 D128 H32 78.2, 78.4 ms against
// 80.0, 80.1 with 16; S4096 D64 H32 -1.5%; f16 with 16-byte loads 71.9
// against 77.1), where they fit (48 KiB); the separate dQ kernel takes 16
// (not measured with 32 since b9).
func bwdChunks(k BwdKernel) []int {
	if k == BwdDKV {
		return []int{32, 16, 8, 4}
	}
	return []int{16, 32, 8, 4}
}

// bwdColChunks lists the backward's column chunks (VC: the rows of an
// accumulating product's operand staged at a time) for head dimension d and
// storage type dt, in order of preference. The dK/dV kernel takes 32 where
// it fits (48 KiB beside d-chunks of 32; six barriers a step fewer than
// 16), except for half storage at D 128. On the H200, fwd+bwd: f32 S8192
// D128 H32 72.66, 73.04 ms against 73.04, 73.25 with 16; S16384 140.99,
// 140.95 against 142.00, 142.30; S4096 D64 10.26, 10.02 against 10.36,
// 10.26; f16 and bf16 at S4096 D64 9.82-10.18 against 10.26-10.64 (three
// rounds); f16 at D 128 S8192 71.6 against 71.2, S16384 139.3 against
// 137.8. The dQ kernel keeps chunkSizes' order.
func bwdColChunks(k BwdKernel, d int, dt DType) []int {
	if k == BwdDKV && (dt == Float32 || d <= 64) {
		return []int{32, 16, 8, 4, 2, 1}
	}
	return append(chunkSizes(Float32), 2, 1)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
