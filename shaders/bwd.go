package shaders

import (
	"fmt"
	"strings"
)

// BwdKernel names one of the two tile shapes of the attention backward.
type BwdKernel int

const (
	// BwdDQ is the query-block-major shape: a workgroup owns a block of
	// query rows of one query head and streams the keys to produce dQ
	// (DQEntry, DQStoredEntry).
	BwdDQ BwdKernel = iota
	// BwdDKV is the key-block-major shape: a workgroup owns a block of key
	// rows of one KV head and streams the query rows of every query head of
	// its group to produce dK and dV (DKVEntry).
	BwdDKV
)

// Entry is the kernel's entry point: DQEntry or DKVEntry.
func (k BwdKernel) Entry() BwdEntry {
	if k == BwdDKV {
		return DKVEntry
	}
	return DQEntry
}

// String names the kernel: "dq" or "dkv".
func (k BwdKernel) String() string {
	if k == BwdDKV {
		return "dkv"
	}
	return "dq"
}

// BwdEntry is one kernel of the backward, compiled from a module of its own
// (see BwdTiling.Module).
type BwdEntry int

// The backward's kernels, in the order a backward runs them.
const (
	// BoundEntry finds max |K| and max ‖V_j‖, from which DeltaEntry scales
	// the fused dQ: one invocation per (key row, KV head) pair, in
	// workgroups of DeltaWorkgroup.
	BoundEntry BwdEntry = iota
	// DeltaEntry computes Delta = rowsum(dO ∘ O) and the fused dQ's scales:
	// one invocation per (query row, head) pair, in workgroups of
	// DeltaWorkgroup.
	DeltaEntry
	// WidenEntry copies K into an f32 buffer for a WideK DQStoredEntry where
	// the dK/dV kernel does not: one invocation per vec4 of K, in
	// workgroups of DeltaWorkgroup.
	WidenEntry
	// DQEntry is the dQ kernel that recomputes S and dP (a BwdDQ tiling).
	DQEntry
	// DKVEntry is the dK/dV kernel, with the fused dQ or the stored dS (a
	// BwdDKV tiling).
	DKVEntry
	// DQStoredEntry is the dQ kernel for the dS tiles stored by a StoredDS
	// dK/dV kernel (a BwdDQ tiling): dQ = scale · dS K, with no
	// recomputation and no atomics. It binds the parameters, the tile
	// table, K, dQ and the stored tiles at bindings 0, 1, 3, 8 and 9.
	DQStoredEntry
	// DQCastEntry stores the fused dQ from its fixed-point accumulator in
	// the storage type, on DeltaEntry's grid; its tiling's TX (the dK/dV
	// kernel's) lays out the accumulator.
	DQCastEntry
)

// DeltaWorkgroup is the workgroup size of the row passes: BoundEntry,
// DeltaEntry, WidenEntry and DQCastEntry.
const DeltaWorkgroup = 64

// bwdModules lists, per entry, its WGSL entry point, the files its module
// concatenates, and the tile shape it needs (-1: any).
var bwdModules = [...]struct {
	name   string
	files  []string
	kernel BwdKernel
}{
	BoundEntry:    {"bound_main", []string{"bwd_common.wgsl", "bwd_bound.wgsl"}, -1},
	DeltaEntry:    {"delta_main", []string{"bwd_common.wgsl", "bwd_delta.wgsl"}, -1},
	WidenEntry:    {"widen_main", []string{"bwd_common.wgsl", "bwd_widen.wgsl"}, -1},
	DQEntry:       {"dq_main", []string{"bwd_common.wgsl", "bwd_tiled.wgsl", "bwd_dq_shared.wgsl", "bwd_dq.wgsl", "fetch.wgsl"}, BwdDQ},
	DKVEntry:      {"dkv_main", []string{"bwd_common.wgsl", "bwd_tiled.wgsl", "bwd_dkv.wgsl", "fetch.wgsl"}, BwdDKV},
	DQStoredEntry: {"dqs_main", []string{"bwd_common.wgsl", "bwd_tiled.wgsl", "bwd_dq_shared.wgsl", "bwd_dq_stored.wgsl", "fetch.wgsl"}, BwdDQ},
	DQCastEntry:   {"dq_cast_main", []string{"bwd_common.wgsl", "bwd_dq_cast.wgsl"}, -1},
}

