// Elementwise maps x -> y over any shape.
//
// x: f32 [n].
// y: f32 [n], written here (add_scaled also reads it: y += a * x in place).
// a, b: per-entry scalars: clamp bounds (a = lo, b = hi), the step01
// threshold (a), the scale (a).

struct Params {
    n: u32,
    a: f32,
    b: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

override WG: u32 = 64u;

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

// sign(x) = +1 if x >= 0 else -1 (never 0).
@compute @workgroup_size(WG)
fn sign_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = index(wid, nwg, lid);
    if (i >= p.n) {
        return;
    }
    y[i] = select(-1.0, 1.0, x[i] >= 0.0);
}

// min(max(x, a), b): hardtanh and clamp.
@compute @workgroup_size(WG)
fn clamp_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = index(wid, nwg, lid);
    if (i >= p.n) {
        return;
    }
    y[i] = min(max(x[i], p.a), p.b);
}

// 0.5 * 1[x >= 0.25] + 0.5 * 1[x >= 0.75]: values {0, 0.5, 1}.
@compute @workgroup_size(WG)
fn ternary_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = index(wid, nwg, lid);
    if (i >= p.n) {
        return;
    }
    let v = x[i];
    y[i] = select(0.0, 0.5, v >= 0.25) + select(0.0, 0.5, v >= 0.75);
}

// 1[x >= a]: values {0, 1}.
@compute @workgroup_size(WG)
fn step01_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = index(wid, nwg, lid);
    if (i >= p.n) {
        return;
    }
    y[i] = select(0.0, 1.0, x[i] >= p.a);
}

// a * x.
@compute @workgroup_size(WG)
fn scale_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = index(wid, nwg, lid);
    if (i >= p.n) {
        return;
    }
    y[i] = p.a * x[i];
}

// y += a * x.
@compute @workgroup_size(WG)
fn add_scaled(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = index(wid, nwg, lid);
    if (i >= p.n) {
        return;
    }
    y[i] += p.a * x[i];
}
