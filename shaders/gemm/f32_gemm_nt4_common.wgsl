// f32 GEMM over K-contiguous operands read as vec4: c = a * b^T. What
// f32_gemm_nt4.wgsl and f32_gemm_nt4c.wgsl (their c and stores) share.
//
// One launch sums k steps [k0, k0 + kc4) (in vec4s) of rows [0, m) of a
// (global rows m_base.. of the product) against all n columns:
// a:     vec4<f32> [m, a_k4]: row r of this launch's part of op(A) (a_k4 >= kc4)
//        (f32_gemm_nt4u reads it from the uniform window `ua` instead)
// b:     vec4<f32> [n, k4]: column n of op(B), zero-padded to 4 * k4
// scale: f32 [n], read when has_scale != 0
// bias:  f32 [n], read when has_bias != 0
// c:     f32; c = (a . b) * scale[n] + bias[n] (+ c if accumulate), element
//        (m, n) of the product at c_offset + (n / plane) * m_total * plane +
//        m * plane + n % plane: plane = n gives row-major [m, n]; plane = H*W
//        with n = image * H*W + pixel gives NCHW, so a convolution's GEMM
//        writes its output in place.
//
// One vec4 load brings four k steps, so a CPU adapter (where each load is
// the expensive part) does four times the multiply-adds per load of the
// scalar kernels. The workgroup shares 8 rows of a (16 in
// f32_gemm_nt4sc, the CPU form: b's loads, paid lane by lane, then serve
// twice the rows); each lane holds 4
// columns: lane l's column j is n0 + l + j * WG in f32_gemm_nt4.wgsl's
// kernels, n0 + 4 l + j in f32_gemm_nt4c.wgsl's (which store one vec4 a
// row where c's layout allows: a CPU adapter stores lane by lane, so four
// scalar stores cost about four times one vec4). The rows of a are the
// same for every lane: lavapipe walks a storage-buffer load lane by lane
// but loads uniform memory with one gather, so f32_gemm_nt4u, which reads
// them from a 64 KiB uniform window, spends far less on them.

struct Params {
    m: u32,
    n: u32,
    k4: u32,
    has_scale: u32,
    has_bias: u32,
    accumulate: u32,
    groups_x: u32,
    groups: u32,
    plane: u32,
    c_offset: u32,
    kc4: u32,
    k0: u32,
    m_base: u32,
    m_total: u32,
    a_k4: u32,
    // K split (f32_gemm_nt4 and _nt4s; see sign_gemm.wgsl): slice s of
    // `slices` sums vec4 steps [s * slice_len, (s + 1) * slice_len) of
    // [0, kc4) and stores at s * m_total * n past the plain row-major place
    // (plane = n, c_offset 0, no scale, bias or accumulate), and
    // slices_sum.wgsl adds the slices. slices = 1, slice_len = kc4: none.
    slices: u32,
    slice_len: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> scale: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<uniform> ua: array<vec4<f32>, 4096>;

override WG: u32 = 64u;

// This invocation's K slice (0 without a split).
var<private> slice_index: u32;
