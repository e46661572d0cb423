// Prepended to bn_stats.wgsl and bn_stats4.wgsl (after reduce/workgroup_sum.wgsl):
// their Params, the per-channel outputs and the finishing writes. The
// module's entry adds the binding of x (f32 or vec4).
//
// Batch-norm statistics per channel.
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
// strided slice, then a workgroup tree combines the lanes; bn_stats4.wgsl
// does the same a vec4 per load (S % 4 == 0). The _lanes entries (S == 1
// only): one lane per channel.

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
@group(0) @binding(2) var<storage, read_write> mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> second: array<f32>;
@group(0) @binding(4) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> running_var: array<f32>;

// A power of two, at most MAX_WG (reduce/workgroup_sum.wgsl).
override WG: u32 = 256u;

// The corrected two-pass result from a first-pass mean m over count
// values, the sum of their deviations from m (zero but for m's rounding)
// and of their squares: (mean, sum of squared deviations from it).
fn corrected(m: f32, dev: f32, sq: f32, count: u32) -> vec2<f32> {
    let k = f32(count);
    return vec2<f32>(m + dev / k, max(sq - dev * dev / k, 0.0));
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

