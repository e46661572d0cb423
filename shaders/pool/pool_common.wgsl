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
