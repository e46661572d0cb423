// Appended to relayout_common.wgsl: one output a lane.

@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn relayout(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i >= p.total) {
        return;
    }
    let block = p.rows_pad * p.kc;
    let r = (i % block) / p.kc;
    let k = (i / block) * p.kc + i % p.kc;
    var v = 0.0;
    if (r < p.rows && k < p.cols) {
        v = x[r * p.s_r + k * p.s_k];
    }
    out[i] = v;
}
