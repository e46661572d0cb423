// f32 conv2d forward with zero padding, an implicit GEMM with
// M = N*OH*OW output pixels, N = O output channels, K = C*KH*KW.
//
// x:    f32 [N, C, H, W]
// wt:   f32 [O, C, KH, KW]
// bias: f32 [O], read when has_bias != 0
// y:    f32 [N, O, OH, OW], written here:
//       y[n, o, oy, ox] = bias[o] + sum_{c, ky, kx} wt[o, c, ky, kx]
//                         * x[n, c, oy*stride - pad + ky, ox*stride - pad + kx]
//       (inputs outside the image are 0).
//
// Each invocation computes RP output pixels x RO output channels; the
// workgroup shares its RO channels (uniform weight loads) and spreads
// pixels over lanes (pixel j of lane l is m0 + l + j * WG). No workgroup
// memory: barriers are expensive on CPU adapters.

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
    has_bias: u32,
    groups_x: u32,
    groups: u32,
    pixels: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

override WG: u32 = 64u;
override RO: u32 = 8u;
override RP: u32 = 2u;
const MAX_RO: u32 = 16u;
const MAX_RP: u32 = 4u;

@compute @workgroup_size(WG)
fn conv2d(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= p.groups) {
        return;
    }
    let o0 = (g / p.groups_x) * RO;
    let m0 = (g % p.groups_x) * WG * RP + lid;
    let ohw = p.oh * p.ow;
    let hw = p.h * p.w;
    let taps = p.kh * p.kw;

    // Lanes past the end compute a clamped pixel / channel and skip the store.
    var img0: array<u32, MAX_RP>;
    var iy0: array<i32, MAX_RP>;
    var ix0: array<i32, MAX_RP>;
    for (var j = 0u; j < RP; j++) {
        let m = min(m0 + j * WG, p.pixels - 1u);
        let r = m % ohw;
        img0[j] = (m / ohw) * p.c * hw;
        iy0[j] = i32((r / p.ow) * p.stride) - i32(p.pad);
        ix0[j] = i32((r % p.ow) * p.stride) - i32(p.pad);
    }
    var wrow: array<u32, MAX_RO>;
    for (var i = 0u; i < RO; i++) {
        wrow[i] = min(o0 + i, p.o - 1u) * p.c * taps;
    }

    var acc: array<array<f32, MAX_RO>, MAX_RP>;
    for (var ky = 0u; ky < p.kh; ky++) {
        for (var kx = 0u; kx < p.kw; kx++) {
            let tap = ky * p.kw + kx;
            var xoff: array<u32, MAX_RP>;
            var inside: array<bool, MAX_RP>;
            for (var j = 0u; j < RP; j++) {
                let iy = iy0[j] + i32(ky);
                let ix = ix0[j] + i32(kx);
                inside[j] = iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w);
                xoff[j] = select(0u, img0[j] + u32(iy) * p.w + u32(ix), inside[j]);
            }
            for (var c = 0u; c < p.c; c++) {
                var wv: array<f32, MAX_RO>;
                for (var i = 0u; i < RO; i++) {
                    wv[i] = wt[wrow[i] + c * taps + tap];
                }
                for (var j = 0u; j < RP; j++) {
                    // Branch-free: outside the image xoff is 0, an in-bounds read discarded.
                    let xv = select(0.0, x[xoff[j] + c * hw], inside[j]);
                    for (var i = 0u; i < RO; i++) {
                        acc[j][i] += xv * wv[i];
                    }
                }
            }
        }
    }

    for (var j = 0u; j < RP; j++) {
        let m = m0 + j * WG;
        if (m >= p.pixels) {
            continue;
        }
        let n = m / ohw;
        let r = m % ohw;
        for (var i = 0u; i < RO; i++) {
            let o = o0 + i;
            if (o >= p.o) {
                continue;
            }
            var v = acc[j][i];
            if (p.has_bias != 0u) {
                v += bias[o];
            }
            y[(n * p.o + o) * ohw + r] = v;
        }
    }
}
