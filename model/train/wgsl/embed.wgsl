// The token embedding: embed_fwd gathers x[t] = tok_emb[token t];
// embed_bwd writes tok_emb's gradient without float atomics: the host
// lists, per token id, the rows holding it (CSR: offsets [V+1], then the
// rows in increasing order), and invocation (id, column) sums those rows of
// dx in that order. Ids absent from the batch get zeros.

struct Params {
    rows: u32,  // T
    d: u32,
    off: u32,   // tok_emb's offset in the flat parameters (and gradients)
    vocab: u32,
}

@group(0) @binding(0) var<uniform> P: Params;

// embed_fwd: one invocation per element of x.
@group(0) @binding(1) var<storage, read> f_batch: array<i32>;
@group(0) @binding(2) var<storage, read> f_w: array<f32>;
@group(0) @binding(3) var<storage, read_write> f_x: array<f32>;

@compute @workgroup_size(64)
fn embed_fwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wg, nwg) * WG + li;
    if (i >= P.rows * P.d) {
        return;
    }
    let row = i / P.d;
    f_x[i] = f_w[P.off + u32(f_batch[row]) * P.d + i % P.d];
}

// embed_bwd: grid (vocab, ceil(d/WG)).
@group(0) @binding(1) var<storage, read> b_index: array<u32>;
@group(0) @binding(2) var<storage, read> b_dx: array<f32>;
@group(0) @binding(3) var<storage, read_write> b_grads: array<f32>;

@compute @workgroup_size(64)
fn embed_bwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let id = wg.x;
    let c = wg.y * WG + li;
    if (c >= P.d) {
        return;
    }
    // Four partial sums (rows j, j+1, j+2, j+3 of the list) keep four
    // loads in flight; they are added in a fixed order at the end.
    let rows = P.vocab + 1u;
    let end = b_index[id + 1u];
    var a = vec4<f32>(0.0);
    var j = b_index[id];
    for (; j + 4u <= end; j = j + 4u) {
        a = a + vec4<f32>(b_dx[b_index[rows + j] * P.d + c], b_dx[b_index[rows + j + 1u] * P.d + c],
                          b_dx[b_index[rows + j + 2u] * P.d + c], b_dx[b_index[rows + j + 3u] * P.d + c]);
    }
    for (; j < end; j = j + 1u) {
        a.x = a.x + b_dx[b_index[rows + j] * P.d + c];
    }
    b_grads[P.off + id * P.d + c] = (a.x + a.y) + (a.z + a.w);
}
