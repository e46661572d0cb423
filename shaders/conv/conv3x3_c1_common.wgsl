// Prepended to conv3x3_c1.wgsl and conv3x3_c1_weights.wgsl: a 3x3
// convolution, stride 1, of a one-channel input (a network's first layer on
// grayscale images), computed directly. As im2col + GEMM its K is 9: the
// GEMM's tiles are mostly idle, and the weight gradient (M = O, N = 9,
// K = all pixels) uses 9 of each 256 columns. Here each lane covers four
// neighbouring output pixels of a row (OW % 4 == 0), so the nine taps are
// nine vec4s built from one 6-wide strip per input row.
//
// x: f32 [N, 1, H, W] (read), zero outside (the padding).

struct Params {
    n: u32,
    o: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow4: u32,
    pad: u32,
    // forward: lanes; weights: row pairs (N * ceil(OH / 2))
    count: u32,
    // weights: lanes per block of four output channels
    lanes_per_block: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;

override WG: u32 = 64u;

// x[n, 0, iy, ix], 0 outside the image (a clamped load and a select, no branch).
fn pixel(n: u32, iy: i32, ix: i32) -> f32 {
    let inside = iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w);
    let cy = u32(clamp(iy, 0, i32(p.h) - 1));
    let cx = u32(clamp(ix, 0, i32(p.w) - 1));
    return select(0.0, x[(n * p.h + cy) * p.w + cx], inside);
}

// The six input pixels under output pixels ox0 .. ox0 + 3 of input row iy,
// as the three vec4s of taps kx = 0, 1, 2.
struct Strip {
    t0: vec4<f32>,
    t1: vec4<f32>,
    t2: vec4<f32>,
}

fn strip(n: u32, iy: i32, ox0: u32) -> Strip {
    let bx = i32(ox0) - i32(p.pad);
    let r0 = pixel(n, iy, bx);
    let r1 = pixel(n, iy, bx + 1);
    let r2 = pixel(n, iy, bx + 2);
    let r3 = pixel(n, iy, bx + 3);
    let r4 = pixel(n, iy, bx + 4);
    let r5 = pixel(n, iy, bx + 5);
    return Strip(vec4<f32>(r0, r1, r2, r3), vec4<f32>(r1, r2, r3, r4), vec4<f32>(r2, r3, r4, r5));
}
