// Strided copy into a zero-padded row-major matrix: transposes and pads
// GEMM operands into the K-contiguous layout the vec4 kernel reads.
//
// x:   f32, element (r, k) at x[r * s_r + k * s_k]
// out: f32 [rows, kp]; out[r, k] = x(r, k) for k < cols, 0 for cols <= k < kp.

struct Params {
    rows: u32,
    cols: u32,
    kp: u32,
    s_r: u32,
    s_k: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn relayout(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i >= p.rows * p.kp) {
        return;
    }
    let r = i / p.kp;
    let k = i % p.kp;
    var v = 0.0;
    if (k < p.cols) {
        v = x[r * p.s_r + k * p.s_k];
    }
    out[i] = v;
}
