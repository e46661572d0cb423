// Batch-norm backward (training mode) for x viewed as [N, C, S], n = N * S.
//
// x:      f32 [N, C, S] (read): the forward input.
// g:      f32 [N, C, S] (read): dL/dy.
// gamma:  f32 [C] (read); [2C], gamma then beta, when ste_clip != 0.
// mean:   f32 [C] (read): saved_mean of the forward.
// invstd: f32 [C] (read): saved_invstd of the forward.
// dgamma: f32 [C], written by bn_backward_reduce: sum(g * xhat),
//         xhat = (x - mean) * invstd; read by bn_backward_dx.
// dbeta:  f32 [C], written by bn_backward_reduce: sum(g); read by bn_backward_dx.
// dx:     f32 [N, C, S], written by bn_backward_dx:
//         gamma * invstd / n * (n * g - dbeta - xhat * dgamma).
//
// bn_backward_reduce runs one workgroup per channel (tree reduction);
// bn_backward_dx is elementwise and runs after it.

// After bn_backward_common.wgsl (Params, WG, the tree).

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> mean: array<f32>;
@group(0) @binding(5) var<storage, read> invstd: array<f32>;
@group(0) @binding(6) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(7) var<storage, read_write> dbeta: array<f32>;
@group(0) @binding(8) var<storage, read_write> dx: array<f32>;

// Channel ch's (gamma, beta) for the clipped STE's mask where
// p.ste_clip != 0 (see bn_backward_common.wgsl), else unused zeros.
fn clip_affine(ch: u32) -> vec2<f32> {
    if (p.ste_clip == 0u) {
        return vec2<f32>(0.0);
    }
    return vec2<f32>(gamma[ch], gamma[p.c + ch]);
}

// g[idx], masked by the clipped STE where p.ste_clip != 0; gb: clip_affine.
fn g_at(idx: u32, xi: f32, m: f32, is: f32, gb: vec2<f32>) -> f32 {
    let gi = g[idx];
    if (p.ste_clip == 0u) {
        return gi;
    }
    let z = gb.x * (xi - m) * is + gb.y;
    return select(0.0, gi, abs(z) <= 1.0);
}

@compute @workgroup_size(WG)
fn bn_backward_reduce(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Uniform across the workgroup, so the barriers below stay uniform.
    let ch = wid.x + wid.y * nwg.x;
    if (ch >= p.c) {
        return;
    }
    let count = p.n * p.s;
    let m = mean[ch];
    let is = invstd[ch];
    let gb = clip_affine(ch);
    // (sum g, sum g * xhat) in one pass.
    var acc = vec2<f32>(0.0, 0.0);
    for (var i = lid; i < count; i += WG) {
        let n = i / p.s;
        let idx = (n * p.c + ch) * p.s + (i - n * p.s);
        let xi = x[idx];
        let gi = g_at(idx, xi, m, is, gb);
        acc += vec2<f32>(gi, gi * ((xi - m) * is));
    }
    let sums = workgroup_sum2(lid, acc);
    if (lid == 0u) {
        dbeta[ch] = sums.x;
        dgamma[ch] = sums.y;
    }
}

// bn_backward_reduce for S == 1 (a matrix [N, C]): one lane per channel
// walks the batch, no barriers; neighbouring lanes read neighbouring channels.
@compute @workgroup_size(64)
fn bn_backward_reduce_lanes(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ch = (wid.x + wid.y * nwg.x) * 64u + lid;
    if (ch >= p.c) {
        return;
    }
    let m = mean[ch];
    let is = invstd[ch];
    let gb = clip_affine(ch);
    var acc = vec2<f32>(0.0, 0.0);
    for (var i = 0u; i < p.n; i++) {
        let idx = i * p.c + ch;
        let xi = x[idx];
        let gi = g_at(idx, xi, m, is, gb);
        acc += vec2<f32>(gi, gi * ((xi - m) * is));
    }
    dbeta[ch] = acc.x;
    dgamma[ch] = acc.y;
}

@compute @workgroup_size(WG)
fn bn_backward_dx(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = (wid.x + wid.y * nwg.x) * WG + lid;
    let count = p.n * p.s;
    if (idx >= count * p.c) {
        return;
    }
    let ch = (idx / p.s) % p.c;
    let is = invstd[ch];
    let xi = x[idx];
    let xhat = (xi - mean[ch]) * is;
    let nf = f32(count);
    let gi = g_at(idx, xi, mean[ch], is, clip_affine(ch));
    dx[idx] = gamma[ch] * is / nf * (nf * gi - dbeta[ch] - xhat * dgamma[ch]);
}

// bn_backward_dx over RUN elements a lane, for planes of S > 1 values that
// are not whole vec4s (CPU adapters; channel4.wgsl prepended): a channel's
// values loaded once per plane a lane meets, not once per value.
@compute @workgroup_size(WG)
fn bn_backward_dx_runs1(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i0 = ((wid.x + wid.y * nwg.x) * WG + lid) * RUN;
    let count = p.n * p.s;
    let total = count * p.c;
    if (i0 >= total) {
        return;
    }
    let nf = f32(count);
    let start = run_start1(i0);
    var ch = start.x;
    var left = start.y;
    var is = 0.0;
    var m = 0.0;
    var ga = 0.0;
    var db = 0.0;
    var dg = 0.0;
    var gb = vec2<f32>(0.0);
    var loaded = false;
    let end = min(i0 + RUN, total);
    for (var i = i0; i < end; i++) {
        if (left == 0u) {
            ch = next_channel(ch);
            left = p.s;
            loaded = false;
        }
        if (!loaded) {
            is = invstd[ch];
            m = mean[ch];
            ga = gamma[ch];
            db = dbeta[ch];
            dg = dgamma[ch];
            gb = clip_affine(ch);
            loaded = true;
        }
        let xi = x[i];
        let xhat = (xi - m) * is;
        dx[i] = ga * is / nf * (nf * g_at(i, xi, m, is, gb) - db - xhat * dg);
        left -= 1u;
    }
}
