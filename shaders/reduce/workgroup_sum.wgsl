// Prepended to the modules whose workgroups sum across their lanes (batch
// norm's statistics and backward, ReCU's): one workgroup tree, over pairs.
// The module declares WG, a power of two at most MAX_WG.

const MAX_WG: u32 = 256u;
var<workgroup> partial: array<vec2<f32>, MAX_WG>;

// The workgroup's sum of v, in every lane.
fn workgroup_sum2(lid: u32, v: vec2<f32>) -> vec2<f32> {
    partial[lid] = v;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    // The next call overwrites partial: every lane must have read the total first.
    workgroupBarrier();
    return total;
}

fn workgroup_sum(lid: u32, v: f32) -> f32 {
    return workgroup_sum2(lid, vec2<f32>(v, 0.0)).x;
}
