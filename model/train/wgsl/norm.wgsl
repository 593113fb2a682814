// RMSNorm: y = x / sqrt(mean(x²) + eps) * w over rows of d features, one
// workgroup per row; its backward; and the two passes of the weight's
// gradient (partial sums over blocks of rows, then their sum in block order).

struct Params {
    rows: u32,       // T
    d: u32,
    w_off: u32,      // the norm weight's offset in the flat parameters
    g_off: u32,      // its gradient's offset in the flat gradients
    eps: f32,
    accumulate: u32, // norm_bwd: add dx into dres (1) or store it (0)
    chunk: u32,      // rows per block of the weight-gradient partials
    nchunks: u32,
}

@group(0) @binding(0) var<uniform> P: Params;

// norm_fwd
@group(0) @binding(1) var<storage, read> f_x: array<f32>;
@group(0) @binding(2) var<storage, read> f_w: array<f32>;
@group(0) @binding(3) var<storage, read_write> f_h: array<f32>;
@group(0) @binding(4) var<storage, read_write> f_rstd: array<f32>;


@compute @workgroup_size(64)
fn norm_fwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row = flat(wg, nwg);
    if (row >= P.rows) {
        return;
    }
    let base = row * P.d;
    var ss = 0.0;
    for (var i = li; i < P.d; i = i + WG) {
        let v = f_x[base + i];
        ss = ss + v * v;
    }
    // r = 1/sqrt(mean(x²) + eps)
    let r = 1.0 / sqrt(wg_sum(li, ss) / f32(P.d) + P.eps);
    for (var i = li; i < P.d; i = i + WG) {
        f_h[base + i] = f_x[base + i] * r * f_w[P.w_off + i];
    }
    if (li == 0u) {
        f_rstd[row] = r;
    }
}

// add_norm_fwd: the residual add fused in: x = a + b is stored, then normed.
@group(0) @binding(1) var<storage, read> a_a: array<f32>;
@group(0) @binding(2) var<storage, read> a_b: array<f32>;
@group(0) @binding(3) var<storage, read> a_w: array<f32>;
@group(0) @binding(4) var<storage, read_write> a_x: array<f32>;
@group(0) @binding(5) var<storage, read_write> a_h: array<f32>;
@group(0) @binding(6) var<storage, read_write> a_rstd: array<f32>;

@compute @workgroup_size(64)
fn add_norm_fwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row = flat(wg, nwg);
    if (row >= P.rows) {
        return;
    }
    let base = row * P.d;
    var ss = 0.0;
    for (var i = li; i < P.d; i = i + WG) {
        let v = a_a[base + i] + a_b[base + i];
        a_x[base + i] = v;
        ss = ss + v * v;
    }
    let r = 1.0 / sqrt(wg_sum(li, ss) / f32(P.d) + P.eps);
    for (var i = li; i < P.d; i = i + WG) {
        a_h[base + i] = a_x[base + i] * r * a_w[P.w_off + i];
    }
    if (li == 0u) {
        a_rstd[row] = r;
    }
}

// norm_bwd: with g = dh*w, dx = r g - r³ x mean(g x), added into dres.
@group(0) @binding(1) var<storage, read> b_x: array<f32>;
@group(0) @binding(2) var<storage, read> b_w: array<f32>;
@group(0) @binding(3) var<storage, read> b_rstd: array<f32>;
@group(0) @binding(4) var<storage, read> b_dh: array<f32>;
@group(0) @binding(5) var<storage, read_write> b_dres: array<f32>;

@compute @workgroup_size(64)
fn norm_bwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row = flat(wg, nwg);
    if (row >= P.rows) {
        return;
    }
    let base = row * P.d;
    let r = b_rstd[row];
    var dot = 0.0;
    for (var i = li; i < P.d; i = i + WG) {
        dot = dot + b_dh[base + i] * b_w[P.w_off + i] * b_x[base + i];
    }
    let c = r * r * r * wg_sum(li, dot) / f32(P.d);
    for (var i = li; i < P.d; i = i + WG) {
        let dx = r * b_dh[base + i] * b_w[P.w_off + i] - c * b_x[base + i];
        if (P.accumulate != 0u) {
            b_dres[base + i] = b_dres[base + i] + dx;
        } else {
            b_dres[base + i] = dx;
        }
    }
}

// norm_dw_partial: partial[c, i] = Σ over the rows of block c of dh x r,
// one invocation per (column, block); grid (ceil(d/WG), nchunks).
@group(0) @binding(1) var<storage, read> p_x: array<f32>;
@group(0) @binding(2) var<storage, read> p_rstd: array<f32>;
@group(0) @binding(3) var<storage, read> p_dh: array<f32>;
@group(0) @binding(4) var<storage, read_write> p_part: array<f32>;

@compute @workgroup_size(64)
fn norm_dw_partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = wg.x * WG + li;
    let c = wg.y;
    if (i >= P.d) {
        return;
    }
    let r0 = c * P.chunk;
    let r1 = min(r0 + P.chunk, P.rows);
    var acc = 0.0;
    for (var r = r0; r < r1; r = r + 1u) {
        acc = acc + p_dh[r * P.d + i] * p_x[r * P.d + i] * p_rstd[r];
    }
    p_part[c * P.d + i] = acc;
}

// colsum: grads[g_off + i] = Σ_c partial[c, i], blocks in order.
@group(0) @binding(1) var<storage, read> s_part: array<f32>;
@group(0) @binding(2) var<storage, read_write> s_grads: array<f32>;

@compute @workgroup_size(64)
fn colsum(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = wg.x * WG + li;
    if (i >= P.d) {
        return;
    }
    var acc = 0.0;
    for (var c = 0u; c < P.nchunks; c = c + 1u) {
        acc = acc + s_part[c * P.d + i];
    }
    s_grads[P.g_off + i] = acc;
}
