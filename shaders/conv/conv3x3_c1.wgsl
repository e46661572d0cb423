// Forward (see conv3x3_c1_common.wgsl): each lane writes four pixels of two
// output rows (oy, oy + 1) for every output channel, from four input strips
// loaded once; the stores, one vec4 per row and channel, are most of the
// cost.
//
// w: f32 [O, 12] seen as vec4 [O, 3]: each channel's nine taps (ky * 3 + kx)
//    then three zeros.
// y: f32 [N, O, OH, OW] seen as vec4, written here.
// count: lanes, N * ceil(OH / 2) * OW4.

@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn f32_conv3x3_c1_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q = (wid.x + wid.y * nwg.x) * WG + lid;
    if (q >= p.count) {
        return;
    }
    let pairs = (p.oh + 1u) / 2u;
    let per_image = pairs * p.ow4;
    let n = q / per_image;
    let r = q - n * per_image;
    let oy = (r / p.ow4) * 2u;
    let ox0 = (r % p.ow4) * 4u;
    let iy = i32(oy) - i32(p.pad);
    let s0 = strip(n, iy, ox0);
    let s1 = strip(n, iy + 1, ox0);
    let s2 = strip(n, iy + 2, ox0);
    let s3 = strip(n, iy + 3, ox0);
    let second = oy + 1u < p.oh;
    let plane = p.oh * p.ow4;
    var at = n * p.o * plane + oy * p.ow4 + ox0 / 4u;
    for (var co = 0u; co < p.o; co++) {
        let a = w[co * 3u];
        let b = w[co * 3u + 1u];
        let c = w[co * 3u + 2u];
        y[at] = a.x * s0.t0 + a.y * s0.t1 + a.z * s0.t2
            + a.w * s1.t0 + b.x * s1.t1 + b.y * s1.t2
            + b.z * s2.t0 + b.w * s2.t1 + c.x * s2.t2;
        if (second) {
            y[at + p.ow4] = a.x * s1.t0 + a.y * s1.t1 + a.z * s1.t2
                + a.w * s2.t0 + b.x * s2.t1 + b.y * s2.t2
                + b.z * s3.t0 + b.w * s3.t1 + c.x * s3.t2;
        }
        at += plane;
    }
}
