package shaders

import (
	"fmt"
	"strings"
)

// DType is the storage type of the attention tensors (Q, K, V, O and the
// gradients). Kernels always compute in float32; half types are stored two
// to a u32 and widened on load. LSE and Delta are always float32.
type DType int

const (
	Float32  DType = iota // IEEE binary32
	Float16               // IEEE binary16
	BFloat16              // bfloat16: the top half of a binary32
)

// DTypes lists the storage types, for help texts and tests.
var DTypes = []DType{Float32, Float16, BFloat16}

// String is the dtype's name as PyTorch prints it: float32, float16, bfloat16.
func (t DType) String() string {
	switch t {
	case Float32:
		return "float32"
	case Float16:
		return "float16"
	case BFloat16:
		return "bfloat16"
	}
	return fmt.Sprintf("DType(%d)", int(t))
}

// Size is the number of bytes of one element.
func (t DType) Size() int {
	if t == Float32 {
		return 4
	}
	return 2
}

// Valid reports whether t is one of the defined dtypes.
func (t DType) Valid() bool { return t >= Float32 && t <= BFloat16 }

// ParseDType reads f32/float32, f16/float16/half or bf16/bfloat16.
func ParseDType(s string) (DType, error) {
	switch strings.ToLower(s) {
	case "f32", "float32", "fp32":
		return Float32, nil
	case "f16", "float16", "fp16", "half":
		return Float16, nil
	case "bf16", "bfloat16":
		return BFloat16, nil
	}
	return 0, fmt.Errorf("dtype %q: want f32, f16 or bf16", s)
}

// loadVecs is LOAD_VEC4S, the vec4s of values a kernel's operand fetches
// read per load for head dimension d and chunks of kc: 2 for half storage
// where d and kc are multiples of 8 (16-byte loads, as f32's one vec4),
// else 1.
func (t DType) loadVecs(d, kc int) int {
	if t.Size() == 2 && d%8 == 0 && kc%8 == 0 {
		return 2
	}
	return 1
}

// prelude is the WGSL that a kernel uses to read and write tensors: IOV
// is the element type of the arrays it reads (four values: vec4<f32>, or
// vec2<u32> holding four halves) and ld widens one to vec4<f32>; OV is the
// element type of the arrays it writes, of dtype out, and st narrows a
// vec4<f32> to it, rounding to nearest even. Kernels read and write one
// dtype (out = t) except the dQ kernel that reads an f32 copy of half K
// (BwdTiling.WideK). LDV is what one load of an operand reads, vw IOVs (1
// or 2), and pick(x, w) is IOV w of it.
func (t DType) prelude(vw int, out DType) string {
	pick := `alias LDV = IOV;
fn pick(x: LDV, w: u32) -> IOV { return x; }
`
	if vw == 2 {
		pick = `alias LDV = vec4<u32>;
fn pick(x: LDV, w: u32) -> IOV { return select(x.xy, x.zw, w == 1u); }
`
	}
	return t.loadPrelude() + out.storePrelude() + pick
}

// loadPrelude declares IOV and ld for the dtype.
func (t DType) loadPrelude() string {
	switch t {
	case Float16:
		return `alias IOV = vec2<u32>;
fn ld(x: IOV) -> vec4<f32> { return vec4<f32>(unpack2x16float(x.x), unpack2x16float(x.y)); }
`
	case BFloat16:
		return `alias IOV = vec2<u32>;
fn ld(x: IOV) -> vec4<f32> {
	return vec4<f32>(bitcast<f32>(x.x << 16u), bitcast<f32>(x.x & 0xffff0000u), bitcast<f32>(x.y << 16u), bitcast<f32>(x.y & 0xffff0000u));
}
`
	}
	return `alias IOV = vec4<f32>;
fn ld(x: IOV) -> vec4<f32> { return x; }
`
}

// storePrelude declares OV and st for the dtype.
func (t DType) storePrelude() string {
	switch t {
	case Float16:
		return `alias OV = vec2<u32>;
fn st(x: vec4<f32>) -> OV { return OV(pack2x16float(x.xy), pack2x16float(x.zw)); }
`
	case BFloat16:
		return `alias OV = vec2<u32>;
fn bf16(f: f32) -> u32 {
	let u = bitcast<u32>(f);
	// A NaN is truncated and made quiet, as the host codec does: rounding could carry it into Inf.
	return select((u + 0x7fffu + ((u >> 16u) & 1u)) >> 16u, (u >> 16u) | 0x40u, (u & 0x7fffffffu) > 0x7f800000u);
}
fn st(x: vec4<f32>) -> OV { return OV(bf16(x.x) | (bf16(x.y) << 16u), bf16(x.z) | (bf16(x.w) << 16u)); }
`
	}
	return `alias OV = vec4<f32>;
fn st(x: vec4<f32>) -> OV { return x; }
`
}

// CastEntry is the entry point of CastSource's kernel.
const CastEntry = "cast_main"

// CastSource is a kernel that stores float32 values in dtype t as the
// attention kernels store their outputs (the prelude's st, rounding to
// nearest even): it reads binding 0 as vec4<f32> and writes binding 1 in t,
// one invocation per vec4, in workgroups of 64. Tests run it to compare the
// device's rounding with the host codec's (attention.Encode).
func CastSource(t DType) (string, error) {
	if !t.Valid() {
		return "", fmt.Errorf("shaders: invalid dtype %d", int(t))
	}
	return t.prelude(1, t) + `
@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<OV>;

@compute @workgroup_size(64)
fn cast_main(@builtin(global_invocation_id) id: vec3<u32>) {
	if (id.x < arrayLength(&src)) {
		dst[id.x] = st(src[id.x]);
	}
}
`, nil
}
