// im2col of an input packed along channels, for the binary convolution as
// an XNOR GEMM: a tap of a pixel is CW whole words of the packed input, so
// the layout copies words instead of packing bits.
//
// im2col_words: x u32 [N*H*W, CW] (pack_signs along channels, row-major)
//   -> out u32 [T * CW, P] word-major (T = KH * KW taps; row t * CW + j is
//   word j of tap t for every output pixel of the chunk). A tap outside the
//   image reads as +1 on every valid channel bit; conv_finish.wgsl takes
//   those terms out again. Padding bits past C stay 0.

@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(WG)
fn im2col_words(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = index(wid, nwg, lid);
    let plane = p.oh * p.ow;
    let pixels = p.images * plane;
    let taps = p.kh * p.kw;
    if (i >= taps * p.cw * pixels) {
        return;
    }
    let r = i / pixels;
    let q = i % pixels;
    let t = r / p.cw;
    let j = r % p.cw;
    let n = p.n0 + q / plane;
    let s = q % plane;
    let iy = i32((s / p.ow) * p.stride + t / p.kw) - i32(p.pad);
    let ix = i32((s % p.ow) * p.stride + t % p.kw) - i32(p.pad);
    var word = select(0xffffffffu, p.last_mask, j + 1u == p.cw);
    if (iy >= 0 && ix >= 0 && iy < i32(p.h) && ix < i32(p.w)) {
        word = x[((n * p.h + u32(iy)) * p.w + u32(ix)) * p.cw + j];
    }
    out[i] = word;
}
