// Moving rows between the ranks of a cluster, and summing their gradients.
// copy_rows and add_rows move P.n rows of P.w elements, listed in a map of
// (source offset, destination offset) pairs in elements, starting at pair
// P.off; add_rows adds into the destination (the host lists each
// destination row at most once per dispatch, and orders the dispatches, so
// every sum has a fixed order). fill_zero clears P.n elements from element
// P.off; add_vec adds the first P.n elements of a vector into another.

struct Params {
    n: u32,
    w: u32,
    off: u32,
    _p0: u32,
}

@group(0) @binding(0) var<uniform> P: Params;

@group(0) @binding(1) var<storage, read> m_map: array<u32>;
@group(0) @binding(2) var<storage, read> m_src: array<f32>;
@group(0) @binding(3) var<storage, read_write> m_dst: array<f32>;

// pair returns the source and destination element of invocation i
// (element i % w of row i / w).
fn pair(i: u32) -> vec2<u32> {
    let p = i / P.w;
    let c = i - p * P.w;
    let at = 2u * (P.off + p);
    return vec2<u32>(m_map[at] + c, m_map[at + 1u] + c);
}

@compute @workgroup_size(64)
fn copy_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wg, nwg) * WG + li;
    if (i >= P.n * P.w) {
        return;
    }
    let e = pair(i);
    m_dst[e.y] = m_src[e.x];
}

@compute @workgroup_size(64)
fn add_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wg, nwg) * WG + li;
    if (i >= P.n * P.w) {
        return;
    }
    let e = pair(i);
    m_dst[e.y] = m_dst[e.y] + m_src[e.x];
}

@group(0) @binding(1) var<storage, read_write> z_dst: array<f32>;

@compute @workgroup_size(64)
fn fill_zero(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wg, nwg) * WG + li;
    if (i < P.n) {
        z_dst[P.off + i] = 0.0;
    }
}

@group(0) @binding(1) var<storage, read> v_src: array<f32>;
@group(0) @binding(2) var<storage, read_write> v_dst: array<f32>;

@compute @workgroup_size(64)
fn add_vec(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wg, nwg) * WG + li;
    if (i < P.n) {
        v_dst[i] = v_dst[i] + v_src[i];
    }
}
