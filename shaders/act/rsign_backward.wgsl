// ReActNet RSign backward with the ApproxSign surrogate.
//
// x:  f32 [N, C, S], the forward input.
// a:  f32 [C], the thresholds.
// g:  f32 [N, C, S], the upstream gradient.
// dx: f32 [N, C, S], written here: g * max(0, 2 - 2|x - a[c]|).
// da: f32 [C], written here: -(sum over n, s of dx).
//
// One workgroup per channel: the lanes walk the channel's N * S elements,
// write dx and add it up; a workgroup-memory tree adds the lanes (no float
// atomics, which the GL backend lacks).

struct Params {
    n: u32,
    c: u32,
    s: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<storage, read_write> da: array<f32>;

override WG: u32 = 256u;
var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn rsign_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Uniform across the workgroup, so the early exit keeps barriers uniform.
    let ch = wid.x + wid.y * nwg.x;
    if (ch >= p.c) {
        return;
    }
    let av = a[ch];
    var acc = 0.0;
    for (var j = lid; j < p.n * p.s; j += WG) {
        let nn = j / p.s;
        let i = (nn * p.c + ch) * p.s + (j - nn * p.s);
        let d = g[i] * max(0.0, 2.0 - 2.0 * abs(x[i] - av));
        dx[i] = d;
        acc += d;
    }
    red[lid] = acc;
    workgroupBarrier();
    for (var k = WG / 2u; k > 0u; k >>= 1u) {
        if (lid < k) {
            red[lid] += red[lid + k];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        da[ch] = -red[0];
    }
}
