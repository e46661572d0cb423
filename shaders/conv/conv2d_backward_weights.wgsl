// f32 conv2d backward to the weights: a sum over the batch and all output
// pixels, reduced inside one workgroup per block of weights.
//
// x:  f32 [N, C, H, W], the forward's input
// g:  f32 [N, O, OH, OW], the gradient of the loss with respect to y
// dw: f32 [O, C, KH, KW], written here:
//     dw[o, c, ky, kx] = sum_{n, oy, ox} g[n, o, oy, ox]
//                        * x[n, c, oy*stride - pad + ky, ox*stride - pad + kx]
//     (inputs outside the image are 0).
//
// A workgroup owns RO output channels x RK consecutive weight columns
// (column k = c*KH*KW + ky*KW + kx). Its WG lanes walk the N*OH*OW output
// pixels with stride WG (neighbouring lanes read neighbouring pixels), each
// keeping RO x RK partial sums, which a tree in workgroup memory then adds
// up. WG must be a power of two and WG * RO * RK <= 2048.

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
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> dw: array<f32>;

override WG: u32 = 64u;
override RO: u32 = 4u;
override RK: u32 = 8u;
const MAX_RO: u32 = 8u;
const MAX_RK: u32 = 16u;
const RED: u32 = 2048u;

// Partial sum q = i * RK + r of lane l at red[q * WG + l].
var<workgroup> red: array<f32, RED>;

@compute @workgroup_size(WG)
fn conv2d_backward_weights(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Uniform across the workgroup, so the early exit keeps barriers uniform.
    let grp = wid.x + wid.y * nwg.x;
    if (grp >= p.groups) {
        return;
    }
    let o0 = (grp / p.groups_x) * RO;
    let k0 = (grp % p.groups_x) * RK;
    let ohw = p.oh * p.ow;
    let hw = p.h * p.w;
    let taps = p.kh * p.kw;
    let cols = p.c * taps;

    // Columns and channels past the end are clamped and never stored.
    var xc: array<u32, MAX_RK>;
    var ky: array<i32, MAX_RK>;
    var kx: array<i32, MAX_RK>;
    for (var r = 0u; r < RK; r++) {
        let k = min(k0 + r, cols - 1u);
        let tap = k % taps;
        xc[r] = (k / taps) * hw;
        ky[r] = i32(tap / p.kw) - i32(p.pad);
        kx[r] = i32(tap % p.kw) - i32(p.pad);
    }
    var gc: array<u32, MAX_RO>;
    for (var i = 0u; i < RO; i++) {
        gc[i] = min(o0 + i, p.o - 1u) * ohw;
    }

    var acc: array<array<f32, MAX_RK>, MAX_RO>;
    for (var m = lid; m < p.pixels; m += WG) {
        let n = m / ohw;
        let rm = m % ohw;
        let oy = rm / p.ow;
        let ox = rm % p.ow;
        let g0 = n * p.o * ohw + rm;
        var gv: array<f32, MAX_RO>;
        for (var i = 0u; i < RO; i++) {
            gv[i] = g[g0 + gc[i]];
        }
        let x0 = n * p.c * hw;
        let sy = i32(oy * p.stride);
        let sx = i32(ox * p.stride);
        for (var r = 0u; r < RK; r++) {
            let iy = sy + ky[r];
            let ix = sx + kx[r];
            if (iy < 0 || iy >= i32(p.h) || ix < 0 || ix >= i32(p.w)) {
                continue;
            }
            let xv = x[x0 + xc[r] + u32(iy) * p.w + u32(ix)];
            for (var i = 0u; i < RO; i++) {
                acc[i][r] += gv[i] * xv;
            }
        }
    }

    for (var i = 0u; i < RO; i++) {
        for (var r = 0u; r < RK; r++) {
            red[(i * RK + r) * WG + lid] = acc[i][r];
        }
    }
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half /= 2u) {
        if (lid < half) {
            for (var q = 0u; q < RO * RK; q++) {
                red[q * WG + lid] += red[q * WG + lid + half];
            }
        }
        workgroupBarrier();
    }
    for (var q = lid; q < RO * RK; q += WG) {
        let o = o0 + q / RK;
        let k = k0 + q % RK;
        if (o < p.o && k < cols) {
            dw[o * cols + k] = red[q * WG];
        }
    }
}
