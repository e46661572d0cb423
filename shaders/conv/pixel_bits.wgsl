// Appended to im2col_common.wgsl: the signs of a chunk's input packed along
// its pixels, one row per channel, for im2col_bits_shifted.wgsl.
//
// x:      f32 [N, C, H, W] (+-1 values) seen as vec4; H * W % 4 == 0.
// stream: u32 [C, pp / 32], written here: bit b of word w of row c is set
//         where x[n, c, iy, ix] >= 0 for chunk pixel q = 32 w + b
//         (q = (n - n0) * H*W + iy * W + ix); 0 past the chunk.

@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> stream: array<u32>;

@compute @workgroup_size(WG)
fn pixel_bits(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = index(wid, nwg, lid);
    let words = p.pp / 32u;
    if (i >= p.c * words) {
        return;
    }
    let c = i / words;
    let q0 = (i - c * words) * 32u;
    let plane = p.h * p.w;
    let pixels = p.images * plane;
    var word = 0u;
    // Four pixels per load: a plane holds whole vec4s, so none straddles
    // images. One division for the first pixel's (image, offset), then
    // steps: lavapipe runs integer divisions lane by lane.
    var img = q0 / plane;
    var off = q0 - img * plane;
    for (var j = 0u; j < 8u; j++) {
        let q = q0 + 4u * j;
        if (q < pixels) {
            let v = x[(((p.n0 + img) * p.c + c) * plane + off) / 4u];
            let b = vec4<u32>(v >= vec4<f32>(0.0)) << vec4<u32>(0u, 1u, 2u, 3u);
            word |= (b.x | b.y | b.z | b.w) << (4u * j);
        }
        off += 4u;
        let next_image = off == plane;
        off = select(off, 0u, next_image);
        img += select(0u, 1u, next_image);
    }
    stream[i] = word;
}
