// ReActNet RSign forward: a sign with a learnt per-channel threshold.
//
// x: f32 [N, C, S].
// a: f32 [C], the thresholds.
// y: f32 [N, C, S], written here: y = sign(x - a[c]) (+1 when x - a[c] >= 0).

struct Params {
    n: u32,
    c: u32,
    s: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn rsign_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i >= p.n * p.c * p.s) {
        return;
    }
    let ch = (i / p.s) % p.c;
    // x >= a is x - a >= 0 without the device flushing a tiny difference to zero.
    y[i] = select(-1.0, 1.0, x[i] >= a[ch]);
}
