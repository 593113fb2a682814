// tc_cast.wgsl: f32 tensors to f16 on the device, for the tensor-core
// kernels' operands (their storage is f16; f32 callers pay one pass).
// Each invocation converts one vec4 (pack2x16float rounds each value to
// the nearest f16); invocation i of workgroup (x, y) takes vec4 (x + y *
// grid_x) * 256 + i.

struct Params {
	n: u32,        // vec4s to convert
	grid_x: u32,   // workgroups along x
	_pad0: u32,
	_pad1: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec2<u32>>;

@compute @workgroup_size(256)
fn cast_main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
	let i = (wg.x + wg.y * P.grid_x) * 256u + lid;
	if (i < P.n) {
		let x = src[i];
		dst[i] = vec2<u32>(pack2x16float(x.xy), pack2x16float(x.zw));
	}
}
