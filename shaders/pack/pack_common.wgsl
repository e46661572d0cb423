// What the packing kernels share (prepended to pack_signs.wgsl and
// pack_signs4.wgsl): the view [outer, k, inner] of x (rows = outer * inner,
// kw = ceil(k / 32) words a row) and the output layout.

struct Params {
    rows: u32,
    k: u32,
    kw: u32,
    inner: u32,
    word_major: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

override WG: u32 = 64u;
// Bit 1 means x >= THRESH (0: the sign; 0.5: {0, 1} values).
override THRESH: f32 = 0.0;
