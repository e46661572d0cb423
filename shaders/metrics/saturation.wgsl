// Activation saturation counter: how many pre-sign inputs have
// abs(x - a[c]) > 1, accumulated on the device as a 64-bit count.
//
// x:   f32 [N, C, S] (any shape viewed so), the input of a sign.
// a:   f32 [C], RSign's per-channel threshold; read only when has_bias is 1
//      (otherwise any buffer is bound and the threshold is 0).
// acc: u32 [2 * slots]; acc[2 * slot] is the low word and acc[2 * slot + 1]
//      the high word of the count. Never cleared here, so an epoch's steps
//      add up before one read; the high word keeps a conv model's epoch
//      (billions of inputs) from wrapping.
// Each invocation covers 64 elements: one or two atomics per 64 inputs.
// saturation_accumulate_bn (below) counts the same for a sign fused into
// the batch norm before it.

struct Params {
    n: u32,
    c: u32,
    s: u32,
    slot: u32,
    has_bias: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read_write> acc: array<atomic<u32>>;

override WG: u32 = 64u;
const ELEMS: u32 = 64u;

@compute @workgroup_size(WG)
fn saturation_accumulate(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let start = ((wid.x + wid.y * nwg.x) * WG + lid) * ELEMS;
    if (start >= p.n) {
        return;
    }
    let end = min(start + ELEMS, p.n);
    var count = 0u;
    for (var i = start; i < end; i++) {
        var v = x[i];
        if (p.has_bias == 1u) {
            v = v - a[(i / p.s) % p.c];
        }
        if (abs(v) > 1.0) {
            count += 1u;
        }
    }
    add_count(count);
}

// acc[slot] += count, carrying into the high word.
fn add_count(count: u32) {
    if (count != 0u) {
        let old = atomicAdd(&acc[2u * p.slot], count);
        // The add that wraps the low word carries one into the high word.
        if (old + count < old) {
            atomicAdd(&acc[2u * p.slot + 1u], 1u);
        }
    }
}

// saturation_accumulate for a sign that follows training-mode batch norm
// in one pass (norm/bn_apply.wgsl with sign_out), whose normalised values
// are never stored: it counts abs(z) > 1 for
// z = gamma * (x - mean) * invstd + beta, recomputed in bn_apply's order
// from the per-channel [C] arrays below (binding 2 is not read).
@group(0) @binding(4) var<storage, read> bn_mean: array<f32>;
@group(0) @binding(5) var<storage, read> bn_invstd: array<f32>;
@group(0) @binding(6) var<storage, read> bn_gamma: array<f32>;
@group(0) @binding(7) var<storage, read> bn_beta: array<f32>;

@compute @workgroup_size(WG)
fn saturation_accumulate_bn(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let start = ((wid.x + wid.y * nwg.x) * WG + lid) * ELEMS;
    if (start >= p.n) {
        return;
    }
    let end = min(start + ELEMS, p.n);
    // A running (channel, values left in its plane) pair: no division per value.
    var ch = (start / p.s) % p.c;
    var left = p.s - start % p.s;
    var count = 0u;
    // A channel's values, loaded once per plane it meets.
    var g = bn_gamma[ch];
    var m = bn_mean[ch];
    var is = bn_invstd[ch];
    var b = bn_beta[ch];
    for (var i = start; i < end; i++) {
        if (left == 0u) {
            ch = select(ch + 1u, 0u, ch + 1u == p.c);
            left = p.s;
            g = bn_gamma[ch];
            m = bn_mean[ch];
            is = bn_invstd[ch];
            b = bn_beta[ch];
        }
        let z = g * (x[i] - m) * is + b;
        if (abs(z) > 1.0) {
            count += 1u;
        }
        left -= 1u;
    }
    add_count(count);
}
