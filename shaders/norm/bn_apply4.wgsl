// bn_apply.wgsl four elements per lane (see channel4.wgsl for when): the
// same arithmetic in the same order, on a quarter of the storage accesses.
// total counts vec4s here; the per-channel arrays are seen as vec4 [C / 4].

struct Params {
    total: u32,
    c: u32,
    s: u32,
    stat_is_var: u32,
    eps: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> mean: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> stat: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> gamma: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> beta: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> y: array<vec4<f32>>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn bn_apply4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q = (wid.x + wid.y * nwg.x) * WG + lid;
    if (q >= p.total) {
        return;
    }
    let ch = channel_of4(q);
    let w = ch >> 2u;
    var invstd = per_channel4(stat[w], ch);
    if (p.stat_is_var != 0u) {
        invstd = 1.0 / sqrt(invstd + p.eps);
    }
    y[q] = per_channel4(gamma[w], ch) * (x[q] - per_channel4(mean[w], ch)) * invstd
        + per_channel4(beta[w], ch);
}
