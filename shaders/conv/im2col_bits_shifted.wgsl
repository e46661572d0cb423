// Appended to im2col_common.wgsl: im2col_bits.wgsl's rows (same layout,
// same bits) for a stride-1 convolution whose output is the size of its
// input (OH = H, OW = W), from the input's per-channel pixel stream
// (pixel_bits.wgsl). Output pixel q's tap (ky, kx) reads input pixel
// q + (ky - pad) * W + (kx - pad) of the same stream, so a tap row is the
// channel's row shifted by that offset (two words per word), with the taps
// outside the image set (read as +1; pad_correct.wgsl takes them out).
// Against 32 loads of x per word, two.
//
// stream: u32 [C, pp / 32] (read).
// bits:   u32 [K + T + 1, pp / 32], written here; see im2col_bits.wgsl.
// One lane per (tap t, word w): it builds the word's inside-the-image mask
// for t once, then writes row c * T + t for every channel, row K + t and,
// for t = 0, row K + T.

@group(0) @binding(1) var<storage, read> stream: array<u32>;
@group(0) @binding(2) var<storage, read_write> bits: array<u32>;

// Word `at` of stream row `c`, 0 outside the row.
fn stream_word(c: u32, at: i32, words: u32) -> u32 {
    let inside = at >= 0 && at < i32(words);
    return select(0u, stream[c * words + u32(clamp(at, 0, i32(words) - 1))], inside);
}

@compute @workgroup_size(WG)
fn im2col_bits_shifted(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = index(wid, nwg, lid);
    let taps = p.kh * p.kw;
    let words = p.pp / 32u;
    if (i >= taps * words) {
        return;
    }
    let t = i / words;
    let w = i % words;
    let ky = t / p.kw;
    let kx = t % p.kw;
    let plane = p.oh * p.ow;
    let pixels = p.images * plane;
    let q0 = w * 32u;
    // valid: pixels of the chunk; inside: taps that land in the image.
    let n_bits = min(32u, pixels - min(pixels, q0));
    var valid = 0u;
    var inside = 0u;
    var at = pixel_at(q0);
    for (var b = 0u; b < n_bits; b++) {
        let iy = i32(at.y + ky) - i32(p.pad);
        let ix = i32(at.z + kx) - i32(p.pad);
        let in_image = iy >= 0 && ix >= 0 && iy < i32(p.h) && ix < i32(p.w);
        valid |= 1u << b;
        inside |= u32(in_image) << b;
        at = next_pixel(at);
    }
    let outside = valid & ~inside;
    // The source bit of pixel q is q + d: words w0 and w0 + 1 shifted by sh.
    let d = (i32(ky) - i32(p.pad)) * i32(p.w) + i32(kx) - i32(p.pad);
    let src = i32(q0) + d;
    let w0 = src >> 5u;
    let sh = u32(src & 31);
    for (var c = 0u; c < p.c; c++) {
        let lo = stream_word(c, w0, words);
        let hi = stream_word(c, w0 + 1, words);
        // sh == 0 would shift hi by 32, which WGSL leaves undefined.
        var v = lo;
        if (sh != 0u) {
            v = (lo >> sh) | (hi << (32u - sh));
        }
        bits[(c * taps + t) * words + w] = (v & inside) | outside;
    }
    bits[(p.k + t) * words + w] = outside;
    if (t == 0u) {
        bits[(p.k + taps) * words + w] = valid;
    }
}
