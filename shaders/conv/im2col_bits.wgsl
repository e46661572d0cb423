// im2col into packed signs, for a binary convolution's weight gradient
// dW[o, k] = sum over pixels q of g[o, q] * tap(q, k) when its input holds
// signs: the GEMM then reads that operand as bits (sign_gemm), one word per
// 32 pixels, instead of an f32 im2col 32 times its size.
//
// im2col_bits: x [N, C, H, W] (+-1 values) -> bits u32 [K + T + 1, pp / 32]
// (T = KH * KW taps, pp = pixels rounded up to 32, bit b of word w is pixel
// 32 w + b):
//   row k < K:   set where tap(q, k) >= 0. A tap outside the image (zero
//                padding) reads as +1 here; the next rows let the caller
//                take those terms out again (pad_correct.wgsl).
//   row K + t:   set where tap t of pixel q falls outside the image.
//   row K + T:   every bit set (its product is the row sum of g).
// Bits of pixels past the chunk are 0; the other operand is 0 there.

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> bits: array<u32>;

@compute @workgroup_size(WG)
fn im2col_bits(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = index(wid, nwg, lid);
    let taps = p.kh * p.kw;
    let words = p.pp / 32u;
    if (i >= (p.k + taps + 1u) * words) {
        return;
    }
    let r = i / words;
    let q0 = (i % words) * 32u;
    let pixels = p.images * p.oh * p.ow;
    let n_bits = min(32u, pixels - min(pixels, q0));
    // The pixel's coordinates divided out once per word, stepped after that.
    var at = pixel_at(q0);
    var t = r % taps;
    var c = r / taps;
    if (r >= p.k) {
        t = min(r - p.k, taps - 1u);
        c = 0u;
    }
    let ky = t / p.kw;
    let kx = t % p.kw;
    var word = 0u;
    for (var b = 0u; b < n_bits; b++) {
        let iy = i32(at.y * p.stride + ky) - i32(p.pad);
        let ix = i32(at.z * p.stride + kx) - i32(p.pad);
        let inside = iy >= 0 && ix >= 0 && iy < i32(p.h) && ix < i32(p.w);
        var one = true;
        if (r < p.k) {
            if (inside) {
                one = x[((at.x * p.c + c) * p.h + u32(iy)) * p.w + u32(ix)] >= 0.0;
            }
        } else if (r < p.k + taps) {
            one = !inside;
        }
        word |= u32(one) << b;
        at = next_pixel(at);
    }
    bits[i] = word;
}
