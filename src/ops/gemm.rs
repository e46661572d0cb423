//! GEMMs: XNOR-popcount over packed bits, and f32 with transposed variants.

use crate::gpu::{Gpu, GpuError, Kernel};
use crate::kernel;
use crate::tensor::{DType, Tensor};

use super::pack::{BitLayout, PackedBits};
use super::unused;

/// How a GEMM kernel is launched: which entry point and its block sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum GemmVariant {
    /// 64 x 64 output tiles through workgroup memory, 256 lanes.
    Tiled,
    /// XNOR only: `rm` rows x 4 columns held in vec4 registers (`rm` in 4, 8,
    /// 16), `wg` lanes, word-major `b`.
    Vec4 { wg: u32, rm: u32 },
    /// XNOR only: [`GemmVariant::Vec4`] where each lane of a subgroup loads
    /// one word of a row of `a` and subgroup broadcasts share them (adapters
    /// with subgroups of at least 8 lanes; elsewhere it runs as vec4).
    Vec4s { wg: u32, rm: u32 },
    /// f32 only: both operands relaid out K-contiguous (padded to a multiple
    /// of 4) and read as vec4, 8 rows x 4 columns per lane, `wg` lanes.
    Nt4 { wg: u32 },
    /// f32 only: [`GemmVariant::Nt4`] reading the rows of `a` (the same for
    /// every lane) from 64 KiB uniform windows, one launch per window.
    Nt4u { wg: u32 },
    /// f32 only: [`GemmVariant::Nt4`] where each lane of a subgroup loads
    /// one vec4 of a row of `a` and subgroup broadcasts share them (adapters
    /// with subgroups of at least 8 lanes; elsewhere it runs as nt4).
    Nt4s { wg: u32 },
}

impl GemmVariant {
    pub fn name(&self) -> String {
        match self {
            GemmVariant::Tiled => "tiled64".to_string(),
            GemmVariant::Vec4 { wg, rm } => format!("vec4r{rm}/wg{wg}"),
            GemmVariant::Vec4s { wg, rm } => format!("vec4sr{rm}/wg{wg}"),
            GemmVariant::Nt4 { wg } => format!("nt4/wg{wg}"),
            GemmVariant::Nt4u { wg } => format!("nt4u/wg{wg}"),
            GemmVariant::Nt4s { wg } => format!("nt4s/wg{wg}"),
        }
    }

    /// The default for an adapter: CPU adapters pay dearly for barriers.
    pub fn default_for(gpu: &Gpu) -> GemmVariant {
        if gpu.is_cpu() {
            GemmVariant::Vec4 { wg: 64, rm: 8 }
        } else {
            GemmVariant::Tiled
        }
    }

    /// Candidates an autotune tries.
    pub fn candidates() -> Vec<GemmVariant> {
        let mut v = vec![GemmVariant::Tiled];
        for rm in [4, 8, 16] {
            for wg in [32, 64] {
                v.push(GemmVariant::Vec4 { wg, rm });
                v.push(GemmVariant::Vec4s { wg, rm });
            }
        }
        v
    }

    /// False for a subgroup variant on an adapter without subgroups, where
    /// it would run as its plain twin: the autotune need not time it again.
    pub fn runs_as_itself(&self, gpu: &Gpu) -> bool {
        match self {
            GemmVariant::Vec4s { .. } | GemmVariant::Nt4s { .. } => gpu.has_subgroups(8),
            _ => true,
        }
    }

    /// The packed layout of `b` the XNOR kernel of this variant reads.
    pub fn b_layout(&self) -> BitLayout {
        match self {
            GemmVariant::Vec4 { .. } | GemmVariant::Vec4s { .. } => BitLayout::WordMajor,
            _ => BitLayout::RowMajor,
        }
    }

    fn grid(&self, m: usize, n: usize) -> (u32, u32) {
        match *self {
            GemmVariant::Tiled => (n.div_ceil(64) as u32, m.div_ceil(64) as u32),
            GemmVariant::Vec4 { wg, rm } | GemmVariant::Vec4s { wg, rm } => (
                n.div_ceil(4 * wg as usize) as u32,
                m.div_ceil(rm as usize) as u32,
            ),
            GemmVariant::Nt4 { .. } | GemmVariant::Nt4u { .. } | GemmVariant::Nt4s { .. } => {
                unreachable!("nt4_launch sizes the nt4 grids (block rows differ by layout)")
            }
        }
    }

    fn constants(&self) -> Vec<(&'static str, f64)> {
        match *self {
            GemmVariant::Tiled => vec![],
            GemmVariant::Vec4 { wg, .. }
            | GemmVariant::Vec4s { wg, .. }
            | GemmVariant::Nt4 { wg }
            | GemmVariant::Nt4u { wg }
            | GemmVariant::Nt4s { wg } => vec![("WG", wg as f64)],
        }
    }
}

