// bn_backward_dx (bn_backward.wgsl) four elements per lane (see
// channel4.wgsl for when): the same arithmetic in the same order, on a
// quarter of the storage accesses. After bn_backward_common.wgsl and
// channel4.wgsl; bindings as bn_backward.wgsl, the
// per-channel arrays seen as vec4 [C / 4] and only read here.

@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> g: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> gamma: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> mean: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> invstd: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> dgamma: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> dbeta: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> dx: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn bn_backward_dx4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q = (wid.x + wid.y * nwg.x) * WG + lid;
    let count = p.n * p.s;
    if (4u * q >= count * p.c) {
        return;
    }
    let ch = channel_of4(q);
    let w = ch >> 2u;
    let is = per_channel4(invstd[w], ch);
    let xhat = (x[q] - per_channel4(mean[w], ch)) * is;
    let nf = f32(count);
    dx[q] = per_channel4(gamma[w], ch) * is / nf
        * (nf * g[q] - per_channel4(dbeta[w], ch) - xhat * per_channel4(dgamma[w], ch));
}
