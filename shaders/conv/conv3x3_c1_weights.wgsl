// Weight gradient (see conv3x3_c1_common.wgsl), split over the pixels:
// block b of lanes takes output channels 4b .. 4b + 3 (O % 4 == 0); its lane
// l takes the output row pairs (oy, oy + 1) l, l + L, l + 2L, ... (L =
// lanes_per_block), walks each pair four pixels at a time, and writes its 36
// partial sums; the host sums the L rows (reduce over the first axis). A
// pair's four input strips serve both rows, and the one division per pair
// (not per four pixels) keeps lavapipe's lane-by-lane integer divisions out
// of the inner loop.
//
// dy:      f32 [N, O, OH, OW] seen as vec4 (read).
// partial: f32 [L, O * 9], written here: row l, column co * 9 + ky * 3 + kx.
// count:   row pairs, N * ceil(OH / 2).

@group(0) @binding(2) var<storage, read> dy: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;

// The four channels' gradients for the four pixels, dotted with one tap.
fn taps4(g0: vec4<f32>, g1: vec4<f32>, g2: vec4<f32>, g3: vec4<f32>, t: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(dot(g0, t), dot(g1, t), dot(g2, t), dot(g3, t));
}

@compute @workgroup_size(WG)
fn f32_conv3x3_c1_weights(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q = (wid.x + wid.y * nwg.x) * WG + lid;
    let blocks = p.o / 4u;
    if (q >= blocks * p.lanes_per_block) {
        return;
    }
    let b = q / p.lanes_per_block;
    let l = q - b * p.lanes_per_block;
    let co0 = 4u * b;
    let plane = p.oh * p.ow4;
    let pairs = (p.oh + 1u) / 2u;
    // a[t]: channels co0 .. co0 + 3 of tap t = ky * 3 + kx.
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    var a4 = vec4<f32>(0.0);
    var a5 = vec4<f32>(0.0);
    var a6 = vec4<f32>(0.0);
    var a7 = vec4<f32>(0.0);
    var a8 = vec4<f32>(0.0);
    for (var pr = l; pr < p.count; pr += p.lanes_per_block) {
        let n = pr / pairs;
        let oy = (pr - n * pairs) * 2u;
        let iy = i32(oy) - i32(p.pad);
        // The second row's gradients count where the row exists (zeros, not
        // a product with 0, so no stray value reaches the sums).
        let second = oy + 1u < p.oh;
        let row0 = (n * p.o + co0) * plane + oy * p.ow4;
        let row1 = row0 + select(0u, p.ow4, second);
        for (var x4 = 0u; x4 < p.ow4; x4++) {
            let ox0 = x4 * 4u;
            let s0 = strip(n, iy, ox0);
            let s1 = strip(n, iy + 1, ox0);
            let s2 = strip(n, iy + 2, ox0);
            let s3 = strip(n, iy + 3, ox0);
            let at = row0 + x4;
            let g0 = dy[at];
            let g1 = dy[at + plane];
            let g2 = dy[at + 2u * plane];
            let g3 = dy[at + 3u * plane];
            let bt = row1 + x4;
            let h0 = select(vec4<f32>(0.0), dy[bt], second);
            let h1 = select(vec4<f32>(0.0), dy[bt + plane], second);
            let h2 = select(vec4<f32>(0.0), dy[bt + 2u * plane], second);
            let h3 = select(vec4<f32>(0.0), dy[bt + 3u * plane], second);
            a0 += taps4(g0, g1, g2, g3, s0.t0) + taps4(h0, h1, h2, h3, s1.t0);
            a1 += taps4(g0, g1, g2, g3, s0.t1) + taps4(h0, h1, h2, h3, s1.t1);
            a2 += taps4(g0, g1, g2, g3, s0.t2) + taps4(h0, h1, h2, h3, s1.t2);
            a3 += taps4(g0, g1, g2, g3, s1.t0) + taps4(h0, h1, h2, h3, s2.t0);
            a4 += taps4(g0, g1, g2, g3, s1.t1) + taps4(h0, h1, h2, h3, s2.t1);
            a5 += taps4(g0, g1, g2, g3, s1.t2) + taps4(h0, h1, h2, h3, s2.t2);
            a6 += taps4(g0, g1, g2, g3, s2.t0) + taps4(h0, h1, h2, h3, s3.t0);
            a7 += taps4(g0, g1, g2, g3, s2.t1) + taps4(h0, h1, h2, h3, s3.t1);
            a8 += taps4(g0, g1, g2, g3, s2.t2) + taps4(h0, h1, h2, h3, s3.t2);
        }
    }
    let row = l * p.o * 9u;
    for (var c = 0u; c < 4u; c++) {
        let o = row + (co0 + c) * 9u;
        partial[o] = a0[c];
        partial[o + 1u] = a1[c];
        partial[o + 2u] = a2[c];
        partial[o + 3u] = a3[c];
        partial[o + 4u] = a4[c];
        partial[o + 5u] = a5[c];
        partial[o + 6u] = a6[c];
        partial[o + 7u] = a7[c];
        partial[o + 8u] = a8[c];
    }
}
