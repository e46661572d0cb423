// f32 layout kernels (im2col_common.wgsl holds the parameters and tap geometry):
//
// (im2col itself, four outputs per lane: im2col4.wgsl)
// col2im:       x = colgrad [P, K]      -> out = dx [N, C, H, W], images n0.. (every element written)
// channel_rows: x = g [N, O, OH, OW]    -> out [O, pp]  (zero for p >= P)
// pixel_rows:   x = g [N, O, OH, OW]    -> out [P, op]  (op = O padded to 4, zero past O)

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

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
    // The output pixels whose taps read (iy, ix): oy * stride + ky = iy + pad
    // with 0 <= ky < KH, so oy runs over a range found with two divisions
    // (integer division is scalar on a CPU adapter), and likewise ox.
    let ty = i32(iy + p.pad);
    let tx = i32(ix + p.pad);
    let s = i32(p.stride);
    let oy_lo = u32(max(ty - i32(p.kh) + s, 0)) / p.stride;
    let oy_end = min(u32(ty) / p.stride + 1u, p.oh);
    let ox_lo = u32(max(tx - i32(p.kw) + s, 0)) / p.stride;
    let ox_end = min(u32(tx) / p.stride + 1u, p.ow);
    var acc = 0.0;
    for (var oy = oy_lo; oy < oy_end; oy++) {
        let ky = u32(ty) - oy * p.stride;
        let row = (nl * p.oh + oy) * p.ow;
        for (var ox = ox_lo; ox < ox_end; ox++) {
            let kx = u32(tx) - ox * p.stride;
            acc += x[(row + ox) * p.k + (c * p.kh + ky) * p.kw + kx];
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
