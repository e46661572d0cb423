// Elementwise maps x -> y over any shape, as functions of four elements;
// unary.wgsl runs them one element per lane, unary4.wgsl four (tensors whose
// size is a multiple of 4): a CPU adapter executes a storage access lane by
// lane, so vec4 loads and stores are a quarter of the accesses.
//
// n: lanes (elements, or vec4s in unary4.wgsl).
// a, b: per-entry scalars: clamp bounds (a = lo, b = hi), the step01
// threshold (a), the scale (a).

struct Params {
    n: u32,
    a: f32,
    b: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

override WG: u32 = 64u;

// sign(x) = +1 if x >= 0 else -1 (never 0).
fn sign_of(v: vec4<f32>) -> vec4<f32> {
    return select(vec4<f32>(-1.0), vec4<f32>(1.0), v >= vec4<f32>(0.0));
}

// min(max(x, a), b): hardtanh and clamp.
fn clamp_of(v: vec4<f32>) -> vec4<f32> {
    return min(max(v, vec4<f32>(p.a)), vec4<f32>(p.b));
}

// 0.5 * 1[x >= 0.25] + 0.5 * 1[x >= 0.75]: values {0, 0.5, 1}.
fn ternary_of(v: vec4<f32>) -> vec4<f32> {
    let half = vec4<f32>(0.5);
    let zero = vec4<f32>(0.0);
    return select(zero, half, v >= vec4<f32>(0.25)) + select(zero, half, v >= vec4<f32>(0.75));
}

// 1[x >= a]: values {0, 1}.
fn step01_of(v: vec4<f32>) -> vec4<f32> {
    return select(vec4<f32>(0.0), vec4<f32>(1.0), v >= vec4<f32>(p.a));
}

// a * x.
fn scale_of(v: vec4<f32>) -> vec4<f32> {
    return p.a * v;
}
