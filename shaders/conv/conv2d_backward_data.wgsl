// f32 conv2d backward to the input (a transposed convolution, gathered).
//
// g:  f32 [N, O, OH, OW], the gradient of the loss with respect to y
// wt: f32 [O, C, KH, KW]
// dx: f32 [N, C, H, W], written here:
//     dx[n, c, iy, ix] = sum over (o, ky, kx) with iy + pad - ky = oy*stride
//     and ix + pad - kx = ox*stride, (oy, ox) inside [OH, OW], of
//     g[n, o, oy, ox] * wt[o, c, ky, kx].
//
// Each invocation computes RP input pixels x RC input channels; the
// workgroup shares its RC channels (uniform weight loads) and spreads
// pixels over lanes (pixel j of lane l is m0 + l + j * WG). Which output
// pixel a tap reaches depends only on the input pixel, so it is found once
// per tap and reused across the O channels. No workgroup memory.

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
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

override WG: u32 = 64u;
override RC: u32 = 8u;
override RP: u32 = 2u;
const MAX_RC: u32 = 16u;
const MAX_RP: u32 = 4u;

@compute @workgroup_size(WG)
fn conv2d_backward_data(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let grp = wid.x + wid.y * nwg.x;
    if (grp >= p.groups) {
        return;
    }
    let c0 = (grp / p.groups_x) * RC;
    let m0 = (grp % p.groups_x) * WG * RP + lid;
    let ohw = p.oh * p.ow;
    let hw = p.h * p.w;
    let taps = p.kh * p.kw;
    let s = i32(p.stride);

    // Lanes past the end compute a clamped pixel / channel and skip the store.
    var img0: array<u32, MAX_RP>;
    var ty0: array<i32, MAX_RP>;
    var tx0: array<i32, MAX_RP>;
    for (var j = 0u; j < RP; j++) {
        let m = min(m0 + j * WG, p.pixels - 1u);
        let r = m % hw;
        img0[j] = (m / hw) * p.o * ohw;
        ty0[j] = i32(r / p.w) + i32(p.pad);
        tx0[j] = i32(r % p.w) + i32(p.pad);
    }
    var wcol: array<u32, MAX_RC>;
    for (var i = 0u; i < RC; i++) {
        wcol[i] = min(c0 + i, p.c - 1u) * taps;
    }
    let wo_stride = p.c * taps;

    var acc: array<array<f32, MAX_RC>, MAX_RP>;
    for (var ky = 0u; ky < p.kh; ky++) {
        for (var kx = 0u; kx < p.kw; kx++) {
            let tap = ky * p.kw + kx;
            var goff: array<u32, MAX_RP>;
            var hit: array<bool, MAX_RP>;
            for (var j = 0u; j < RP; j++) {
                let ty = ty0[j] - i32(ky);
                let tx = tx0[j] - i32(kx);
                let oy = ty / s;
                let ox = tx / s;
                hit[j] = ty >= 0 && tx >= 0 && oy * s == ty && ox * s == tx
                    && oy < i32(p.oh) && ox < i32(p.ow);
                goff[j] = select(0u, img0[j] + u32(oy) * p.ow + u32(ox), hit[j]);
            }
            for (var o = 0u; o < p.o; o++) {
                var wv: array<f32, MAX_RC>;
                for (var i = 0u; i < RC; i++) {
                    wv[i] = wt[o * wo_stride + wcol[i] + tap];
                }
                for (var j = 0u; j < RP; j++) {
                    // Branch-free: without a hit goff is 0, an in-bounds read discarded.
                    let gv = select(0.0, g[goff[j] + o * ohw], hit[j]);
                    for (var i = 0u; i < RC; i++) {
                        acc[j][i] += gv * wv[i];
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
        let n = m / hw;
        let r = m % hw;
        for (var i = 0u; i < RC; i++) {
            let c = c0 + i;
            if (c >= p.c) {
                continue;
            }
            dx[(n * p.c + c) * hw + r] = acc[j][i];
        }
    }
}
