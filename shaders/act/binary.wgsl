// Elementwise maps (x, g) -> out over any shape: surrogate-gradient
// backwards (g is the upstream gradient) and the sum of two tensors.
//
// x:   f32 [n] (the forward input; add: the first operand).
// g:   f32 [n] (the upstream gradient; add: the second operand).
// out: f32 [n], written here.
// lo, hi: the hardtanh window.

struct Params {
    n: u32,
    lo: f32,
    hi: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

override WG: u32 = 64u;

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

// Clipped straight-through estimator: g * 1[|x| <= 1].
@compute @workgroup_size(WG)
fn ste_sign_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = index(wid, nwg, lid);
    if (i >= p.n) {
        return;
    }
    out[i] = select(0.0, g[i], abs(x[i]) <= 1.0);
}

// Bi-Real ApproxSign: g * max(0, 2 - 2|x|).
@compute @workgroup_size(WG)
fn approx_sign_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = index(wid, nwg, lid);
    if (i >= p.n) {
        return;
    }
    out[i] = g[i] * max(0.0, 2.0 - 2.0 * abs(x[i]));
}

// g * 1[lo <= x <= hi].
@compute @workgroup_size(WG)
fn hardtanh_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = index(wid, nwg, lid);
    if (i >= p.n) {
        return;
    }
    let v = x[i];
    out[i] = select(0.0, g[i], v >= p.lo && v <= p.hi);
}

// x + g.
@compute @workgroup_size(WG)
fn add(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = index(wid, nwg, lid);
    if (i >= p.n) {
        return;
    }
    out[i] = x[i] + g[i];
}
