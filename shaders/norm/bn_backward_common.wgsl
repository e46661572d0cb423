// Prepended to the batch-norm backward modules (bn_backward.wgsl,
// bn_backward_reduce4.wgsl, bn_backward_dx4.wgsl): their Params, the
// workgroup size of bn_backward_reduce* (their tree: reduce/workgroup_sum.wgsl). Each
// module declares the other bindings (f32 or vec4) itself; see
// bn_backward.wgsl for what they hold.

struct Params {
    n: u32,
    c: u32,
    s: u32,
    // Non-zero: g is first multiplied by the clipped straight-through
    // estimator's 1[|z| <= 1] of a sign that followed this batch norm
    // (z = gamma * (x - mean) * invstd + beta, recomputed here in
    // bn_apply's order), which then needs no pass of its own; beta is read
    // from the gamma binding's second half, [C, 2C).
    ste_clip: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// For the reductions a power of two, at most MAX_WG (reduce/workgroup_sum.wgsl).
override WG: u32 = 64u;

// gi masked by the clipped STE's 1[|z| <= 1] where p.ste_clip != 0, z
// recomputed from xi in bn_apply's order; else gi.
fn clip4(gi: vec4<f32>, xi: vec4<f32>, ga: vec4<f32>, be: vec4<f32>, m: vec4<f32>, is: vec4<f32>) -> vec4<f32> {
    if (p.ste_clip == 0u) {
        return gi;
    }
    let z = ga * (xi - m) * is + be;
    return select(vec4<f32>(0.0), gi, abs(z) <= vec4<f32>(1.0));
}
