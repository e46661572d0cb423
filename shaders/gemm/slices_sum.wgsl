// The second half of a K-split GEMM (see sign_gemm.wgsl): c[i] = the sum of
// the slices' partial sums part[s * len + i] (+ c[i] when accumulate != 0).

struct Params {
    len: u32,
    slices: u32,
    accumulate: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn slices_sum(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i >= p.len) {
        return;
    }
    var v = 0.0;
    for (var s = 0u; s < p.slices; s++) {
        v += part[s * p.len + i];
    }
    if (p.accumulate != 0u) {
        v += c[i];
    }
    c[i] = v;
}
