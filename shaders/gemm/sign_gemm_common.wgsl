// f32 x signs GEMM: c[m, n] = sum over k of a[m, k] * kscale[k] * s[n, k],
// s = +1 where bit k of row n of `bits` is set, else -1 (the pack_signs
// convention). The backward of a binary layer multiplies by its weights'
// signs (input gradient) or its inputs' signs (weight gradient): reading
// them packed, one word per 32 k steps, takes the loads of that operand
// out of the loop, which is what bounds the f32 GEMM on a CPU adapter.
//
// a:      vec4<f32> [m, a_k4], zero from k up to kw * 32 (so a padding bit's
//         -1 multiplies 0); a_k4 >= kw * 8
// bits:   u32 [n, kw] row-major
// kscale: f32 [k], read when has_kscale != 0: a binary layer's alpha, which
//         scales its weights' signs along k; or f32 [n], read when
//         has_nscale != 0 (never both): the alpha of a binary layer whose
//         forward this is (signs are its weights, one row per output), which
//         scales the columns of c
// c:      f32 [m, n] row-major; added to when accumulate != 0. With
//         col_taps = T != 0 the columns are n = ch * T + t (a convolution's
//         im2col order) and column n is stored at t * (n / T) + ch instead:
//         tap-major, so a channel's neighbours lie together (col2im4.wgsl
//         reads them four at a time).
//
// Each lane holds 8 rows x 4 columns, as the nt4 kernels do: column j is
// n0 + lid + j * WG in sign_gemm.wgsl's kernels, n0 + 4 lid + j in
// sign_gemm_c.wgsl's, which store one vec4 a row (CPU adapters, where
// stores go lane by lane; plain column order and n a multiple of 4).
// This file holds what both share.
//
// K split (GPUs: a weight gradient's K is every pixel of the batch while its
// m x n makes a few dozen tiles, too few to fill the device): the grid is
// `slices` copies of the `groups` tiles, copy s sums words
// [s * slice_len, (s + 1) * slice_len) and writes c rows s * m ..
// (c is then [slices * m, n], accumulate, has_nscale and col_taps 0), and
// slices_sum.wgsl adds the slices. slices = 1, slice_len = kw: no split.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    kw: u32,
    a_k4: u32,
    has_kscale: u32,
    groups_x: u32,
    groups: u32,
    accumulate: u32,
    has_nscale: u32,
    col_taps: u32,
    // n / col_taps
    col_channels: u32,
    slices: u32,
    // words per slice
    slice_len: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bits: array<u32>;
@group(0) @binding(3) var<storage, read> kscale: array<f32>;

override WG: u32 = 64u;

// This invocation's K slice (0 without a split).
var<private> slice_index: u32;

// kscale[k0 .. k0 + 4] (1 without a scale); past k, a is 0 and any finite
// value does.
fn kscale4(k0: u32) -> vec4<f32> {
    if (p.has_kscale == 0u) {
        return vec4<f32>(1.0);
    }
    let last = p.k - 1u;
    return vec4<f32>(
        kscale[min(k0, last)],
        kscale[min(k0 + 1u, last)],
        kscale[min(k0 + 2u, last)],
        kscale[min(k0 + 3u, last)],
    );
}

// Bit `b` of each column's word as +1 (set) / -1 (clear), made in the
// float's bits from the inverted words `nw`: three integer ops a value where
// a convert and a multiply-add took four.
fn col_signs4(nw: vec4<u32>, b: u32) -> vec4<f32> {
    return bitcast<vec4<f32>>(((nw << vec4<u32>(31u - b)) & vec4<u32>(0x80000000u)) | vec4<u32>(0x3f800000u));
}
