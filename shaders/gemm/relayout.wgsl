// Strided copy into zero-padded row-major blocks: transposes and pads GEMM
// operands into the K-contiguous layout the vec4 kernels read.
//
// x:   f32, element (r, k) at x[r * s_r + k * s_k]
// out: f32 [total / (rows_pad * kc), rows_pad, kc]: block j, row r, column
//      kk holds x(r, j * kc + kk), or 0 where r >= rows or j * kc + kk >= cols.
//      One block with kc = kp is the plain [rows, kp] layout.

struct Params {
    rows: u32,
    cols: u32,
    s_r: u32,
    s_k: u32,
    rows_pad: u32,
    kc: u32,
    total: u32,
    _pad: u32,
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

// Four outputs per lane, one vec4 store (kc and total multiples of 4, so
// the four lie in one row of one block): the index arithmetic, two
// divisions, is paid once per four elements, and the store is a vec4.
@group(0) @binding(2) var<storage, read_write> out4: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn relayout4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i >= p.total / 4u) {
        return;
    }
    let e = i * 4u;
    let block = p.rows_pad * p.kc;
    let j = e / block;
    let rem = e - j * block;
    let r = rem / p.kc;
    let k = j * p.kc + (rem - r * p.kc);
    var v = vec4<f32>(0.0);
    if (r < p.rows) {
        let at = r * p.s_r + k * p.s_k;
        if (k < p.cols) { v.x = x[at]; }
        if (k + 1u < p.cols) { v.y = x[at + p.s_k]; }
        if (k + 2u < p.cols) { v.z = x[at + 2u * p.s_k]; }
        if (k + 3u < p.cols) { v.w = x[at + 3u * p.s_k]; }
    }
    out4[i] = v;
}
