// Appended to adam_common.wgsl: four elements per lane, for tensors whose
// size n is a multiple of 4 (p.n counts vec4s here). Bindings as adam.wgsl,
// seen as vec4.

@group(0) @binding(1) var<storage, read> grad: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> skip: array<u32>;
@group(0) @binding(3) var<storage, read_write> param: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> exp_avg: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> exp_avg_sq: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn adam4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = (wid.x + wid.y * nwg.x) * WG + lid;
    if (skip[0] != 0u || idx >= p.n) {
        return;
    }
    let r = adam_update(param[idx], grad[idx], exp_avg[idx], exp_avg_sq[idx]);
    exp_avg[idx] = r.m;
    exp_avg_sq[idx] = r.v;
    param[idx] = r.w;
}
