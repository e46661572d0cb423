// Softmax cross-entropy backward, one invocation per element.
//
// probs:   f32 [N, C], the forward's softmax.
// labels:  u32 [N]; a label >= C matches no column (no one-hot term).
// dlogits: f32 [N, C], written here: (probs - onehot(label)) * inv_n,
//          inv_n = 1 / N for the mean over rows.

struct Params {
    n: u32,
    c: u32,
    inv_n: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> probs: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn cross_entropy_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i >= p.n * p.c) {
        return;
    }
    let r = i / p.c;
    let onehot = select(0.0, 1.0, labels[r] == i - r * p.c);
    dlogits[i] = (probs[i] - onehot) * p.inv_n;
}
