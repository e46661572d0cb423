// Appended to check_finite_common.wgsl: four elements per lane (p.n counts
// vec4s here).

@group(0) @binding(1) var<storage, read> x: array<vec4<u32>>;

@compute @workgroup_size(WG)
fn check_finite4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = (wid.x + wid.y * nwg.x) * WG + lid;
    if (idx >= p.n) {
        return;
    }
    if (any((x[idx] & vec4<u32>(EXPONENT)) == vec4<u32>(EXPONENT))) {
        atomicOr(&flag[0], p.tag);
    }
}
