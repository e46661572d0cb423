// Layout kernels that turn convolutions into GEMMs over a chunk of images
// (images n0 .. n0 + images of the batch; p = (n - n0) * OH*OW + oy*OW + ox
// indexes output pixels of the chunk, k = (c*KH + ky)*KW + kx indexes taps
// as the weight [O, C, KH, KW] does).
//
// im2col_rows:  x [N, C, H, W]          -> out [P, kp]  (zero taps outside the image and for k >= K)
// im2col_cols:  x [N, C, H, W]          -> out [K, pp]  (the transpose; zero for p >= P)
// col2im:       x = colgrad [P, K]      -> out = dx [N, C, H, W], images n0.. (every element written)
// channel_rows: x = g [N, O, OH, OW]    -> out [O, pp]  (zero for p >= P)
// pixel_rows:   x = g [N, O, OH, OW]    -> out [P, op]  (op = O padded to 4, zero past O)

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
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

override WG: u32 = 64u;

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

// The input value under tap k of output pixel q (0 outside the image).
fn tap(q: u32, k: u32) -> f32 {
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
        return 0.0;
    }
    return x[((n * p.c + c) * p.h + u32(iy)) * p.w + u32(ix)];
}

@compute @workgroup_size(WG)
fn im2col_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = index(wid, nwg, lid);
    let pixels = p.images * p.oh * p.ow;
    if (i >= pixels * p.kp) {
        return;
    }
    let q = i / p.kp;
    let k = i % p.kp;
    var v = 0.0;
    if (k < p.k) {
        v = tap(q, k);
    }
    out[i] = v;
}

@compute @workgroup_size(WG)
fn im2col_cols(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = index(wid, nwg, lid);
    if (i >= p.k * p.pp) {
        return;
    }
    let k = i / p.pp;
    let q = i % p.pp;
    var v = 0.0;
    if (q < p.images * p.oh * p.ow) {
        v = tap(q, k);
    }
    out[i] = v;
}

@compute @workgroup_size(WG)
fn col2im(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = index(wid, nwg, lid);
    let per_image = p.c * p.h * p.w;
    if (i >= p.images * per_image) {
        return;
    }
    let nl = i / per_image;
    let r = i % per_image;
    let c = r / (p.h * p.w);
    let iy = (r / p.w) % p.h;
    let ix = r % p.w;
    var acc = 0.0;
    for (var ky = 0u; ky < p.kh; ky++) {
        let ty = i32(iy + p.pad) - i32(ky);
        if (ty < 0 || ty % i32(p.stride) != 0) {
            continue;
        }
        let oy = u32(ty) / p.stride;
        if (oy >= p.oh) {
            continue;
        }
        for (var kx = 0u; kx < p.kw; kx++) {
            let tx = i32(ix + p.pad) - i32(kx);
            if (tx < 0 || tx % i32(p.stride) != 0) {
                continue;
            }
            let ox = u32(tx) / p.stride;
            if (ox >= p.ow) {
                continue;
            }
            let q = (nl * p.oh + oy) * p.ow + ox;
            acc += x[q * p.k + (c * p.kh + ky) * p.kw + kx];
        }
    }
    out[p.n0 * per_image + i] = acc;
}

@compute @workgroup_size(WG)
fn channel_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = index(wid, nwg, lid);
    if (i >= p.o * p.pp) {
        return;
    }
    let o = i / p.pp;
    let q = i % p.pp;
    let plane = p.oh * p.ow;
    var v = 0.0;
    if (q < p.images * plane) {
        v = x[((p.n0 + q / plane) * p.o + o) * plane + q % plane];
    }
    out[i] = v;
}

@compute @workgroup_size(WG)
fn pixel_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = index(wid, nwg, lid);
    let plane = p.oh * p.ow;
    if (i >= p.images * plane * p.op) {
        return;
    }
    let q = i / p.op;
    let o = i % p.op;
    var v = 0.0;
    if (o < p.o) {
        v = x[((p.n0 + q / plane) * p.o + o) * plane + q % plane];
    }
    out[i] = v;
}