// BwdEntries lists the backward's kernels, for tests and tools.
var BwdEntries = []BwdEntry{BoundEntry, DeltaEntry, WidenEntry, DQEntry, DKVEntry, DQStoredEntry, DQCastEntry}

func (e BwdEntry) valid() bool { return e >= 0 && int(e) < len(bwdModules) }

// Name is the kernel's WGSL entry point, e.g. "dkv_main".
func (e BwdEntry) Name() string {
	if !e.valid() {
		return fmt.Sprintf("BwdEntry(%d)", int(e))
	}
	return bwdModules[e].name
}

// String is Name.
func (e BwdEntry) String() string { return e.Name() }

// BwdTiling is the tile shape of one backward kernel. Both kernels share
// one structure: a workgroup owns BR "rows" (queries for dQ, keys for dK/dV)
// and streams "columns" (keys, queries) in steps of BC; thread (tx, ty) owns
// RM rows and 4 columns of each S and dP tile, and RM rows by ACC_COLS vec4
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
	// K. In a BwdDQ tiling's DQStoredEntry module it makes the dQ kernel
	// read K from that copy instead of widening the halves as it stages
	// them (measured faster on the H200, for no cause found); it still
	// writes dQ in DType, and the tiling's other modules read the stored
	// type. In a StoredDS dK/dV kernel it makes the kernel write the copy
	// as it stages K in its first step, into a twelfth binding (an
	// eleventh storage buffer); without it the WidenEntry pass writes the
	// copy.
	WideK bool
	// CPU selects the fetch pattern for CPU drivers (lavapipe): staged
	// d-chunks read one row per invocation and stored unswizzled. The GPU
	// pattern reads them in 16-byte loads, KC/4 invocations per row (KC/8
	// for halves; contiguous) and swizzles the transposed stores, which
	// pays on GPUs only. The automatic choice sets CPU on CPU adapters.
	CPU bool
	// Transposed stages the operands of the S and dP products transposed
	// (four 4-byte stores per fetched vec4, one workgroup-memory read per
	// d-step) instead of untransposed (one 16-byte store, one read per row
	// and four d-steps; see fetch.wgsl). The untransposed layout measured
	// faster on the H200: the automatic choice never sets Transposed.
	Transposed bool
	// RowRegs (dK/dV kernel, GPU fetch pattern) holds the block's K and V
	// rows in registers, fetched once instead of every step (the forward
	// does so with Q), with the S and dP d-chunk loops unrolled. That pays
	// at D 64; at D 128 the registers spill. The automatic choice sets it
	// for D <= 64.
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

// Source is the module of the tiling's kernel, t.Kernel.Entry().
func (t BwdTiling) Source() (string, error) { return t.Module(t.Kernel.Entry()) }

// Module is the WGSL of entry point e's module for the tiling: the dtype
// prelude and the tiling's constants (see constants), then the entry's
// files, its @if blocks kept or dropped and its @unroll loops expanded.
// DQEntry and DQStoredEntry take a BwdDQ tiling, DKVEntry a BwdDKV one, the
// row passes either. Only DQStoredEntry reads K as f32 (WideK).
func (t BwdTiling) Module(e BwdEntry) (string, error) {
	if err := t.Validate(); err != nil {
		return "", err
	}
	if !e.valid() {
		return "", fmt.Errorf("shaders: backward entry %d does not exist", int(e))
	}
	m := bwdModules[e]
	if m.kernel >= 0 && t.Kernel != m.kernel {
		return "", fmt.Errorf("shaders: %s needs a %s tiling, not %s", e, m.kernel, t)
	}
	in := t.DType
	if e == DQStoredEntry && t.WidensK() {
		in = Float32
	}
	var src strings.Builder
	for _, f := range m.files {
		src.WriteString(file(f))
	}
	return generate(t.String()+" "+e.Name(), in, t.DType, t.constants(in.loadVecs(t.D, t.KC)), src.String(), t.Rolled, "THREADS", "PASS_WG")
}

