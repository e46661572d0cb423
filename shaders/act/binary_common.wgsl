// Elementwise maps (x, g) -> out over any shape, as functions of four
// elements: surrogate-gradient backwards (g is the upstream gradient) and the
// sum of two tensors. binary.wgsl runs them one element per lane,
// binary4.wgsl four (sizes that are a multiple of 4), which on a CPU adapter
// is a quarter of the storage accesses.
//
// n: lanes (elements, or vec4s in binary4.wgsl).
// lo, hi: the hardtanh window.

struct Params {
    n: u32,
    lo: f32,
    hi: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

override WG: u32 = 64u;

// Clipped straight-through estimator: g * 1[|x| <= 1].
fn ste_sign_of(x: vec4<f32>, g: vec4<f32>) -> vec4<f32> {
    return select(vec4<f32>(0.0), g, abs(x) <= vec4<f32>(1.0));
}

// Bi-Real ApproxSign: g * max(0, 2 - 2|x|).
fn approx_sign_of(x: vec4<f32>, g: vec4<f32>) -> vec4<f32> {
    return g * max(vec4<f32>(0.0), 2.0 - 2.0 * abs(x));
}

// g * 1[lo <= x <= hi].
fn hardtanh_of(x: vec4<f32>, g: vec4<f32>) -> vec4<f32> {
    return select(vec4<f32>(0.0), g, x >= vec4<f32>(p.lo) & x <= vec4<f32>(p.hi));
}

// x + g.
fn add_of(x: vec4<f32>, g: vec4<f32>) -> vec4<f32> {
    return x + g;
}
