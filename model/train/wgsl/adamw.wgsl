// AdamW (PyTorch's, decoupled weight decay) over the flat parameters, with
// the gradients scaled by the clip factor the norm kernel left in
// scalars[3] and by 1/S, S the loss scale (step[6]). Parameters below
// decay_end take weight decay (the flat layout puts matrices and the
// embedding first, norm weights after).
// The host writes the step's lr-dependent factors into step[] each step.

struct Params {
    n: u32,
    decay_end: u32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> step: array<f32>;    // [2] lr/bc1, [3] sqrt(bc2), [4] 1 - lr*wd, [6] 1/S
@group(0) @binding(2) var<storage, read> scalars: array<f32>; // [3] the clip factor
@group(0) @binding(3) var<storage, read> grads: array<f32>;
@group(0) @binding(4) var<storage, read_write> w: array<f32>;
@group(0) @binding(5) var<storage, read_write> m: array<f32>;
@group(0) @binding(6) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(64)
fn adamw(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wg, nwg) * WG + li;
    if (i >= P.n) {
        return;
    }
    let g = grads[i] * (scalars[3] * step[6]);
    let mi = P.beta1 * m[i] + (1.0 - P.beta1) * g;
    let vi = P.beta2 * v[i] + (1.0 - P.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    let decay = select(1.0, step[4], i < P.decay_end);
    // p = p (1 - lr wd) - (lr/bc1) m / (sqrt(v)/sqrt(bc2) + eps)
    w[i] = w[i] * decay - step[2] * mi / (sqrt(vi) / step[3] + P.eps);
}
