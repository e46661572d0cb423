// The parameters of the binary convolution kernels (prepended to
// binary_conv2d.wgsl and conv_finish4.wgsl; see binary_conv2d.wgsl).

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
