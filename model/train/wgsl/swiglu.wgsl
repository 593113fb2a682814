// SwiGLU on the fused gate|up projection gu [T, 2F] (gate in columns
// 0..F-1, up in F..2F-1): act = silu(gate) * up, and its backward into
// dgu. One invocation per element of act.

struct Params {
    n: u32, // T*F
    f: u32, // F
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> gu: array<f32>;

// swiglu_fwd
@group(0) @binding(2) var<storage, read_write> f_act: array<f32>;

// swiglu_bwd
@group(0) @binding(2) var<storage, read> b_dact: array<f32>;
@group(0) @binding(3) var<storage, read_write> b_dgu: array<f32>;

fn sigmoid(z: f32) -> f32 {
    return 1.0 / (1.0 + exp(-z));
}

@compute @workgroup_size(64)
fn swiglu_fwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wg, nwg) * WG + li;
    if (i >= P.n) {
        return;
    }
    let g = gu[i + (i / P.f) * P.f]; // row r, column j: r*2F + j
    let u = gu[i + (i / P.f + 1u) * P.f];
    f_act[i] = g * sigmoid(g) * u;
}

@compute @workgroup_size(64)
fn swiglu_bwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wg, nwg) * WG + li;
    if (i >= P.n) {
        return;
    }
    let gi = i + (i / P.f) * P.f;
    let ui = gi + P.f;
    let g = gu[gi];
    let u = gu[ui];
    let s = sigmoid(g);
    let da = b_dact[i];
    // silu'(g) = s (1 + g (1 - s))
    b_dgu[gi] = da * u * s * (1.0 + g * (1.0 - s));
    b_dgu[ui] = da * g * s;
}
