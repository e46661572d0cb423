// Batch-norm statistics per channel; one workgroup per channel.
//
// x:            f32 [N, C, S] (read; S = H * W, 1 for a matrix).
// mean:         f32 [C], written: mean over (N, S).
// second:       f32 [C], written: 1 / sqrt(var + eps) (bn_stats_train) or
//               the biased variance var (bn_stats).
// running_mean: f32 [C], updated in place by bn_stats_train only:
//               (1 - momentum) * running_mean + momentum * mean.
// running_var:  f32 [C], updated in place by bn_stats_train only:
//               (1 - momentum) * running_var + momentum * var * n / (n - 1),
//               n = N * S (var itself when n == 1).
//
// Two passes over the channel (the mean, then the sum of squared deviations
// from it) so the variance does not come from cancelling E[x^2] - E[x]^2.
// bn_stats_train / bn_stats: one workgroup per channel, each lane sums a
// strided slice, then a workgroup tree combines the lanes. The _lanes
// entries (S == 1 only): one lane per channel.

struct Params {
    n: u32,
    c: u32,
    s: u32,
    _pad0: u32,
    eps: f32,
    momentum: f32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> second: array<f32>;
@group(0) @binding(4) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> running_var: array<f32>;

// A power of two, at most MAX_WG.
override WG: u32 = 256u;
const MAX_WG: u32 = 256u;
var<workgroup> partial: array<f32, MAX_WG>;

// Sum of v over the workgroup; every lane gets the total.
fn workgroup_sum(lid: u32, v: f32) -> f32 {
    partial[lid] = v;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    // The next call overwrites partial: every lane must have read the total first.
    workgroupBarrier();
    return total;
}

fn element(ch: u32, i: u32) -> f32 {
    let n = i / p.s;
    let s = i - n * p.s;
    return x[(n * p.c + ch) * p.s + s];
}

// (mean, biased variance) of channel ch, in every lane.
fn channel_stats(ch: u32, lid: u32) -> vec2<f32> {
    let count = p.n * p.s;
    var acc = 0.0;
    for (var i = lid; i < count; i += WG) {
        acc += element(ch, i);
    }
    let m = workgroup_sum(lid, acc) / f32(count);
    var sq = 0.0;
    for (var i = lid; i < count; i += WG) {
        let d = element(ch, i) - m;
        sq += d * d;
    }
    return vec2<f32>(m, workgroup_sum(lid, sq));
}

@compute @workgroup_size(WG)
fn bn_stats_train(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Uniform across the workgroup, so the barriers below stay uniform.
    let ch = wid.x + wid.y * nwg.x;
    if (ch >= p.c) {
        return;
    }
    let st = channel_stats(ch, lid);
    if (lid == 0u) {
        finish_train(ch, st);
    }
}

// Writes channel ch's statistics from (mean, sum of squared deviations).
fn finish_train(ch: u32, st: vec2<f32>) {
    let count = p.n * p.s;
    let m = st.x;
    let v = st.y / f32(count);
    var unbiased = v;
    if (count > 1u) {
        unbiased = st.y / f32(count - 1u);
    }
    mean[ch] = m;
    second[ch] = 1.0 / sqrt(v + p.eps);
    // A batch with a NaN or an infinity must not poison the running
    // statistics (its update is vetoed later; these are updated here).
    let bits = bitcast<vec2<u32>>(vec2<f32>(m, unbiased));
    let exponent = vec2<u32>(0x7f800000u);
    if (all((bits & exponent) != exponent)) {
        running_mean[ch] = p.momentum * m + (1.0 - p.momentum) * running_mean[ch];
        running_var[ch] = p.momentum * unbiased + (1.0 - p.momentum) * running_var[ch];
    }
}

// S == 1 (a matrix [N, C]): one lane per channel walks the batch, both
// passes, with no barriers (each costs a switch of every lane on a CPU
// adapter); neighbouring lanes read neighbouring channels. A running sum
// rounds worse than the tree, so the second pass also sums the deviations
// and corrects the mean and the squares with them (the corrected two-pass
// algorithm).
fn channel_stats_lane(ch: u32) -> vec2<f32> {
    var acc = 0.0;
    for (var i = 0u; i < p.n; i++) {
        acc += x[i * p.c + ch];
    }
    let m = acc / f32(p.n);
    var dev = 0.0;
    var sq = 0.0;
    for (var i = 0u; i < p.n; i++) {
        let d = x[i * p.c + ch] - m;
        dev += d;
        sq += d * d;
    }
    return vec2<f32>(m + dev / f32(p.n), max(sq - dev * dev / f32(p.n), 0.0));
}

@compute @workgroup_size(64)
fn bn_stats_train_lanes(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ch = (wid.x + wid.y * nwg.x) * 64u + lid;
    if (ch < p.c) {
        finish_train(ch, channel_stats_lane(ch));
    }
}

@compute @workgroup_size(64)
fn bn_stats_lanes(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ch = (wid.x + wid.y * nwg.x) * 64u + lid;
    if (ch < p.c) {
        let st = channel_stats_lane(ch);
        mean[ch] = st.x;
        second[ch] = st.y / f32(p.n);
    }
}

@compute @workgroup_size(WG)
fn bn_stats(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ch = wid.x + wid.y * nwg.x;
    if (ch >= p.c) {
        return;
    }
    let st = channel_stats(ch, lid);
    if (lid == 0u) {
        mean[ch] = st.x;
        second[ch] = st.y / f32(p.n * p.s);
    }
}
