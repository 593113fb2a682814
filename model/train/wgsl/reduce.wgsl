// Deterministic sums: sum_partial reduces fixed chunks of a vector (or of
// its squares) to one partial per workgroup, each in a fixed order; a
// finish kernel sums the partials in order in one workgroup and writes the
// step's scalars: [0] the mean loss, [1] the loss sum, [2] the global
// gradient norm, [3] the clip factor min(1, max_norm/(norm + 1e-6)). The
// gradients carry the loss scale S; the norm divides it out (step[6] = 1/S).

struct Params {
    n: u32,        // elements to sum
    chunk: u32,    // elements per workgroup (sum_partial)
    square: u32,   // sum the squares
    parts: u32,    // partials: written by sum_partial, read by finish
    max_norm: f32, // finish_norm: 0 turns clipping off
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> P: Params;

// sum_partial: one workgroup per chunk.
@group(0) @binding(1) var<storage, read> p_src: array<f32>;
@group(0) @binding(2) var<storage, read_write> p_part: array<f32>;

@compute @workgroup_size(64)
fn sum_partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let w = flat(wg, nwg);
    let lo = w * P.chunk;
    let hi = min(lo + P.chunk, P.n);
    var acc = 0.0;
    for (var i = lo + li; i < hi; i = i + WG) {
        let v = p_src[i];
        acc = acc + select(v, v * v, P.square != 0u);
    }
    let s = wg_sum(li, acc);
    if (li == 0u && w < P.parts) {
        p_part[w] = s;
    }
}

// finish_loss and finish_norm: one workgroup.
@group(0) @binding(1) var<storage, read> f_part: array<f32>;
@group(0) @binding(2) var<storage, read> f_step: array<f32>;
@group(0) @binding(3) var<storage, read_write> f_out: array<f32>;

fn total(li: u32) -> f32 {
    var acc = 0.0;
    for (var i = li; i < P.parts; i = i + WG) {
        acc = acc + f_part[i];
    }
    return wg_sum(li, acc);
}

@compute @workgroup_size(64)
fn finish_loss(@builtin(local_invocation_index) li: u32) {
    let s = total(li);
    if (li == 0u) {
        f_out[0] = s * f_step[0]; // times 1/N
        f_out[1] = s;
    }
}

@compute @workgroup_size(64)
fn finish_norm(@builtin(local_invocation_index) li: u32) {
    let norm = sqrt(total(li)) * f_step[6];
    if (li == 0u) {
        f_out[2] = norm;
        f_out[3] = select(min(1.0, P.max_norm / (norm + 1e-6)), 1.0, P.max_norm == 0.0);
    }
}
