// Appended to adam_common.wgsl: one element per lane.
//
// grad:       f32 [n] (read): the gradient.
// skip:       u32 [1] (read): when skip[0] != 0 nothing is written (a device-side
//             veto, e.g. set by check_finite on a non-finite gradient).
// param:      f32 [n], updated in place.
// exp_avg:    f32 [n], updated in place: the first moment m (zeros before step 1).
// exp_avg_sq: f32 [n], updated in place: the second moment v (zeros before step 1).

@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read> skip: array<u32>;
@group(0) @binding(3) var<storage, read_write> param: array<f32>;
@group(0) @binding(4) var<storage, read_write> exp_avg: array<f32>;
@group(0) @binding(5) var<storage, read_write> exp_avg_sq: array<f32>;

@compute @workgroup_size(WG)
fn adam(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = (wid.x + wid.y * nwg.x) * WG + lid;
    if (skip[0] != 0u || idx >= p.n) {
        return;
    }
    let r = adam_update(
        vec4<f32>(param[idx]),
        vec4<f32>(grad[idx]),
        vec4<f32>(exp_avg[idx]),
        vec4<f32>(exp_avg_sq[idx]),
    );
    exp_avg[idx] = r.m.x;
    exp_avg_sq[idx] = r.v.x;
    param[idx] = r.w.x;
}
