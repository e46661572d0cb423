// What the 2x2 pooling kernels share (prepended to each pooling module):
// the geometry parameters. planes = N * C; ho = h / 2, wo = w / 2 (floor).

struct Params {
    planes: u32,
    h: u32,
    w: u32,
    ho: u32,
    wo: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

override WG: u32 = 64u;

// Output o's window: the offset of its input plane and the index of its
// top-left element within that plane.
fn window_of(o: u32) -> vec2<u32> {
    let plane_out = p.ho * p.wo;
    let plane = o / plane_out;
    let rem = o - plane * plane_out;
    let oh = rem / p.wo;
    let ow = rem - oh * p.wo;
    return vec2<u32>(plane * p.h * p.w, 2u * oh * p.w + 2u * ow);
}

// The maximum of a 2x2 window and its index: rows (top.x, top.y) and
// (bottom.x, bottom.y), `first` the index of top.x in the input plane and w
// the plane's width; ties go to the first in row-major order (strict >), as
// PyTorch does.
fn window_max(top: vec2<f32>, bottom: vec2<f32>, first: u32) -> vec2<u32> {
    var best = top.x;
    var arg = first;
    if (top.y > best) {
        best = top.y;
        arg = first + 1u;
    }
    if (bottom.x > best) {
        best = bottom.x;
        arg = first + p.w;
    }
    if (bottom.y > best) {
        best = bottom.y;
        arg = first + p.w + 1u;
    }
    return vec2<u32>(bitcast<u32>(best), arg);
}