/// Uniform parameters of the XNOR GEMM kernels (and of the bench's
/// variants of them).
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct XnorParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub kw: u32,
    pub has_scale: u32,
    pub groups_x: u32,
    pub groups: u32,
    /// Nonzero: write `c` as `[n / plane, m, plane]` from element
    /// `out_offset` on (see xnor_gemm.wgsl).
    pub plane: u32,
    pub out_offset: u32,
    pub _pad: [u32; 3],
}

/// The vec4 XNOR kernels of 4, 8 and 16 rows in the module of `files`,
/// entry points `PREFIX_r4`, `_r8` and `_r16`.
macro_rules! xnor_rows {
    ([$($file:literal),+], $prefix:literal) => {
        [
            kernel!([$($file),+], concat!($prefix, "_r4"), [Read, Read, Read, ReadWrite]),
            kernel!([$($file),+], concat!($prefix, "_r8"), [Read, Read, Read, ReadWrite]),
            kernel!([$($file),+], concat!($prefix, "_r16"), [Read, Read, Read, ReadWrite]),
        ]
    };
}

/// One register-blocked GEMM kernel in its four forms: a lane's four
/// columns WG apart or side by side ([`side_by_side_columns`]), each plain
/// or sharing a's loads by subgroup broadcast (`_s`).
pub(crate) struct Layouts<T> {
    pub strided: T,
    pub strided_s: T,
    pub side: T,
    pub side_s: T,
}

impl<T> Layouts<T> {
    /// The form for `side_by_side`, sharing a's loads where `subgroups` asks
    /// for it and the adapter has subgroups.
    pub(crate) fn pick(&self, gpu: &Gpu, subgroups: bool, side_by_side: bool) -> &T {
        match (subgroups && gpu.has_subgroups(8), side_by_side) {
            (false, false) => &self.strided,
            (true, false) => &self.strided_s,
            (false, true) => &self.side,
            (true, true) => &self.side_s,
        }
    }
}

const XNOR_VEC4: Layouts<[Kernel; 3]> = Layouts {
    strided: xnor_rows!(
        ["gemm/xnor_gemm_common.wgsl", "gemm/xnor_gemm.wgsl"],
        "xnor_gemm_cols"
    ),
    strided_s: xnor_rows!(
        [
            "gemm/xnor_gemm_common.wgsl",
            "gemm/xnor_gemm.wgsl",
            "gemm/xnor_gemm_s.wgsl"
        ],
        "xnor_gemm_cols_s"
    ),
    side: xnor_rows!(
        ["gemm/xnor_gemm_common.wgsl", "gemm/xnor_gemm_c.wgsl"],
        "xnor_gemm_cols_c"
    ),
    side_s: xnor_rows!(
        [
            "gemm/xnor_gemm_common.wgsl",
            "gemm/xnor_gemm_c.wgsl",
            "gemm/xnor_gemm_sc.wgsl"
        ],
        "xnor_gemm_cols_sc"
    ),
};
fn vec4_kernel(family: &'static [Kernel; 3], rm: u32) -> &'static Kernel {
    match rm {
        4 => &family[0],
        8 => &family[1],
        16 => &family[2],
        _ => panic!("no vec4 GEMM kernel with {rm} rows (4, 8 or 16)"),
    }
}
/// The vec4 XNOR kernel of `rm` rows; with `subgroups`, the one sharing
/// a's words by subgroup broadcast where the adapter has subgroups; with
/// `side_by_side`, columns side by side (see [`side_by_side_columns`]).
fn xnor_vec4_kernel(gpu: &Gpu, rm: u32, subgroups: bool, side_by_side: bool) -> &'static Kernel {
    vec4_kernel(XNOR_VEC4.pick(gpu, subgroups, side_by_side), rm)
}

/// Whether a vec4 GEMM kernel gives each lane four neighbouring columns
/// (one vec4 load of a word-major operand, one vec4 store a row) rather
/// than four WG apart: on CPU adapters, which run a lane-varying load or
/// store lane by lane whatever its width (the XNOR GEMM 1.4-2.1x faster
/// on lavapipe), where `n` and the output's plane and offset keep each
/// four together and 16-byte aligned.
pub(crate) fn side_by_side_columns(gpu: &Gpu, n: usize, plane: usize, offset: usize) -> bool {
    gpu.cpu_forms() && [n, plane, offset].iter().all(|v| v.is_multiple_of(4))
}

const XNOR_TILED: Kernel = kernel!(
    ["gemm/xnor_gemm_common.wgsl", "gemm/xnor_gemm.wgsl"],
    "xnor_gemm_tiled",
    [Read, Read, Read, ReadWrite]
);

/// XNOR-popcount GEMM: `c[m, n] = scale[n] * (k - 2 * popcount(a[m] xor b[n]))`,
/// the dot product of two {-1, +1} vectors of length k.
/// `a` must be row-major; `b` row-major for the tiled variant, word-major for vec4
/// (see [`GemmVariant::b_layout`]).
pub fn xnor_gemm(
    gpu: &Gpu,
    a: &PackedBits,
    b: &PackedBits,
    scale: Option<&Tensor>,
    variant: GemmVariant,
) -> Result<Tensor, GpuError> {
    packed_gemm(gpu, a, b, scale, variant, false)
}

