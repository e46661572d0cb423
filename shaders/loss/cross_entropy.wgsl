// Softmax cross-entropy forward, one invocation per row.
//
// logits:  f32 [N, C].
// labels:  u32 [N]; a label >= C is not read past the row: its row loss is NaN
//          so the mean loss shows it.
// probs:   f32 [N, C], written here: softmax(logits[r]) (kept for the backward).
// rowloss: f32 [N], written here: -log softmax(logits[r])[label]
//          = log sum_c exp(z_c - m) + m - z_label with m the row max, which
//          stays finite where the label's probability underflows.

struct Params {
    n: u32,
    c: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> probs: array<f32>;
@group(0) @binding(4) var<storage, read_write> rowloss: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn cross_entropy_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let r = (wid.x + wid.y * nwg.x) * WG + lid;
    if (r >= p.n) {
        return;
    }
    let base = r * p.c;
    var m = logits[base];
    for (var j = 1u; j < p.c; j++) {
        m = max(m, logits[base + j]);
    }
    var sum = 0.0;
    for (var j = 0u; j < p.c; j++) {
        let e = exp(logits[base + j] - m);
        probs[base + j] = e;
        sum += e;
    }
    let inv = 1.0 / sum;
    for (var j = 0u; j < p.c; j++) {
        probs[base + j] *= inv;
    }
    let label = labels[r];
    if (label < p.c) {
        rowloss[r] = log(sum) + m - logits[base + label];
    } else {
        rowloss[r] = bitcast<f32>(0x7fc00000u);
    }
}