// constants are the tiling's WGSL constants for operand loads of vw vec4s:
// the tile shape's (see tileShape.constants), then the backward's own.
func (t BwdTiling) constants(vw int) []constant {
	nt := t.Threads()
	rs, swz := t.ptLayout()
	rowLoads, colLoads := t.KC*t.BR()/4/vw, t.KC*t.BC()/4/vw
	return append(t.shape(vw).constants(),
		constant{"ROW_CHUNK_LOADS", rowLoads},                            // loads of a d-chunk of the row operand (KC x BR)
		constant{"COL_CHUNK_LOADS", colLoads},                            // loads of a d-chunk of the column operand (KC x BC)
		constant{"ROW_FETCHES", ceilDiv(rowLoads, nt)},                   // of those, the loads each thread fetches
		constant{"COL_FETCHES", ceilDiv(colLoads, nt)},                   //
		constant{"ACC_FETCHES", ceilDiv(t.VC*t.D/4/vw, nt)},              // loads of an accumulation chunk (VC x D) each thread fetches
		constant{"VC4", t.VC / 4},                                        // vec4s of a column chunk (fused dQ)
		constant{"PT_STRIDE", rs},                                        // row stride of the transposed tile pt, in vec4s (see ptLayout)
		constant{"PT_SWIZZLE", swz},                                      // mask of pt's swizzle (see ptLayout)
		constant{"DS_FETCHES", ceilDiv(t.VC*rs, nt)},                     // vec4s of a stored dS chunk (VC rows of pt) each thread fetches
		constant{"PASS_WG", DeltaWorkgroup},                              // workgroup size of the row passes
		constant{"FUSED_DQ", boolInt(t.FusedDQ)},                         // 1: dkv_main adds dQ into a fixed-point sum (FusedDQ)
		constant{"STORED_DS", boolInt(t.StoredDS)},                       // 1: dkv_main stores its dS tiles (StoredDS)
		constant{"WRITES_WIDE_K", boolInt(t.WritesWideK())},              // 1: dkv_main writes K as f32 (WritesWideK)
		constant{"ROWS_IN_REGS", boolInt(t.rowRegs())},                   // 1: dkv_main holds its K and V rows in registers (RowRegs)
		constant{"ROW_REGS", ceilDiv(t.D, t.KC) * ceilDiv(rowLoads, nt)}, // a thread's share of those rows: D_CHUNKS * ROW_FETCHES loads
	)
}

// shape is the tile shape the constants of both kernel families share.
func (t BwdTiling) shape(vw int) tileShape {
	return tileShape{d: t.D, tx: t.TX, ty: t.TY, rm: t.rows(), kc: t.KC, vc: t.VC, vw: vw,
		stageRows: t.stageRows(), stageWidth: t.stageWidth(), cpu: t.CPU, transposed: t.Transposed}
}

// ChooseBwd picks the tiling of backward kernel k for head dimension d and
// storage type dt on an adapter that offers wgBytes of workgroup memory and
// maxThreads invocations per workgroup: the largest workgroup that fits,
// then the preferred d-chunk (see bwdChunks) and column chunk (see
// bwdColChunks), staged untransposed for every storage type (half storage,
// fetched 16 bytes a load, measured fastest so too). The dK/dV kernel holds
// its rows in registers for D <= 64 (see RowRegs).
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
// Its d-chunk (KC) is unused there and kept at 16 or less. Above D 64 with
// half storage it sets WideK; at D 64 the kernel is as fast with half K,
// so there the copy would only cost.
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

// bwdChunks lists the backward's d-chunks in order of preference: the
// dK/dV kernel measured fastest with chunks of 32 where they fit (48 KiB),
// the separate dQ kernel keeps 16.
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
// 16), except for half storage at D 128, where 16 measured faster. The dQ
// kernel keeps chunkSizes' order.
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
