package shaders

import "encoding/binary"

// The kernels read their launch parameters from a uniform `struct Params`.
// FwdParams and BwdParams mirror those structs field for field, in order,
// so that a launch fills named fields instead of positional words, and
// Words encodes them in the one layout the kernels read: each field one
// little-endian 4-byte word, in declaration order. A Go field's WGSL name
// is wgslName's: CamelCase words lower-cased and joined by '_' (TotalQ is
// total_q, DQGridY dq_grid_y, ScaleLog2 scale_log2, HK0 hk0); a blank Go
// field (_) is a WGSL padding field (_pad0, ...). TestParamsMirrorWGSL
// parses every kernel file's struct Params and fails where a name, type or
// position differs. Field types are uint32 (u32), int32 (i32) and float32
// (f32) only, and a struct's size is a multiple of 16 bytes, as uniform
// buffers must be.

// FwdParams are the forward's parameters (attn_fwd.wgsl).
type FwdParams struct {
	HQ        uint32  // query heads
	Group     uint32  // query heads per KV head
	TotalQ    uint32  // rows of Q and O; the stride of LSE
	Causal    uint32  // 1: bottom-right aligned causal mask
	NTiles    uint32  // workgroups in the tile table
	GridY     uint32  // workgroups along y; a tile is wg.y + wg.z * GridY
	Batch     uint32  // segments
	TilesOff  uint32  // offset of the tile table in segs
	ScaleLog2 float32 // softmax scale times log2(e)
	HKV       uint32  // key/value heads
	Piece     uint32  // keys per split-KV piece (a multiple of Bc)
	CombOff   uint32  // offset of the combine table in segs
	NGroups   uint32  // split blocks in the combine table
	CombGridY uint32  // combine_main workgroups along y
	LSEOff    uint32  // vec4 offset of the pieces' LSE in part
	_         uint32
}

// BwdParams are the backward's parameters (bwd_common.wgsl).
type BwdParams struct {
	HQ         uint32  // query heads
	Group      uint32  // query heads per KV head
	TotalQ     uint32  // rows of Q; the stride of LSE and Delta
	Causal     uint32  // 1: bottom-right aligned causal mask
	Batch      uint32  // segments
	HKV        uint32  // key/value heads
	NRows      uint32  // TotalQ * HQ: the rows of the Delta pre-pass
	DeltaGridX uint32  // workgroups along x of the row passes (Delta, dQ cast)
	DQTiles    uint32  // query blocks in the dQ tile table
	DQGridY    uint32  // dQ kernel workgroups along y; a tile is wg.y + wg.z * DQGridY
	DQOff      uint32  // offset of the dQ tile table in segs
	ScaleLog2  float32 // softmax scale times log2(e)
	KVTiles    uint32  // key blocks in the dK/dV tile table
	KVGridY    uint32  // dK/dV kernel workgroups along y
	KVOff      uint32  // offset of the dK/dV tile table in segs
	Scale      float32 // softmax scale
	KVRows     uint32  // total_k * HKV: the rows of the bound pass
	BoundGridX uint32  // workgroups along x of the bound pass
	LoScale    float32 // 2^L: a lo field's units per unit of a hi word (fused dQ)
	LoInv      float32 // 2^-L
	HK0        uint32  // first KV head of this pass (stored dS)
	DSTiles    uint32  // stored dS tiles per query head
	DSBlockOff uint32  // offset in segs of each segment's first query block (stored dS)
	DSTileOff  uint32  // offset in segs of each query block's first stored dS tile
	WideGridX  uint32  // workgroups along x of the K-widening pass
	_, _, _    uint32
}

// Words is the uniform buffer's contents.
func (p FwdParams) Words() []uint32 { return words(p) }

// Words is the uniform buffer's contents.
func (p BwdParams) Words() []uint32 { return words(p) }

