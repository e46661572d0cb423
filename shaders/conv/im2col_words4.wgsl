// im2col_words.wgsl four output pixels a lane (the chunk's pixels a
// multiple of 4): the index arithmetic, six divisions, is paid once per
// four words instead of ten divisions a word (a CPU adapter runs an integer
// division lane by lane), and the four words are one vec4 store. Pixels
// step across rows and images as the four go.

@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> out4: array<vec4<u32>>;

@compute @workgroup_size(WG)
fn im2col_words4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i4 = index(wid, nwg, lid);
    let plane = p.oh * p.ow;
    let quads = p.images * plane / 4u;
    if (i4 >= p.kh * p.kw * p.cw * quads) {
        return;
    }
    let r = i4 / quads;
    let q0 = (i4 - r * quads) * 4u;
    let t = r / p.cw;
    let j = r - t * p.cw;
    let ky = t / p.kw;
    let kx = t - ky * p.kw;
    var at = pixel_at(q0);
    var words = vec4<u32>(select(0xffffffffu, p.last_mask, j + 1u == p.cw));
    for (var e = 0u; e < 4u; e++) {
        let iy = i32(at.y * p.stride + ky) - i32(p.pad);
        let ix = i32(at.z * p.stride + kx) - i32(p.pad);
        if (iy >= 0 && ix >= 0 && iy < i32(p.h) && ix < i32(p.w)) {
            words[e] = x[((at.x * p.h + u32(iy)) * p.w + u32(ix)) * p.cw + j];
        }
        at = next_pixel(at);
    }
    out4[i4] = words;
}
