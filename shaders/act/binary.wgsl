// Appended to binary_common.wgsl: one element per lane.
//
// x:   f32 [n] (the forward input; add: the first operand).
// g:   f32 [n] (the upstream gradient; add: the second operand).
// out: f32 [n], written here.

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn ste_sign_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i >= p.n) {
        return;
    }
    out[i] = ste_sign_of(vec4<f32>(x[i]), vec4<f32>(g[i])).x;
}

@compute @workgroup_size(WG)
fn approx_sign_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i >= p.n) {
        return;
    }
    out[i] = approx_sign_of(vec4<f32>(x[i]), vec4<f32>(g[i])).x;
}

@compute @workgroup_size(WG)
fn hardtanh_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i >= p.n) {
        return;
    }
    out[i] = hardtanh_of(vec4<f32>(x[i]), vec4<f32>(g[i])).x;
}

@compute @workgroup_size(WG)
fn add(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i >= p.n) {
        return;
    }
    out[i] = add_of(vec4<f32>(x[i]), vec4<f32>(g[i])).x;
}
