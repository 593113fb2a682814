// The adapter's float32 FMA peak: every invocation runs eight independent
// chains of vec4 fma (32 scalar FMAs per step), so the arithmetic, not
// memory or latency, bounds the time. The result is stored so that no
// compiler can drop the chains.

struct Params {
    iters: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> sink: array<vec4<f32>>;

@compute @workgroup_size(256)
fn fma_peak(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wg, nwg) * 256u + li;
    var a0 = vec4<f32>(f32(i) * 1e-9);
    var a1 = a0 + 0.1;
    var a2 = a0 + 0.2;
    var a3 = a0 + 0.3;
    var a4 = a0 + 0.4;
    var a5 = a0 + 0.5;
    var a6 = a0 + 0.6;
    var a7 = a0 + 0.7;
    let b = vec4<f32>(0.999999);
    let c = vec4<f32>(1e-6);
    for (var k = 0u; k < P.iters; k = k + 1u) {
        a0 = fma(a0, b, c);
        a1 = fma(a1, b, c);
        a2 = fma(a2, b, c);
        a3 = fma(a3, b, c);
        a4 = fma(a4, b, c);
        a5 = fma(a5, b, c);
        a6 = fma(a6, b, c);
        a7 = fma(a7, b, c);
    }
    sink[i] = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}
