// Appended to im2col_common.wgsl: im2col.wgsl's col2im for a column
// gradient in tap-major order (sign_gemm with col_taps), four channels per
// lane: for C % 4 == 0 each tap's four channels are one vec4, so a lane
// makes one load per tap where col2im makes four. The sums run in col2im's
// order, so the results are the same.
//
// x:   colgrad [P, T * C] seen as vec4, column t * C + c (read).
// out: dx [N, C, H, W], images n0.. (every element written).

@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn col2im4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = index(wid, nwg, lid);
    let hw = p.h * p.w;
    let c4 = p.c / 4u;
    let per_image = c4 * hw;
    if (i >= p.images * per_image) {
        return;
    }
    let nl = i / per_image;
    let r = i % per_image;
    let cq = r / hw;
    let iy = (r / p.w) % p.h;
    let ix = r % p.w;
    // As col2im: the output pixels whose taps read (iy, ix).
    let ty = i32(iy + p.pad);
    let tx = i32(ix + p.pad);
    let s = i32(p.stride);
    let oy_lo = u32(max(ty - i32(p.kh) + s, 0)) / p.stride;
    let oy_end = min(u32(ty) / p.stride + 1u, p.oh);
    let ox_lo = u32(max(tx - i32(p.kw) + s, 0)) / p.stride;
    let ox_end = min(u32(tx) / p.stride + 1u, p.ow);
    let k4 = p.k / 4u;
    var acc = vec4<f32>(0.0);
    for (var oy = oy_lo; oy < oy_end; oy++) {
        let ky = u32(ty) - oy * p.stride;
        let row = (nl * p.oh + oy) * p.ow;
        for (var ox = ox_lo; ox < ox_end; ox++) {
            let kx = u32(tx) - ox * p.stride;
            acc += x[(row + ox) * k4 + (ky * p.kw + kx) * c4 + cq];
        }
    }
    let at = (p.n0 + nl) * p.c * hw + 4u * cq * hw + iy * p.w + ix;
    out[at] = acc.x;
    out[at + hw] = acc.y;
    out[at + 2u * hw] = acc.z;
    out[at + 3u * hw] = acc.w;
}
