// bn_apply.wgsl four elements per lane (see channel4.wgsl for when): the
// same arithmetic in the same order, on a quarter of the storage accesses.
// total counts vec4s here; the per-channel arrays are seen as vec4 [C / 4].

// y, or its sign where p.sign_out != 0 (see bn_apply.wgsl).
fn output4(z: vec4<f32>) -> vec4<f32> {
    return select(z, select(vec4<f32>(-1.0), vec4<f32>(1.0), z >= vec4<f32>(0.0)), p.sign_out != 0u);
}

struct Params {
    total: u32,
    c: u32,
    s: u32,
    stat_is_var: u32,
    eps: f32,
    sign_out: u32,
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
    y[q] = output4(per_channel4(gamma[w], ch) * (x[q] - per_channel4(mean[w], ch)) * invstd
        + per_channel4(beta[w], ch));
}

// bn_apply4 over RUN vec4s a lane (see channel4.wgsl).
@compute @workgroup_size(WG)
fn bn_apply4_runs(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q0 = ((wid.x + wid.y * nwg.x) * WG + lid) * RUN;
    if (q0 >= p.total) {
        return;
    }
    let start = run_start(q0);
    var ch = start.x;
    var left = start.y;
    var g = vec4<f32>(0.0);
    var m = vec4<f32>(0.0);
    var invstd = vec4<f32>(0.0);
    var b = vec4<f32>(0.0);
    var loaded = false;
    let end = min(q0 + RUN, p.total);
    for (var q = q0; q < end; q++) {
        if (left == 0u) {
            ch = next_channel(ch);
            left = p.s / 4u;
            loaded = false;
        }
        if (!loaded) {
            let w = ch >> 2u;
            g = per_channel4(gamma[w], ch);
            m = per_channel4(mean[w], ch);
            invstd = per_channel4(stat[w], ch);
            if (p.stat_is_var != 0u) {
                invstd = 1.0 / sqrt(invstd + p.eps);
            }
            b = per_channel4(beta[w], ch);
            loaded = true;
        }
        y[q] = output4(g * (x[q] - m) * invstd + b);
        left -= 1u;
    }
}
