// Finishing a binary convolution computed as an XNOR GEMM on im2col_words,
// where taps outside the image read as +1 (zero padding must add nothing):
//
// conv_pad_terms: for each output channel o and output pixel s of a plane,
//   terms[o, s] = sum over the taps t of s outside the image of S[o, t],
//   S[o, t] = sum over channels of sign(w[o, c, t]) = 2 * popcount(w_t) - C;
//   the same for every image, so computed once (O * OH * OW invocations).
// conv_finish: y[n, o, s] = scale[o] * (y[n, o, s] - terms[o, s]). y holds
//   exact integers before (the GEMM runs without a scale), so the result
//   equals the direct kernel's bit for bit.
//
// w:     u32 [O * T, CW]: the weights' signs per tap, row-major
//        (pack_signs along channels), padding bits 0 (conv_pad_terms).
// terms: i32 [O, OH * OW], written by conv_pad_terms, read by conv_finish.
// scale: f32 [O], read by conv_finish when has_scale != 0.
// y:     f32 [N, O, OH, OW], updated in place by conv_finish.

struct Params {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    o: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad: u32,
    oh: u32,
    ow: u32,
    cw: u32,
    has_scale: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> wt: array<u32>;
@group(0) @binding(2) var<storage, read_write> terms: array<i32>;
@group(0) @binding(3) var<storage, read> scale: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn conv_pad_terms(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    let plane = p.oh * p.ow;
    if (i >= p.o * plane) {
        return;
    }
    let o = i / plane;
    let s = i % plane;
    let iy0 = i32((s / p.ow) * p.stride) - i32(p.pad);
    let ix0 = i32((s % p.ow) * p.stride) - i32(p.pad);
    var outside = 0i;
    for (var ky = 0u; ky < p.kh; ky++) {
        for (var kx = 0u; kx < p.kw; kx++) {
            let iy = iy0 + i32(ky);
            let ix = ix0 + i32(kx);
            if (iy < 0 || ix < 0 || iy >= i32(p.h) || ix >= i32(p.w)) {
                let row = (o * p.kh * p.kw + ky * p.kw + kx) * p.cw;
                var ones = 0u;
                for (var j = 0u; j < p.cw; j++) {
                    ones += countOneBits(wt[row + j]);
                }
                outside += 2i * i32(ones) - i32(p.c);
            }
        }
    }
    terms[i] = outside;
}

@compute @workgroup_size(WG)
fn conv_finish(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    let plane = p.oh * p.ow;
    if (i >= p.n * p.o * plane) {
        return;
    }
    // Integer division is scalar on a CPU adapter: two per element.
    let os = i % (p.o * plane);
    var v = y[i] - f32(terms[os]);
    if (p.has_scale != 0u) {
        v *= scale[os / plane];
    }
    y[i] = v;
}
