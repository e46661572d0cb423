// Prepended to reduce.wgsl and reduce4.wgsl (which bind x as f32 or vec4):
// sums over the outer and inner axes of x viewed as [N, C, S], one result per
// channel c. Rows of [R, K] are N = 1, C = R, S = K; a whole tensor is
// N = 1, C = 1, S = numel.
//
// x:    f32 [N, C, S].
// mean: f32 [C], read only in mode 2 (otherwise any read-only tensor).
// out:  f32 [C * parts], written here: out[c * parts + part] is the reduction
//       of elements [part * chunk, min((part + 1) * chunk, N * S)) of channel
//       c's N * S elements (flattened as n * S + s), times `scale`, square
//       root taken when sqrt_out != 0. With parts = 1 that is the final value
//       per channel; with more, the host reduces the partials in a second pass.
//
// Modes: 0 sum of x, 1 sum of |x|, 2 sum of (x - mean[c])^2.
// reduce_ncs: one workgroup per (channel, part): each lane accumulates a
// strided slice in f32, then a workgroup-memory tree adds the lanes (WG a
// power of two). reduce_ncs_lanes (parts = 1, many channels, short
// channels): one lane per channel and no barriers, which CPU adapters pay
// dearly for; four interleaved partial sums keep the f32 error small.

struct Params {
    n: u32,
    c: u32,
    s: u32,
    parts: u32,
    chunk: u32,
    mode: u32,
    scale: f32,
    sqrt_out: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

override WG: u32 = 256u;
var<workgroup> red: array<f32, WG>;

fn term(v: f32, m: f32) -> f32 {
    if (p.mode == 0u) {
        return v;
    } else if (p.mode == 1u) {
        return abs(v);
    }
    return (v - m) * (v - m);
}

// Channel ch's mean in mode 2 (what term subtracts), else 0.
fn channel_mean(ch: u32) -> f32 {
    if (p.mode == 2u) {
        return mean[ch];
    }
    return 0.0;
}

// One lane's result for channel ch: the scale and root applied.
fn finish(acc: f32) -> f32 {
    var r = acc * p.scale;
    if (p.sqrt_out != 0u) {
        r = sqrt(r);
    }
    return r;
}
