// Activation saturation counter: how many inputs v of a sign have
// abs(v) > 1, accumulated on the device as a 64-bit count. What v is of
// x, by p.input:
//   0: x itself;
//   1: x - a[c] (RSign's per-channel threshold a);
//   2: gamma[c] * (x - mean[c]) * invstd[c] + beta[c], training-mode batch
//      norm's output for a sign fused into it (norm/bn_apply.wgsl with
//      sign_out), recomputed in bn_apply's order since it is never stored.
//
// x:     f32 [N, C, S] (any shape viewed so).
// a:     f32 [C], read when input == 1 (any buffer is bound otherwise).
// acc:   u32 [2 * slots]; acc[2 * slot] is the low word and acc[2 * slot + 1]
//        the high word of the count. Never cleared here, so an epoch's steps
//        add up before one read; the high word keeps a conv model's epoch
//        (billions of inputs) from wrapping.
// mean, invstd, gamma, beta: f32 [C], read when input == 2 (any buffers
//        are bound otherwise).
// Each invocation covers 64 elements: one or two atomics per 64 inputs.

struct Params {
    n: u32,
    c: u32,
    s: u32,
    slot: u32,
    input: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read_write> acc: array<atomic<u32>>;
@group(0) @binding(4) var<storage, read> bn_mean: array<f32>;
@group(0) @binding(5) var<storage, read> bn_invstd: array<f32>;
@group(0) @binding(6) var<storage, read> bn_gamma: array<f32>;
@group(0) @binding(7) var<storage, read> bn_beta: array<f32>;

override WG: u32 = 64u;
const ELEMS: u32 = 64u;

// Channel ch's values of the map from x to v: v = scale * (x - shift) *
// invstd + offset, as (scale, shift, invstd, offset).
fn channel_map(ch: u32) -> vec4<f32> {
    if (p.input == 1u) {
        return vec4<f32>(1.0, a[ch], 1.0, 0.0);
    }
    if (p.input == 2u) {
        return vec4<f32>(bn_gamma[ch], bn_mean[ch], bn_invstd[ch], bn_beta[ch]);
    }
    return vec4<f32>(1.0, 0.0, 1.0, 0.0);
}

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
    // A running (channel, values left in its plane) pair, the channel's
    // values loaded once per plane: no division or per-channel load a value.
    var ch = (start / p.s) % p.c;
    var left = p.s - start % p.s;
    var f = channel_map(ch);
    var count = 0u;
    for (var i = start; i < end; i++) {
        if (left == 0u) {
            ch = select(ch + 1u, 0u, ch + 1u == p.c);
            left = p.s;
            f = channel_map(ch);
        }
        // 1 * (x - 0) * 1 + 0 is x exactly, so inputs 0 and 1 count as before.
        let v = f.x * (x[i] - f.y) * f.z + f.w;
        if (abs(v) > 1.0) {
            count += 1u;
        }
        left -= 1u;
    }
    if (count != 0u) {
        let old = atomicAdd(&acc[2u * p.slot], count);
        // The add that wraps the low word carries one into the high word.
        if (old + count < old) {
            atomicAdd(&acc[2u * p.slot + 1u], 1u);
        }
    }
}
