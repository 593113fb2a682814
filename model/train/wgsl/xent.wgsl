// Fused softmax cross-entropy, one workgroup per row of logits [T, V]:
// writes the row's loss lse - z[target] (0 without a target) and replaces
// the logits by the gradient of the mean loss times the loss scale S,
// (softmax - onehot) S / N, where S/N is the step's step[5].

struct Params {
    rows: u32,
    vocab: u32,
    tgt_off: u32, // where the targets start in the batch buffer (-1: none)
    _p0: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> batch: array<i32>;
@group(0) @binding(2) var<storage, read> step: array<f32>;
@group(0) @binding(3) var<storage, read_write> logits: array<f32>;
@group(0) @binding(4) var<storage, read_write> rowloss: array<f32>;

@compute @workgroup_size(64)
fn xent(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row = flat(wg, nwg);
    if (row >= P.rows) {
        return;
    }
    let base = row * P.vocab;
    var m = bitcast<f32>(0xff7fffffu); // -FLT_MAX, spelled exactly (the literal -3.4028235e38 rounds past it, which Tint rejects)
    for (var i = li; i < P.vocab; i = i + WG) {
        m = max(m, logits[base + i]);
    }
    m = wg_max(li, m);
    var s = 0.0;
    for (var i = li; i < P.vocab; i = i + WG) {
        s = s + exp(logits[base + i] - m);
    }
    let lse = m + log(wg_sum(li, s));
    // The row's target, or -1: then the row has no loss and no gradient.
    let tgt = batch[P.tgt_off + row];
    let t = u32(max(tgt, 0));
    let zt = logits[base + t];
    // Every invocation has read z[target] before any overwrites it.
    workgroupBarrier();
    let s_n = select(step[5], 0.0, tgt < 0);
    for (var i = li; i < P.vocab; i = i + WG) {
        var g = exp(logits[base + i] - lse) * s_n;
        if (i == t) {
            g = g - s_n;
        }
        logits[base + i] = g;
    }
    if (li == 0u) {
        rowloss[row] = select(lse - zt, 0.0, tgt < 0);
    }
}
