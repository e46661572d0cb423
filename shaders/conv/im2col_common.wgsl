// What the convolution layout kernels (im2col.wgsl, im2col_bits.wgsl) share:
// their parameters and the geometry of a tap. They work on a chunk of images
// (images n0 .. n0 + images of the batch; p = (n - n0) * OH*OW + oy*OW + ox
// indexes output pixels of the chunk, k = (c*KH + ky)*KW + kx indexes taps
// as the weight [O, C, KH, KW] does).

struct Params {
    images: u32,
    n0: u32,
    c: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad: u32,
    k: u32,
    kp: u32,
    pp: u32,
    o: u32,
    op: u32,
    // im2col_words: words per packed pixel, and the valid bits of the last.
    cw: u32,
    last_mask: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
override WG: u32 = 64u;

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

// Output pixel q of the chunk as (image, row, column): the start of a walk
// over consecutive pixels that divides once and then steps (next_pixel);
// an integer division runs lane by lane on a CPU adapter.
fn pixel_at(q: u32) -> vec3<u32> {
    let plane = p.oh * p.ow;
    let s = q % plane;
    return vec3<u32>(p.n0 + q / plane, s / p.ow, s % p.ow);
}

// The output pixel after `at`: the next column, row or image.
fn next_pixel(at: vec3<u32>) -> vec3<u32> {
    if (at.z + 1u < p.ow) {
        return vec3<u32>(at.x, at.y, at.z + 1u);
    }
    if (at.y + 1u < p.oh) {
        return vec3<u32>(at.x, at.y + 1u, 0u);
    }
    return vec3<u32>(at.x + 1u, 0u, 0u);
}

// Where in x [N, C, H, W] tap k of output pixel q of the chunk reads, or
// -1 outside the image (zero padding).
fn tap_offset(q: u32, k: u32) -> i32 {
    let plane = p.oh * p.ow;
    let n = p.n0 + q / plane;
    let s = q % plane;
    let oy = s / p.ow;
    let ox = s % p.ow;
    let c = k / (p.kh * p.kw);
    let t = k % (p.kh * p.kw);
    let iy = i32(oy * p.stride + t / p.kw) - i32(p.pad);
    let ix = i32(ox * p.stride + t % p.kw) - i32(p.pad);
    if (iy < 0 || ix < 0 || iy >= i32(p.h) || ix >= i32(p.w)) {
        return -1;
    }
    return i32(((n * p.c + c) * p.h + u32(iy)) * p.w + u32(ix));
}