/// The {0, 1} x {-1, +1} GEMM on the same kernels as [`xnor_gemm`]:
/// `a` packs {0, 1} values (bit 1 = 1, e.g. [`super::pack::pack_bits`] at
/// threshold 0.5), `b` packs signs (bit 1 = +1), and
/// `c[m, n] = scale[n] * (2 * popcount(a[m] and b[n]) - popcount(a[m]))`,
/// the dot product of a {0, 1} row with a {-1, +1} row. Layouts as
/// [`xnor_gemm`].
pub fn and_gemm(
    gpu: &Gpu,
    a: &PackedBits,
    b: &PackedBits,
    scale: Option<&Tensor>,
    variant: GemmVariant,
) -> Result<Tensor, GpuError> {
    packed_gemm(gpu, a, b, scale, variant, true)
}

/// [`xnor_gemm`] or, with `and_a`, [`and_gemm`] (the kernels' `AND_A` override).
fn packed_gemm(
    gpu: &Gpu,
    a: &PackedBits,
    b: &PackedBits,
    scale: Option<&Tensor>,
    variant: GemmVariant,
    and_a: bool,
) -> Result<Tensor, GpuError> {
    assert_eq!(a.k, b.k, "xnor_gemm: a has k = {}, b has k = {}", a.k, b.k);
    assert_eq!(
        a.layout,
        BitLayout::RowMajor,
        "xnor_gemm: a must be row-major"
    );
    let (m, n) = (a.rows, b.rows);
    if let Some(s) = scale {
        assert_eq!(
            s.numel(),
            n,
            "xnor_gemm: scale {s:?} must have {n} elements"
        );
    }
    let kernel = match (variant, b.layout) {
        (GemmVariant::Tiled, BitLayout::RowMajor) => &XNOR_TILED,
        (GemmVariant::Tiled, BitLayout::WordMajor) => {
            panic!("xnor_gemm: the tiled variant needs row-major b")
        }
        (GemmVariant::Vec4 { rm, .. }, BitLayout::WordMajor) => {
            xnor_vec4_kernel(gpu, rm, false, side_by_side_columns(gpu, n, 0, 0))
        }
        (GemmVariant::Vec4s { rm, .. }, BitLayout::WordMajor) => {
            xnor_vec4_kernel(gpu, rm, true, side_by_side_columns(gpu, n, 0, 0))
        }
        (GemmVariant::Nt4 { .. } | GemmVariant::Nt4u { .. } | GemmVariant::Nt4s { .. }, _) => {
            panic!("xnor_gemm has no nt4 variant")
        }
        (GemmVariant::Vec4 { .. } | GemmVariant::Vec4s { .. }, BitLayout::RowMajor) => {
            panic!("xnor_gemm: the vec4 variant needs word-major b")
        }
    };
    let c = Tensor::empty(gpu, &[m, n], DType::F32)?;
    let (gx, gy) = variant.grid(m, n);
    let groups = gx as u64 * gy as u64;
    let params = XnorParams {
        m: m as u32,
        n: n as u32,
        k: a.k as u32,
        kw: a.kw() as u32,
        has_scale: scale.is_some() as u32,
        groups_x: gx,
        groups: groups as u32,
        ..Default::default()
    };
    let scale_binding = scale.map(|s| s.binding()).unwrap_or(unused(&a.words));
    let mut constants = variant.constants();
    if and_a {
        constants.push(("AND_A", 1.0));
    }
    gpu.launch(
        kernel,
        &constants,
        &params,
        &[
            a.words.binding(),
            b.words.binding(),
            scale_binding,
            c.binding(),
        ],
        gpu.grid(groups),
    );
    Ok(c)
}

