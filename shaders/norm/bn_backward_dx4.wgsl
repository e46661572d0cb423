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

// g[q], masked by the clipped STE where p.ste_clip != 0 (see
// bn_backward_common.wgsl); ga, be, m, is: vec4 q's per-channel values.
fn g_at4(q: u32, xi: vec4<f32>, ga: vec4<f32>, be: vec4<f32>, m: vec4<f32>, is: vec4<f32>) -> vec4<f32> {
    return clip4(g[q], xi, ga, be, m, is);
}

// Channel ch's beta (per_channel4) where p.ste_clip != 0, else 0.
fn beta4(w: u32, ch: u32) -> vec4<f32> {
    if (p.ste_clip == 0u) {
        return vec4<f32>(0.0);
    }
    return per_channel4(gamma[p.c / 4u + w], ch);
}

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
    let m = per_channel4(mean[w], ch);
    let ga = per_channel4(gamma[w], ch);
    let xi = x[q];
    let xhat = (xi - m) * is;
    let nf = f32(count);
    let gi = g_at4(q, xi, ga, beta4(w, ch), m, is);
    dx[q] = ga * is / nf
        * (nf * gi - per_channel4(dbeta[w], ch) - xhat * per_channel4(dgamma[w], ch));
}

// bn_backward_dx4 over RUN vec4s a lane (see channel4.wgsl).
@compute @workgroup_size(WG)
fn bn_backward_dx4_runs(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q0 = ((wid.x + wid.y * nwg.x) * WG + lid) * RUN;
    let count = p.n * p.s;
    let total = count * p.c / 4u;
    if (q0 >= total) {
        return;
    }
    let nf = f32(count);
    let start = run_start(q0);
    var ch = start.x;
    var left = start.y;
    var is = vec4<f32>(0.0);
    var m = vec4<f32>(0.0);
    var ga = vec4<f32>(0.0);
    var db = vec4<f32>(0.0);
    var dg = vec4<f32>(0.0);
    var be = vec4<f32>(0.0);
    var loaded = false;
    let end = min(q0 + RUN, total);
    for (var q = q0; q < end; q++) {
        if (left == 0u) {
            ch = next_channel(ch);
            left = p.s / 4u;
            loaded = false;
        }
        if (!loaded) {
            let w = ch >> 2u;
            is = per_channel4(invstd[w], ch);
            m = per_channel4(mean[w], ch);
            ga = per_channel4(gamma[w], ch);
            db = per_channel4(dbeta[w], ch);
            dg = per_channel4(dgamma[w], ch);
            be = beta4(w, ch);
            loaded = true;
        }
        let xi = x[q];
        let xhat = (xi - m) * is;
        dx[q] = ga * is / nf * (nf * g_at4(q, xi, ga, be, m, is) - db - xhat * dg);
        left -= 1u;
    }
}
