// The sign bits sign_conv_data.wgsl multiplies by: for binary weights
// W [O, C, T] (T = KH * KW taps), row c holds T * O bits, bit t * O + o set
// where W[o, c, t] >= 0 (O % 32 == 0: a word is 32 output channels of one
// tap).
//
// w:    f32 [O, C, T] (read).
// bits: u32 [C, T * O / 32], written here.

struct Params {
    o: u32,
    c: u32,
    taps: u32,
    kw: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> bits: array<u32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn pack_tap_major_signs(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i >= p.c * p.kw) {
        return;
    }
    let c = i / p.kw;
    let word = i - c * p.kw;
    let words_per_tap = p.o / 32u;
    let t = word / words_per_tap;
    let o0 = (word - t * words_per_tap) * 32u;
    var v = 0u;
    for (var b = 0u; b < 32u; b++) {
        if (w[((o0 + b) * p.c + c) * p.taps + t] >= 0.0) {
            v |= 1u << b;
        }
    }
    bits[i] = v;
}
