// Strided copy into zero-padded row-major blocks: transposes and pads GEMM
// operands into the K-contiguous layout the vec4 kernels read. Shared by
// relayout.wgsl (one output a lane) and relayout4.wgsl (four).
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

override WG: u32 = 64u;
