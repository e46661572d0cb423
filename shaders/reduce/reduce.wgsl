// Sums over the outer and inner axes of x viewed as [N, C, S], one result per
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
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

override WG: u32 = 256u;
var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn reduce_ncs(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Uniform across the workgroup, so the early exit keeps barriers uniform.
    let g = wid.x + wid.y * nwg.x;
    if (g >= p.c * p.parts) {
        return;
    }
    let ch = g / p.parts;
    let part = g % p.parts;
    let count = p.n * p.s;
    let start = part * p.chunk;
    let end = min(start + p.chunk, count);
    var m = 0.0;
    if (p.mode == 2u) {
        m = mean[ch];
    }
    var acc = 0.0;
    for (var j = start + lid; j < end; j += WG) {
        let nn = j / p.s;
        let v = x[(nn * p.c + ch) * p.s + (j - nn * p.s)];
        if (p.mode == 0u) {
            acc += v;
        } else if (p.mode == 1u) {
            acc += abs(v);
        } else {
            acc += (v - m) * (v - m);
        }
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
        var r = red[0] * p.scale;
        if (p.sqrt_out != 0u) {
            r = sqrt(r);
        }
        out[g] = r;
    }
}

fn term(v: f32, m: f32) -> f32 {
    if (p.mode == 0u) {
        return v;
    } else if (p.mode == 1u) {
        return abs(v);
    }
    return (v - m) * (v - m);
}

@compute @workgroup_size(WG)
fn reduce_ncs_lanes(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ch = (wid.x + wid.y * nwg.x) * WG + lid;
    if (ch >= p.c) {
        return;
    }
    var m = 0.0;
    if (p.mode == 2u) {
        m = mean[ch];
    }
    var acc = vec4<f32>(0.0);
    for (var nn = 0u; nn < p.n; nn++) {
        let base = (nn * p.c + ch) * p.s;
        var j = 0u;
        for (; j + 4u <= p.s; j += 4u) {
            acc += vec4<f32>(
                term(x[base + j], m),
                term(x[base + j + 1u], m),
                term(x[base + j + 2u], m),
                term(x[base + j + 3u], m),
            );
        }
        for (; j < p.s; j++) {
            acc.x += term(x[base + j], m);
        }
    }
    var r = ((acc.x + acc.y) + (acc.z + acc.w)) * p.scale;
    if (p.sqrt_out != 0u) {
        r = sqrt(r);
    }
    out[ch] = r;
}
