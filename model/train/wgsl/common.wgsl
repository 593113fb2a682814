// Prepended to every kernel of package train.

// WG is the workgroup size of the row and element kernels.
const WG: u32 = 64u;

// flat is a workgroup's index in a grid laid out along x, then y (the
// host's grid2d: x is capped at the adapter's per-dimension limit).
fn flat(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wg.x + wg.y * nwg.x;
}

var<workgroup> red: array<f32, 64>;

// wg_sum sums v over the workgroup's 64 invocations in a fixed tree order,
// so the result is the same bits on every run. Call in uniform control flow.
fn wg_sum(li: u32, v: f32) -> f32 {
    red[li] = v;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s = s >> 1u) {
        if (li < s) {
            red[li] = red[li] + red[li + s];
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

// wg_max is wg_sum's maximum.
fn wg_max(li: u32, v: f32) -> f32 {
    red[li] = v;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s = s >> 1u) {
        if (li < s) {
            red[li] = max(red[li], red[li + s]);
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}
