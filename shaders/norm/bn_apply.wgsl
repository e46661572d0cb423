// Batch-norm normalisation, elementwise over x viewed as [N, C, S].
//
// x:     f32 [N, C, S] (read).
// mean:  f32 [C] (read): batch mean (training) or running mean (eval).
// stat:  f32 [C] (read): 1 / sqrt(var + eps) when stat_is_var == 0
//        (training, saved_invstd), else the running variance (eval).
// gamma: f32 [C] (read), beta: f32 [C] (read).
// y:     f32 [N, C, S], written: gamma * (x - mean) * invstd + beta, or,
//        when sign_out != 0, its sign (+1 where >= 0, else -1: act/sign):
//        batch norm and the binary activation after it in one pass, the
//        normalised values never stored.

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
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> mean: array<f32>;
@group(0) @binding(3) var<storage, read> stat: array<f32>;
@group(0) @binding(4) var<storage, read> gamma: array<f32>;
@group(0) @binding(5) var<storage, read> beta: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn bn_apply(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = (wid.x + wid.y * nwg.x) * WG + lid;
    if (idx >= p.total) {
        return;
    }
    let ch = (idx / p.s) % p.c;
    var invstd = stat[ch];
    if (p.stat_is_var != 0u) {
        invstd = 1.0 / sqrt(stat[ch] + p.eps);
    }
    let z = gamma[ch] * (x[idx] - mean[ch]) * invstd + beta[ch];
    y[idx] = select(z, select(-1.0, 1.0, z >= 0.0), p.sign_out != 0u);
}

// bn_apply over RUN elements a lane, for planes of S > 1 values that are
// not whole vec4s (CPU adapters; channel4.wgsl prepended): a channel's
// values loaded once per plane a lane meets, not once per value.
@compute @workgroup_size(WG)
fn bn_apply_runs1(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i0 = ((wid.x + wid.y * nwg.x) * WG + lid) * RUN;
    if (i0 >= p.total) {
        return;
    }
    let start = run_start1(i0);
    var ch = start.x;
    var left = start.y;
    var g = 0.0;
    var m = 0.0;
    var invstd = 0.0;
    var b = 0.0;
    var loaded = false;
    let end = min(i0 + RUN, p.total);
    for (var i = i0; i < end; i++) {
        if (left == 0u) {
            ch = next_channel(ch);
            left = p.s;
            loaded = false;
        }
        if (!loaded) {
            g = gamma[ch];
            m = mean[ch];
            invstd = stat[ch];
            if (p.stat_is_var != 0u) {
                invstd = 1.0 / sqrt(invstd + p.eps);
            }
            b = beta[ch];
            loaded = true;
        }
        let z = g * (x[i] - m) * invstd + b;
        y[i] = select(z, select(-1.0, 1.0, z >= 0.0), p.sign_out != 0u);
        left -= 1u;
    }
}
