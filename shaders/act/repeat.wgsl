// Channel repeat (BinaryDuo's decoupled batch norm sees its C input
// channels twice) and its backward.
//
// repeat_channels: x f32 viewed as [outer, C, S]; y f32 [outer, 2C, S],
//                  y[o, r * C + c, s] = x[o, c, s] for r = 0, 1.
// sum_halves:      x f32 [outer, 2C, S] (the gradient of y);
//                  y f32 [outer, C, S], y[o, c, s] = x[o, c, s] + x[o, C + c, s].
// n is the number of elements of y.

struct Params {
    n: u32,
    c: u32,
    s: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

override WG: u32 = 64u;

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

@compute @workgroup_size(WG)
fn repeat_channels(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = index(wid, nwg, lid);
    if (i >= p.n) {
        return;
    }
    let plane = p.c * p.s;
    let o = i / (2u * plane);
    let r = (i % (2u * plane)) % plane;
    y[i] = x[o * plane + r];
}

@compute @workgroup_size(WG)
fn sum_halves(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = index(wid, nwg, lid);
    if (i >= p.n) {
        return;
    }
    let plane = p.c * p.s;
    let o = i / plane;
    let r = i % plane;
    y[i] = x[2u * o * plane + r] + x[2u * o * plane + plane + r];
}
