// XNOR-popcount GEMM over packed sign bits. This file holds what the
// kernels of xnor_gemm.wgsl and xnor_gemm_c.wgsl share.
//
// a:     u32 [m, kw] row-major: row m's k sign bits, 32 per word (bit 1 = +1),
//        padding bits 0.
// b:     u32 [n, kw] row-major (xnor_gemm_rows, xnor_gemm_tiled) or
//        [kw, n] word-major (xnor_gemm_cols); padding bits 0.
// scale: f32 [n] per-output-column scale, read only when has_scale != 0.
// c:     f32 [m, n] = scale[n] * (k - 2 * popcount(a[m] xor b[n])), or with
//        plane != 0 the same values as [n / plane, m, plane].
//
// With the override AND_A = 1, a holds {0, 1} values (bit 1 = 1) and b
// {-1, +1} signs, whose dot product is not the XNOR identity:
// c = scale[n] * (2 * popcount(a[m] and b[n]) - popcount(a[m])). The terms
// are accumulated in u32 modulo 2^32 and read back as i32, which is exact.
// Padding bits are 0 in a, so they add nothing to either popcount.
//
// xnor_gemm_cols_r{4,8,16}: each invocation holds R rows x 4 columns in vec4
// registers; the workgroup shares its R rows (uniform loads of a) and spreads
// columns over lanes, column j of lane l being n0 + l + j * WG so
// neighbouring lanes read neighbouring words of a word-major b.
// xnor_gemm_cols_c_r{4,8,16} (xnor_gemm_c.wgsl, for CPU adapters, n a
// multiple of 4): column j of lane l is n0 + 4 l + j, so a lane loads its
// four words of b as one vec4 and stores one vec4 a row; lavapipe runs a
// lane-varying load or store lane by lane, whatever its width. No workgroup
// memory: barriers are expensive on CPU adapters. xnor_gemm_tiled stages
// 64 x 64 output tiles through workgroup memory, which suits real GPUs.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    kw: u32,
    has_scale: u32,
    groups_x: u32,
    groups: u32,
    // Nonzero: c is written as [n / plane, m, plane] (a convolution's
    // [N, O, OH*OW] with the pixels as columns) instead of [m, n], from
    // element out_offset on.
    plane: u32,
    out_offset: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<u32>;
@group(0) @binding(3) var<storage, read> scale: array<f32>;

override WG: u32 = 64u;
override AND_A: u32 = 0u;

// One word pair's share of the accumulator (see the header).
fn term(aw: u32, bw: u32) -> u32 {
    if (AND_A != 0u) {
        return 2u * countOneBits(aw & bw) - countOneBits(aw);
    }
    return countOneBits(aw ^ bw);
}

fn term4(aw: u32, bw: vec4<u32>) -> vec4<u32> {
    if (AND_A != 0u) {
        return 2u * countOneBits(vec4<u32>(aw) & bw) - vec4<u32>(countOneBits(aw));
    }
    return countOneBits(vec4<u32>(aw) ^ bw);
}