// words encodes a parameter struct as the kernels read it (see above).
func words(p any) []uint32 {
	b, err := binary.Append(nil, binary.LittleEndian, p)
	if err != nil {
		panic(err) // the structs hold fixed-size fields only
	}
	w := make([]uint32, len(b)/4)
	for i := range w {
		w[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return w
}

// wgslName is the WGSL name of a parameter field named goName: its
// words lower-cased and joined by '_'. A word starts at an upper-case letter
// that follows a lower-case letter or a digit, and at the last of a run of
// upper-case letters that a lower-case letter follows; digits end a word.
func wgslName(goName string) string {
	var b []byte
	for i := 0; i < len(goName); i++ {
		c := goName[i]
		upper := c >= 'A' && c <= 'Z'
		if upper && i > 0 {
			prev := goName[i-1]
			prevLower := prev >= 'a' && prev <= 'z' || prev >= '0' && prev <= '9'
			nextLower := i+1 < len(goName) && goName[i+1] >= 'a' && goName[i+1] <= 'z'
			prevUpper := prev >= 'A' && prev <= 'Z'
			if prevLower || prevUpper && nextLower {
				b = append(b, '_')
			}
		}
		if upper {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return string(b)
}

// TCFwdParams are the tensor-core forward's parameters (tc_fwd.wgsl).
type TCFwdParams struct {
	HQ        uint32  // query heads
	Group     uint32  // query heads per KV head
	TotalQ    uint32  // rows of Q and O; the stride of LSE
	Causal    uint32  // 1: bottom-right aligned causal mask
	Ntiles    uint32  // workgroups in the tile table
	GridY     uint32  // workgroups along y; a tile is wg.y + wg.z * GridY
	Batch     uint32  // segments
	TilesOff  uint32  // offset of the tile table in segs
	ScaleLog2 float32 // softmax scale times log2(e)
	HKV       uint32  // key/value heads
	Piece     uint32  // keys per split-KV piece (a multiple of Bc)
	CombOff   uint32  // offset of the combine table in segs
	Ngroups   uint32  // split blocks in the combine table
	CgridY    uint32  // combine_main workgroups along y
	LSEOff    uint32  // offset of the pieces' maxima and sums in part (floats)
	Inf       uint32  // +Inf's bits: WGSL constant expressions cannot be infinite
}

// TCBwdParams are the tensor-core backward's parameters (tc_bwd.wgsl).
type TCBwdParams struct {
	HQ         uint32  // query heads
	Group      uint32  // query heads per KV head
	TotalQ     uint32  // rows of Q; the stride of LSE and Delta
	Causal     uint32  // 1: bottom-right aligned causal mask
	Batch      uint32  // segments
	HKV        uint32  // key/value heads
	Nrows      uint32  // TotalQ * HQ: invocations of delta_main
	DeltaGridX uint32  // delta_main workgroups along x
	KVNtiles   uint32  // key blocks in the dkv_main tile table
	KVGridY    uint32  // dkv_main workgroups along y; a tile is wg.y + wg.z * KVGridY
	KVOff      uint32  // offset of the dkv_main tile table in segs
	ScaleLog2  float32 // softmax scale times log2(e)
	DQNtiles   uint32  // query blocks in the dq_main tile table
	DQGridY    uint32  // dq_main workgroups along y
	DQOff      uint32  // offset of the dq_main tile table in segs
	Scale      float32 // softmax scale
	HK0        uint32  // the pass's first KV head
	DSTiles    uint32  // dS tiles per query head
	QoffOff    uint32  // offset of qoff in segs
	PoffOff    uint32  // offset of poff in segs
	Log2e      float32 // log2(e)
	_, _, _    uint32
}

// TCCastParams are the f32-to-f16 pass's parameters (tc_cast.wgsl).
type TCCastParams struct {
	N     uint32 // vec4s to convert
	GridX uint32 // workgroups along x
	_, _  uint32
}

// Words is the uniform buffer's contents.
func (p TCFwdParams) Words() []uint32 { return words(p) }

// Words is the uniform buffer's contents.
func (p TCBwdParams) Words() []uint32 { return words(p) }

// Words is the uniform buffer's contents.
func (p TCCastParams) Words() []uint32 { return words(p) }
