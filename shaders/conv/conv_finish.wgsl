// Finishes a binary convolution computed as an XNOR GEMM on im2col_words
// (taps outside the image read as +1 there):
//   y[n, o, s] = scale[o] * (y[n, o, s] - terms[o, s])
// with terms from conv_pad_terms.wgsl. y holds exact integers before (the
// GEMM runs without a scale), so the result equals the direct kernel's bit
// for bit.
//
// terms: i32 [O, OH * OW].
// scale: f32 [O], read when has_scale != 0.
// y:     f32 [N, O, OH, OW], updated in place.

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
    has_scale: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> terms: array<i32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn conv_finish(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    let plane = p.oh * p.ow;
    if (i >= p.n * p.o * plane) {
        return;
    }
    // Integer division is scalar on a CPU adapter: two per element.
    let os = i % (p.o * plane);
    var v = y[i] - f32(terms[os]);
    if (p.has_scale != 0u) {
        v *= scale[os / plane];
    }
    y[i] = v;
}