/// The XNOR GEMM of a binary convolution, unscaled: `a` holds the
/// weights' sign words row-major `[m, kw]` (m output channels), `b` the
/// input's im2col words word-major `[kw, n]` (n output pixels), `k` the
/// signs per row (padding bits 0 in both); `c[m, n] = k - 2 * popcount(a[m]
/// xor b[n])` is written into `out` as `[n / plane, m, plane]` from element
/// `out_offset` on, i.e. straight into NCHW.
#[allow(clippy::too_many_arguments)]
pub(crate) fn xnor_gemm_nchw(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    [m, n, kw, k]: [usize; 4],
    plane: usize,
    out: &Tensor,
    out_offset: usize,
) -> Result<(), GpuError> {
    assert!(
        a.numel() >= m * kw && b.numel() >= kw * n && k <= kw * 32 && plane > 0,
        "xnor_gemm_nchw: a {a:?} b {b:?} for m {m} n {n} kw {kw} k {k}"
    );
    assert!(
        out.numel() >= out_offset + m * n,
        "xnor_gemm_nchw: out {out:?} too small"
    );
    // The vec4 kernels read word-major b; the tiled one (real GPUs) does not.
    let variant = match super::tune::gemm_variant(gpu, super::tune::GemmFamily::Xnor)? {
        v @ (GemmVariant::Vec4 { .. } | GemmVariant::Vec4s { .. }) => v,
        _ => GemmVariant::Vec4 { wg: 64, rm: 8 },
    };
    let side_by_side = side_by_side_columns(gpu, n, plane, out_offset);
    let kernel = match variant {
        GemmVariant::Vec4 { rm, .. } => xnor_vec4_kernel(gpu, rm, false, side_by_side),
        GemmVariant::Vec4s { rm, .. } => xnor_vec4_kernel(gpu, rm, true, side_by_side),
        _ => unreachable!("chosen above"),
    };
    let (gx, gy) = variant.grid(m, n);
    let groups = gx as u64 * gy as u64;
    let params = XnorParams {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        kw: kw as u32,
        has_scale: 0,
        groups_x: gx,
        groups: groups as u32,
        plane: plane as u32,
        out_offset: out_offset as u32,
        _pad: [0; 3],
    };
    gpu.launch(
        kernel,
        &variant.constants(),
        &params,
        &[a.binding(), b.binding(), unused(a), out.binding()],
        gpu.grid(groups),
    );
    Ok(())
}

/// CPU reference of [`xnor_gemm`] on row-major packed words.
pub fn xnor_gemm_cpu(
    a: &[u32],
    b: &[u32],
    m: usize,
    n: usize,
    k: usize,
    scale: Option<&[f32]>,
) -> Vec<f32> {
    let kw = k.div_ceil(32);
    let mut c = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let pop: u32 = (0..kw)
                .map(|w| (a[i * kw + w] ^ b[j * kw + w]).count_ones())
                .sum();
            let v = k as i32 - 2 * pop as i32;
            c[i * n + j] = v as f32 * scale.map_or(1.0, |s| s[j]);
        }
    }
    c
}

/// CPU reference of [`and_gemm`] on row-major packed words: `a` holds
/// {0, 1} bits, `b` sign bits.
pub fn and_gemm_cpu(
    a: &[u32],
    b: &[u32],
    m: usize,
    n: usize,
    k: usize,
    scale: Option<&[f32]>,
) -> Vec<f32> {
    let kw = k.div_ceil(32);
    let mut c = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let (mut both, mut ones) = (0i32, 0i32);
            for w in 0..kw {
                both += (a[i * kw + w] & b[j * kw + w]).count_ones() as i32;
                ones += a[i * kw + w].count_ones() as i32;
            }
            c[i * n + j] = (2 * both - ones) as f32 * scale.map_or(1.0, |s| s[j]);
        }
    }
    c
}

/// Multi-threaded CPU XNOR GEMM on u64 words (the benchmark's CPU side):
/// `a` is `[m, kw64]`, `b` is `[n, kw64]`, returns the integer dot products.
pub fn xnor_gemm_cpu_u64(a: &[u64], b: &[u64], m: usize, n: usize, k: usize) -> Vec<i32> {
    let kw = k.div_ceil(64);
    let mut c = vec![0i32; m * n];
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let rows_per = m.div_ceil(threads).max(1);
    std::thread::scope(|s| {
        for (t, chunk) in c.chunks_mut(rows_per * n).enumerate() {
            s.spawn(move || {
                let i0 = t * rows_per;
                for (di, row) in chunk.chunks_mut(n).enumerate() {
                    let ar = &a[(i0 + di) * kw..(i0 + di + 1) * kw];
                    for (j, out) in row.iter_mut().enumerate() {
                        let br = &b[j * kw..(j + 1) * kw];
                        *out = k as i32 - 2 * popcount_xor(ar, br) as i32;
                    }
                }
            });
        }
    });
    c
}

