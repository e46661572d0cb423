// First convolution of a packed model, in exact integers, fused with its
// folded batch norm + sign: the pixels as 2p - 255 convolved with i32
// weights (zero padding), then a per-channel 64-bit threshold.
//
// x:    f32 [N, C, H, W] (read): 2p - 255 for pixel bytes p (exact integers).
// wq:   u32 [O, C, KH, KW] (read): the i32 weights' bit patterns, |wq| <= 2^30.
// thr:  u32 [2 O] (read): threshold o as the pair (thr[2o] = hi as i32 bits,
//       thr[2o + 1] = lo), t = hi * 2^15 + lo with 0 <= lo < 2^15.
// flip: u32 [O] (read): 0 or 1.
// y:    f32 [N, O, OH, OW], written: +1 where s >= t[o] (s <= t[o] when
//       flip[o] == 1), else -1, with
//       s = sum over c, ky, kx inside the image of (2p - 255) * wq[o, c, ky, kx].
// s needs up to 46 bits and WGSL has no i64, so it is kept exactly as
// hi * 2^15 + lo with 0 <= lo < 2^15: each weight splits the same way
// (q >> 15, q & 0x7fff), the two products (below 2^23) add into hi and lo,
// and lo's carry moves into hi after every term. The exporter bounds
// 255 * sum |wq[o]| by 2^45, so |hi| <= 2^30 throughout: no overflow, and
// the result does not depend on the summation order.
// One invocation per output element.

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
    total: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wq: array<u32>;
@group(0) @binding(3) var<storage, read> thr: array<u32>;
@group(0) @binding(4) var<storage, read> flip: array<u32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn pixel_conv_sign(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = (wid.x + wid.y * nwg.x) * WG + lid;
    if (idx >= p.total) {
        return;
    }
    let ox = idx % p.ow;
    let oy = (idx / p.ow) % p.oh;
    let o = (idx / (p.ow * p.oh)) % p.o;
    let n = idx / (p.ow * p.oh * p.o);
    var hi = 0i;
    var lo = 0i;
    for (var c = 0u; c < p.c; c++) {
        for (var ky = 0u; ky < p.kh; ky++) {
            let iy = i32(oy * p.stride + ky) - i32(p.pad);
            if (iy < 0 || iy >= i32(p.h)) {
                continue;
            }
            for (var kx = 0u; kx < p.kw; kx++) {
                let ix = i32(ox * p.stride + kx) - i32(p.pad);
                if (ix < 0 || ix >= i32(p.w)) {
                    continue;
                }
                let a = i32(x[((n * p.c + c) * p.h + u32(iy)) * p.w + u32(ix)]);
                let q = bitcast<i32>(wq[((o * p.c + c) * p.kh + ky) * p.kw + kx]);
                hi += a * (q >> 15u);
                lo += a * (q & 0x7fff);
                hi += lo >> 15u;
                lo = lo & 0x7fff;
            }
        }
    }
    let th = bitcast<i32>(thr[2u * o]);
    let tl = i32(thr[2u * o + 1u]);
    let ge = hi > th || (hi == th && lo >= tl);
    let le = hi < th || (hi == th && lo <= tl);
    let on = select(ge, le, flip[o] != 0u);
    y[idx] = select(-1.0, 1.0, on);
}
