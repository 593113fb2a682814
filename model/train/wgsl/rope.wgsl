// RoPE, rotate-half convention, positions restarting per document (read
// from the step's batch buffer), with cos and sin from a table the host
// computes in float64. rope_fwd splits the QKV projection [T, (Hq+2Hkv)·Dh]
// into rotated Q, rotated K and V; rope_bwd rotates dQ and dK back and
// packs them with dV into dQKV. One invocation per (row, head, pair).

struct Params {
    rows: u32,    // T
    hq: u32,
    hkv: u32,
    dh: u32,
    pos_off: u32, // where the positions start in the batch buffer
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> batch: array<i32>;
@group(0) @binding(2) var<storage, read> table: array<vec2<f32>>; // (cos, sin) [position, Dh/2]

// rope_fwd
@group(0) @binding(3) var<storage, read> f_qkv: array<f32>;
@group(0) @binding(4) var<storage, read_write> f_q: array<f32>;
@group(0) @binding(5) var<storage, read_write> f_k: array<f32>;
@group(0) @binding(6) var<storage, read_write> f_v: array<f32>;

// rope_bwd
@group(0) @binding(3) var<storage, read> b_dq: array<f32>;
@group(0) @binding(4) var<storage, read> b_dk: array<f32>;
@group(0) @binding(5) var<storage, read> b_dv: array<f32>;
@group(0) @binding(6) var<storage, read_write> b_dqkv: array<f32>;

struct Slot {
    row: u32,
    head: u32, // 0..Hq+2Hkv: Q heads, then K heads, then V heads
    j: u32,    // pair index < Dh/2
    valid: bool,
}

fn slot(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> Slot {
    let half = P.dh / 2u;
    let heads = P.hq + 2u * P.hkv;
    let i = flat(wg, nwg) * WG + li;
    let row = i / (heads * half);
    let rem = i % (heads * half);
    return Slot(row, rem / half, rem % half, row < P.rows);
}

@compute @workgroup_size(64)
fn rope_fwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let s = slot(wg, nwg, li);
    if (!s.valid) {
        return;
    }
    let half = P.dh / 2u;
    let src = s.row * (P.hq + 2u * P.hkv) * P.dh + s.head * P.dh + s.j;
    let a = f_qkv[src];
    let b = f_qkv[src + half];
    if (s.head >= P.hq + P.hkv) {
        let dst = s.row * P.hkv * P.dh + (s.head - P.hq - P.hkv) * P.dh + s.j;
        f_v[dst] = a;
        f_v[dst + half] = b;
        return;
    }
    let cs = table[u32(batch[P.pos_off + s.row]) * half + s.j];
    // y[j] = x[j] cos - x[j+Dh/2] sin; y[j+Dh/2] = x[j+Dh/2] cos + x[j] sin
    let ya = a * cs.x - b * cs.y;
    let yb = b * cs.x + a * cs.y;
    if (s.head < P.hq) {
        let dst = s.row * P.hq * P.dh + s.head * P.dh + s.j;
        f_q[dst] = ya;
        f_q[dst + half] = yb;
    } else {
        let dst = s.row * P.hkv * P.dh + (s.head - P.hq) * P.dh + s.j;
        f_k[dst] = ya;
        f_k[dst + half] = yb;
    }
}

@compute @workgroup_size(64)
fn rope_bwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let s = slot(wg, nwg, li);
    if (!s.valid) {
        return;
    }
    let half = P.dh / 2u;
    let dst = s.row * (P.hq + 2u * P.hkv) * P.dh + s.head * P.dh + s.j;
    if (s.head >= P.hq + P.hkv) {
        let src = s.row * P.hkv * P.dh + (s.head - P.hq - P.hkv) * P.dh + s.j;
        b_dqkv[dst] = b_dv[src];
        b_dqkv[dst + half] = b_dv[src + half];
        return;
    }
    var a: f32;
    var b: f32;
    if (s.head < P.hq) {
        let src = s.row * P.hq * P.dh + s.head * P.dh + s.j;
        a = b_dq[src];
        b = b_dq[src + half];
    } else {
        let src = s.row * P.hkv * P.dh + (s.head - P.hq) * P.dh + s.j;
        a = b_dk[src];
        b = b_dk[src + half];
    }
    let cs = table[u32(batch[P.pos_off + s.row]) * half + s.j];
    // The transpose of the rotation: by -angle.
    b_dqkv[dst] = a * cs.x + b * cs.y;
    b_dqkv[dst + half] = b * cs.x - a * cs.y;
}