/// popcount(a xor b) over equal-length word slices, with the CPU's vector
/// popcount where it has one.
pub fn popcount_xor(a: &[u64], b: &[u64]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512vpopcntdq")
            && std::is_x86_feature_detected!("avx512f")
        {
            // SAFETY: the features were detected at run time.
            return unsafe { popcount_xor_avx512(a, b) };
        }
        if std::is_x86_feature_detected!("popcnt") {
            // SAFETY: the feature was detected at run time.
            return unsafe { popcount_xor_popcnt(a, b) };
        }
    }
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vpopcntdq")]
unsafe fn popcount_xor_avx512(a: &[u64], b: &[u64]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
unsafe fn popcount_xor_popcnt(a: &[u64], b: &[u64]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

/// Row-major u32 packed words to u64 words (two u32 words per u64, little-endian).
pub fn words_to_u64(words: &[u32], rows: usize, k: usize) -> Vec<u64> {
    let kw32 = k.div_ceil(32);
    let kw64 = k.div_ceil(64);
    let mut out = vec![0u64; rows * kw64];
    for r in 0..rows {
        for j in 0..kw32 {
            out[r * kw64 + j / 2] |= (words[r * kw32 + j] as u64) << (32 * (j % 2));
        }
    }
    out
}

/// How an f32 GEMM operand is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trans {
    /// As stored.
    N,
    /// Transposed.
    T,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct F32Params {
    m: u32,
    n: u32,
    k: u32,
    a_sm: u32,
    a_sk: u32,
    b_sk: u32,
    b_sn: u32,
    has_scale: u32,
    has_bias: u32,
    accumulate: u32,
    groups_x: u32,
    groups: u32,
}

const F32_TILED: Kernel = kernel!(
    "gemm/f32_gemm.wgsl",
    "f32_gemm_tiled",
    [Read, Read, Read, Read, ReadWrite]
);

/// Optional epilogue of an f32 GEMM: `c = acc * scale[n] + bias[n] (+ c)`.
#[derive(Clone, Copy, Default)]
pub struct Epilogue<'a> {
    pub scale: Option<&'a Tensor>,
    pub bias: Option<&'a Tensor>,
    /// Add into `out` instead of overwriting it.
    pub accumulate: bool,
}

/// `op(a) * op(b)` for 2-D tensors, `op` chosen by `ta` / `tb`; writes `out`
/// (`[m, n]`) or a new tensor.
#[allow(clippy::too_many_arguments)]
pub fn f32_gemm(
    gpu: &Gpu,
    a: &Tensor,
    ta: Trans,
    b: &Tensor,
    tb: Trans,
    epilogue: Epilogue,
    out: Option<&Tensor>,
    variant: GemmVariant,
) -> Result<Tensor, GpuError> {
    let (ar, ac) = (a.shape()[0], a.shape()[1]);
    let (br, bc) = (b.shape()[0], b.shape()[1]);
    let (m, k, a_sm, a_sk) = match ta {
        Trans::N => (ar, ac, ac, 1),
        Trans::T => (ac, ar, 1, ac),
    };
    let (kb, n, b_sk, b_sn) = match tb {
        Trans::N => (br, bc, bc, 1),
        Trans::T => (bc, br, 1, bc),
    };
    assert_eq!(
        k,
        kb,
        "f32_gemm: inner dimensions differ ({:?} {ta:?} x {:?} {tb:?})",
        a.shape(),
        b.shape()
    );
    let c = match out {
        Some(o) => {
            assert_eq!(
                o.shape(),
                [m, n],
                "f32_gemm: out is {:?}, product is [{m}, {n}]",
                o.shape()
            );
            o.clone()
        }
        None => {
            assert!(
                !epilogue.accumulate,
                "f32_gemm: accumulate needs an out tensor"
            );
            Tensor::empty(gpu, &[m, n], DType::F32)?
        }
    };
    let (kernel, (gx, gy)) = match variant {
        GemmVariant::Tiled => (&F32_TILED, variant.grid(m, n)),
        GemmVariant::Vec4 { .. } | GemmVariant::Vec4s { .. } => {
            panic!("f32_gemm has no vec4 variant: use nt4")
        }
        GemmVariant::Nt4 { .. } | GemmVariant::Nt4u { .. } | GemmVariant::Nt4s { .. } => {
            return f32_gemm_nt4(gpu, a, ta, b, tb, epilogue, c, variant, [m, n, k]);
        }
    };
    let groups = gx as u64 * gy as u64;
    let params = F32Params {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        a_sm: a_sm as u32,
        a_sk: a_sk as u32,
        b_sk: b_sk as u32,
        b_sn: b_sn as u32,
        has_scale: epilogue.scale.is_some() as u32,
        has_bias: epilogue.bias.is_some() as u32,
        accumulate: epilogue.accumulate as u32,
        groups_x: gx,
        groups: groups as u32,
    };
    gpu.launch(
        kernel,
        &variant.constants(),
        &params,
        &[
            a.binding(),
            b.binding(),
            epilogue.scale.map_or(unused(a), |s| s.binding()),
            epilogue.bias.map_or(unused(a), |s| s.binding()),
            c.binding(),
        ],
        gpu.grid(groups),
    );
    Ok(c)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Nt4Params {
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
    slices: u32,
    slice_len: u32,
    _pad: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct RelayoutParams {
    rows: u32,
    cols: u32,
    s_r: u32,
    s_k: u32,
    rows_pad: u32,
    kc: u32,
    total: u32,
    _pad: u32,
}

const F32_NT4: Layouts<Kernel> = Layouts {
    strided: kernel!(
        ["gemm/f32_gemm_nt4_common.wgsl", "gemm/f32_gemm_nt4.wgsl"],
        "f32_gemm_nt4",
        [Read, Read, Read, Read, ReadWrite]
    ),
    strided_s: kernel!(
        [
            "gemm/f32_gemm_nt4_common.wgsl",
            "gemm/f32_gemm_nt4.wgsl",
            "gemm/f32_gemm_nt4s.wgsl"
        ],
        "f32_gemm_nt4s",
        [Read, Read, Read, Read, ReadWrite]
    ),
    side: kernel!(
        ["gemm/f32_gemm_nt4_common.wgsl", "gemm/f32_gemm_nt4c.wgsl"],
        "f32_gemm_nt4c",
        [Read, Read, Read, Read, ReadWrite]
    ),
    side_s: kernel!(
        [
            "gemm/f32_gemm_nt4_common.wgsl",
            "gemm/f32_gemm_nt4c.wgsl",
            "gemm/f32_gemm_nt4sc.wgsl"
        ],
        "f32_gemm_nt4sc",
        [Read, Read, Read, Read, ReadWrite]
    ),
};
/// The rows of a register block in each of [`F32_NT4`]'s kernels. The CPU
/// form with subgroups holds 16: each lane's four columns of b are loaded
/// once per 16 rows instead of 8, and b's loads are what a CPU adapter pays
/// for (bmlp's fc1 weight gradient on lavapipe: 37-42 -> 31-33 ms a step).
const F32_NT4_ROWS: Layouts<usize> = Layouts {
    strided: 8,
    strided_s: 8,
    side: 8,
    side_s: 16,
};
/// The rows of `f32_gemm_nt4u`'s register block.
const F32_NT4U_ROWS: usize = 8;
// Binding 1 (the storage `a`) is unused by this entry point: a is `ua`.
const F32_NT4U: Kernel = kernel!(
    ["gemm/f32_gemm_nt4_common.wgsl", "gemm/f32_gemm_nt4.wgsl"],
    "f32_gemm_nt4u",
    [Read, Read, Read, Read, ReadWrite, Uniform]
);
const RELAYOUT: Kernel = kernel!(
    ["gemm/relayout_common.wgsl", "gemm/relayout.wgsl"],
    "relayout",
    [Read, ReadWrite]
);
const RELAYOUT4: Kernel = kernel!(
    ["gemm/relayout_common.wgsl", "gemm/relayout4.wgsl"],
    "relayout4",
    [Read, ReadWrite]
);

/// `x` viewed through strides `(s_r, s_k)` as `[rows, cols]`, copied to a
/// row-major `[rows, kp]` with zero columns past `cols`.
pub fn relayout(
    gpu: &Gpu,
    x: &Tensor,
    rows: usize,
    cols: usize,
    kp: usize,
    s_r: usize,
    s_k: usize,
) -> Result<Tensor, GpuError> {
    relayout_blocked(gpu, x, [rows, cols], [s_r, s_k], rows, kp, 1, 0)
}

/// `x` viewed through strides `[s_r, s_k]` as `[rows, cols]`, copied to
/// `chunks` blocks `[rows_pad, kc]`: block j holds columns `j*kc..(j+1)*kc`,
/// zero past `rows` and `cols`; `slack` unwritten floats follow (room for a
/// fixed-size uniform window that starts near the end).
#[allow(clippy::too_many_arguments)]
fn relayout_blocked(
    gpu: &Gpu,
    x: &Tensor,
    [rows, cols]: [usize; 2],
    [s_r, s_k]: [usize; 2],
    rows_pad: usize,
    kc: usize,
    chunks: usize,
    slack: usize,
) -> Result<Tensor, GpuError> {
    let total = chunks * rows_pad * kc;
    let out = if slack == 0 {
        Tensor::empty(gpu, &[rows_pad, chunks * kc], DType::F32)?
    } else {
        Tensor::empty(gpu, &[total + slack], DType::F32)?
    };
    let params = RelayoutParams {
        rows: rows as u32,
        cols: cols as u32,
        s_r: s_r as u32,
        s_k: s_k as u32,
        rows_pad: rows_pad as u32,
        kc: kc as u32,
        total: total as u32,
        _pad: 0,
    };
    // Blocks of a multiple of 4 columns take four outputs a lane: 2-3x
    // faster on lavapipe (one vec4 store and one index computation).
    let (kernel, lanes) = if kc.is_multiple_of(4) {
        (&RELAYOUT4, total / 4)
    } else {
        (&RELAYOUT, total)
    };
    gpu.launch(
        kernel,
        &[("WG", 64.0)],
        &params,
        &[x.binding(), out.binding()],
        super::groups_for(gpu, lanes, 64),
    );
    Ok(out)
}

/// The [`GemmVariant::Nt4`] path of [`f32_gemm`]: relays out the operands
/// that are not already K-contiguous with K a multiple of 4.
#[allow(clippy::too_many_arguments)]
fn f32_gemm_nt4(
    gpu: &Gpu,
    a: &Tensor,
    ta: Trans,
    b: &Tensor,
    tb: Trans,
    epilogue: Epilogue,
    c: Tensor,
    variant: GemmVariant,
    [m, n, k]: [usize; 3],
) -> Result<Tensor, GpuError> {
    let kp = k.next_multiple_of(4);
    // Row m of op(A) (a strided view; nt4_launch lays it out) and column j
    // of op(B), K-contiguous.
    let a_view = match ta {
        Trans::N => StridedRows {
            x: a,
            cols: k,
            s_r: k,
            s_k: 1,
        },
        Trans::T => StridedRows {
            x: a,
            cols: k,
            s_r: 1,
            s_k: m,
        },
    };
    let b_rows = match (tb, kp == k) {
        (Trans::T, true) => b.clone(),
        (Trans::T, false) => relayout(gpu, b, n, k, kp, k, 1)?,
        (Trans::N, _) => relayout(gpu, b, n, k, kp, 1, n)?,
    };
    let layout = OutLayout {
        plane: n,
        offset: 0,
    };
    nt4_launch(
        gpu,
        a_view,
        &b_rows,
        [m, n, kp],
        epilogue,
        &c,
        layout,
        variant,
    )?;
    Ok(c)
}

/// Where [`nt4_gemm`] writes element (m, n) of its product:
/// `offset + (n / plane) * m_total * plane + m * plane + n % plane`.
#[derive(Clone, Copy, Debug)]
pub struct OutLayout {
    pub plane: usize,
    pub offset: usize,
}

/// `c = a b^T` on operands already K-contiguous and padded: `a` is
/// `[m, kp]`, `b` is `[n, kp]` (kp a multiple of 4), written into `c` at
/// `layout` (see [`OutLayout`]). The building block of the GEMM-based
/// convolutions; `variant` is [`GemmVariant::Nt4`] or [`GemmVariant::Nt4u`].
#[allow(clippy::too_many_arguments)]
pub fn nt4_gemm(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    [m, n, kp]: [usize; 3],
    epilogue: Epilogue,
    c: &Tensor,
    layout: OutLayout,
    variant: GemmVariant,
) -> Result<(), GpuError> {
    assert_eq!(kp % 4, 0, "nt4_gemm: kp = {kp} is not a multiple of 4");
    assert!(
        a.numel() >= m * kp && b.numel() >= n * kp,
        "nt4_gemm: operands {a:?} {b:?} smaller than [{m}, {kp}] and [{n}, {kp}]"
    );
    let a_view = StridedRows {
        x: a,
        cols: kp,
        s_r: kp,
        s_k: 1,
    };
    nt4_launch(gpu, a_view, b, [m, n, kp], epilogue, c, layout, variant)
}

/// The rows of an nt4 GEMM's `a`: `x` seen as `[m, cols]` through strides.
#[derive(Clone, Copy)]
struct StridedRows<'a> {
    x: &'a Tensor,
    cols: usize,
    s_r: usize,
    s_k: usize,
}

/// vec4s in the uniform window `ua` of `f32_gemm_nt4u` (64 KiB).
const WINDOW_VEC4: usize = 4096;

/// How [`GemmVariant::Nt4u`] cuts `a` (`kp4` vec4s per row) into uniform
/// windows: `(kc4, rows)`, the vec4 steps of a K chunk and the rows of a
/// window; `None` where the adapter's uniform bindings cannot hold one.
fn uniform_windows(gpu: &Gpu, kp4: usize) -> Option<(usize, usize)> {
    let limits = &gpu.limits;
    if (limits.max_uniform_buffer_binding_size as usize) < WINDOW_VEC4 * 16 {
        return None;
    }
    let align = limits.min_uniform_buffer_offset_alignment as usize;
    // Short rows: whole rows, as many as fit. Long rows: chunks of 512 k
    // steps, 32 rows a window, summed launch by launch into c.
    let kc4 = if kp4 <= WINDOW_VEC4 / 8 { kp4 } else { 128 };
    let mut rows = WINDOW_VEC4 / kc4 / 8 * 8;
    while rows >= 8 && !(rows * kc4 * 16).is_multiple_of(align) {
        rows -= 8;
    }
    (rows >= 8).then_some((kc4, rows))
}

/// Launches the nt4 kernels of `c = a b^T`: one launch for
/// [`GemmVariant::Nt4`], one per (K chunk, row window) for
/// [`GemmVariant::Nt4u`].
#[allow(clippy::too_many_arguments)]
fn nt4_launch(
    gpu: &Gpu,
    a: StridedRows,
    b: &Tensor,
    [m, n, kp]: [usize; 3],
    epilogue: Epilogue,
    c: &Tensor,
    layout: OutLayout,
    variant: GemmVariant,
) -> Result<(), GpuError> {
    let k4 = kp / 4;
    let wg = match variant {
        GemmVariant::Nt4 { wg } | GemmVariant::Nt4u { wg } | GemmVariant::Nt4s { wg } => wg,
        other => panic!("nt4_launch: {} is not an nt4 variant", other.name()),
    };
    let wg = super::column_lanes(gpu, n, wg);
    // Side by side, a lane stores one vec4 a row instead of four floats:
    // 1.1-2.3x faster on lavapipe for a weight gradient's short K, where
    // stores weigh most.
    let side_by_side = side_by_side_columns(gpu, n, layout.plane, layout.offset);
    let subgroups = matches!(variant, GemmVariant::Nt4s { .. });
    let kernel = F32_NT4.pick(gpu, subgroups, side_by_side);
    let block_rows = *F32_NT4_ROWS.pick(gpu, subgroups, side_by_side);
    let base = |rows: usize, block_rows: usize| {
        let gx = n.div_ceil(4 * wg as usize) as u32;
        let groups = gx as u64 * rows.div_ceil(block_rows) as u64;
        let params = Nt4Params {
            m: rows as u32,
            n: n as u32,
            k4: k4 as u32,
            has_scale: epilogue.scale.is_some() as u32,
            has_bias: epilogue.bias.is_some() as u32,
            accumulate: epilogue.accumulate as u32,
            groups_x: gx,
            groups: groups as u32,
            plane: layout.plane as u32,
            c_offset: layout.offset as u32,
            kc4: k4 as u32,
            k0: 0,
            m_base: 0,
            m_total: m as u32,
            a_k4: k4 as u32,
            slices: 1,
            slice_len: k4 as u32,
            _pad: [0; 3],
        };
        (params, groups)
    };
    let scale = epilogue.scale.map_or(unused(b), |t| t.binding());
    let bias = epilogue.bias.map_or(unused(b), |t| t.binding());
    let windows = match variant {
        GemmVariant::Nt4u { .. } => uniform_windows(gpu, k4),
        _ => None,
    };
    let Some((kc4, rows)) = windows else {
        let a_rows = if a.s_r == kp && a.s_k == 1 {
            a.x.clone()
        } else {
            relayout(gpu, a.x, m, a.cols, kp, a.s_r, a.s_k)?
        };
        let (mut params, groups) = base(m, block_rows);
        // A K split (GPUs, long K with few tiles) writes plain row-major
        // partial sums, so only a plain product takes one; 128 vec4 steps =
        // 512 k steps at least per slice.
        let plain = epilogue.scale.is_none()
            && epilogue.bias.is_none()
            && layout.plane == n
            && layout.offset == 0;
        let split = super::split_k::Split::plan(gpu, plain, groups, k4, 128, [m, n])?;
        if split.is_split() {
            params.accumulate = 0;
            params.slices = split.slices as u32;
            params.slice_len = split.len as u32;
        }
        let bindings = [
            a_rows.binding(),
            b.binding(),
            scale,
            bias,
            split.target(c).binding(),
        ];
        let grid = gpu.grid(split.groups());
        gpu.launch(kernel, &[("WG", wg as f64)], &params, &bindings, grid);
        return split.finish(gpu, c, epilogue.accumulate);
    };
    let chunks = k4.div_ceil(kc4);
    let m_pad = m.next_multiple_of(rows);
    let blocks = relayout_blocked(
        gpu,
        a.x,
        [m, a.cols],
        [a.s_r, a.s_k],
        m_pad,
        kc4 * 4,
        chunks,
        WINDOW_VEC4 * 4,
    )?;
    for j in 0..chunks {
        for r0 in (0..m).step_by(rows) {
            let (mut params, groups) = base(rows.min(m - r0), F32_NT4U_ROWS);
            let grid = gpu.grid(groups);
            params.kc4 = kc4.min(k4 - j * kc4) as u32;
            params.a_k4 = kc4 as u32;
            params.k0 = (j * kc4) as u32;
            params.m_base = r0 as u32;
            // Chunks after the first add to what the first wrote.
            if j > 0 {
                params.has_bias = 0;
                params.accumulate = 1;
            }
            let offset = ((j * m_pad + r0) * kc4 * 16) as u64;
            let window = blocks.window(offset, (WINDOW_VEC4 * 16) as u64);
            let bindings = [b.binding(), b.binding(), scale, bias, c.binding(), window];
            gpu.launch(&F32_NT4U, &[("WG", wg as f64)], &params, &bindings, grid);
        }
    }
    Ok(())
}

/// CPU reference of [`f32_gemm`] (f64 accumulation).
#[allow(clippy::too_many_arguments)]
pub fn f32_gemm_cpu(
    a: &[f32],
    a_shape: [usize; 2],
    ta: Trans,
    b: &[f32],
    b_shape: [usize; 2],
    tb: Trans,
    scale: Option<&[f32]>,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let at = |i: usize, kk: usize| match ta {
        Trans::N => a[i * a_shape[1] + kk],
        Trans::T => a[kk * a_shape[1] + i],
    };
    let bt = |kk: usize, j: usize| match tb {
        Trans::N => b[kk * b_shape[1] + j],
        Trans::T => b[j * b_shape[1] + kk],
    };
    let (m, k) = match ta {
        Trans::N => (a_shape[0], a_shape[1]),
        Trans::T => (a_shape[1], a_shape[0]),
    };
    let n = match tb {
        Trans::N => b_shape[1],
        Trans::T => b_shape[0],
    };
    let mut c = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let s: f64 = (0..k).map(|kk| at(i, kk) as f64 * bt(kk, j) as f64).sum();
            let mut v = s as f32;
            if let Some(sc) = scale {
                v *= sc[j];
            }
            if let Some(bi) = bias {
                v += bi[j];
            }
            c[i * n + j] = v;
        }
    }
    c
}
