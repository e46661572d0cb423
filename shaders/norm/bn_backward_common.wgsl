// Prepended to the batch-norm backward modules (bn_backward.wgsl,
// bn_backward_reduce4.wgsl, bn_backward_dx4.wgsl): their Params, the
// workgroup size and the per-channel tree of bn_backward_reduce*. Each
// module declares the other bindings (f32 or vec4) itself; see
// bn_backward.wgsl for what they hold.

struct Params {
    n: u32,
    c: u32,
    s: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// For the reductions a power of two, at most MAX_WG.
override WG: u32 = 64u;
const MAX_WG: u32 = 256u;
var<workgroup> partial: array<vec2<f32>, MAX_WG>;

// The workgroup's sum of v, valid in lane 0.
fn workgroup_sum2(lid: u32, v: vec2<f32>) -> vec2<f32> {
    partial[lid] = v;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    return partial[0];
}
