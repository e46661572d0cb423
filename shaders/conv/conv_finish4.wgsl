// binary_conv2d.wgsl's conv_finish four elements per lane, for planes of
// whole vec4s (OH * OW % 4 == 0): out = (out - terms) * scale, the same
// arithmetic on a quarter of the storage accesses. Params and bindings as
// binary_conv2d.wgsl (x and wt unused here).

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
    cw: u32,
    pad_one: u32,
    has_scale: u32,
    groups_x: u32,
    groups: u32,
    pixels: u32,
    // Valid channel bits of the last word (all ones when C % 32 == 0).
    last_mask: u32,
    x_row: u32,
    x_word: u32,
    w_row: u32,
    w_word: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> scale: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> terms: array<vec4<i32>>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn conv_finish4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q = (wid.x + wid.y * nwg.x) * WG + lid;
    let plane4 = p.oh * p.ow / 4u;
    if (q >= p.n * p.o * plane4) {
        return;
    }
    let os = q % (p.o * plane4);
    var v = out[q] - vec4<f32>(terms[os]);
    if (p.has_scale != 0u) {
        v *= scale[os / plane4];
    }
    out[q] = v;
}
