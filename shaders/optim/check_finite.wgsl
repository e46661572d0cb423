// Appended to check_finite_common.wgsl: one element per lane.

@group(0) @binding(1) var<storage, read> x: array<u32>;

@compute @workgroup_size(WG)
fn check_finite(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = (wid.x + wid.y * nwg.x) * WG + lid;
    if (idx >= p.n) {
        return;
    }
    if ((x[idx] & EXPONENT) == EXPONENT) {
        atomicOr(&flag[0], p.tag);
    }
}
