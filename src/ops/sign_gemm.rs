//! f32 x packed signs GEMM: the backward of a binary layer multiplies by
//! its weights' signs (input gradient) or its inputs' signs (weight
//! gradient); reading them as bits takes that operand's loads out of the
//! GEMM's loop.

use crate::gpu::{Gpu, GpuError, Kernel};
use crate::kernel;
use crate::tensor::{DType, Tensor};

use super::gemm::{Layouts, relayout};
use super::pack::{BitLayout, PackedBits};
use super::split_k::Split;
use super::unused;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
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
    col_channels: u32,
    slices: u32,
    slice_len: u32,
    _pad: [u32; 2],
}

const SIGN_GEMM: Layouts<Kernel> = Layouts {
    strided: kernel!(
        ["gemm/sign_gemm_common.wgsl", "gemm/sign_gemm.wgsl"],
        "sign_gemm",
        [Read, Read, Read, ReadWrite]
    ),
    strided_s: kernel!(
        [
            "gemm/sign_gemm_common.wgsl",
            "gemm/sign_gemm.wgsl",
            "gemm/sign_gemm_s.wgsl"
        ],
        "sign_gemm_s",
        [Read, Read, Read, ReadWrite]
    ),
    side: kernel!(
        ["gemm/sign_gemm_common.wgsl", "gemm/sign_gemm_c.wgsl"],
        "sign_gemm_c",
        [Read, Read, Read, ReadWrite]
    ),
    side_s: kernel!(
        [
            "gemm/sign_gemm_common.wgsl",
            "gemm/sign_gemm_c.wgsl",
            "gemm/sign_gemm_sc.wgsl"
        ],
        "sign_gemm_sc",
        [Read, Read, Read, ReadWrite]
    ),
};
const WG: u32 = 64;

/// `c[m, n] = sum_k a[m, k] kscale[k] s[n, k]` with `s` the signs packed
/// in `bits` (row-major `[n, kw]`, +1 where a bit is set): `a` is `x` seen
/// through strides `[s_r, s_k]` as `[m, bits.k]`.
pub fn sign_gemm(
    gpu: &Gpu,
    x: &Tensor,
    strides: [usize; 3],
    bits: &PackedBits,
    kscale: Option<&Tensor>,
) -> Result<Tensor, GpuError> {
    let c = Tensor::empty(gpu, &[strides[0], bits.rows], DType::F32)?;
    let scale = kscale.map(SignScale::K);
    sign_gemm_into(gpu, x, strides, bits, scale, &c, false)?;
    Ok(c)
}

/// `c[m, n] = nscale[n] sum_k a[m, k] s[n, k]`: the forward of a binary
/// layer on a real input, `x (alpha * sign(W))^T` with W's signs in `bits`
/// (one row per output) and `alpha` as `nscale`. Strides as [`sign_gemm`].
pub fn sign_gemm_scaled_columns(
    gpu: &Gpu,
    x: &Tensor,
    strides: [usize; 3],
    bits: &PackedBits,
    nscale: &Tensor,
) -> Result<Tensor, GpuError> {
    let c = Tensor::empty(gpu, &[strides[0], bits.rows], DType::F32)?;
    sign_gemm_into(gpu, x, strides, bits, Some(SignScale::N(nscale)), &c, false)?;
    Ok(c)
}

/// What scales a sign GEMM: `K(t)` each k step (`t` is `[k]`), `N(t)` each
/// output column (`t` is `[n]`).
#[derive(Clone, Copy)]
pub enum SignScale<'a> {
    K(&'a Tensor),
    N(&'a Tensor),
}

/// [`sign_gemm`] (scaled as `scale` says) into `c` `[m, n]`, added to what
/// `c` holds when `accumulate`. On a GPU a long K with few tiles runs split
/// ([`super::split_k`]).
pub fn sign_gemm_into(
    gpu: &Gpu,
    x: &Tensor,
    strides: [usize; 3],
    bits: &PackedBits,
    scale: Option<SignScale>,
    c: &Tensor,
    accumulate: bool,
) -> Result<(), GpuError> {
    launch(gpu, x, strides, bits, scale, c, accumulate, 0)
}

/// [`sign_gemm`] for a convolution's data gradient: the columns (rows of
/// `bits`) are in im2col order, `n = ch * taps + t`, and are written
/// tap-major, column n at `t * (n / taps) + ch`, so that a pixel's four
/// neighbouring channels of one tap lie together for col2im.
pub fn sign_gemm_tap_major(
    gpu: &Gpu,
    x: &Tensor,
    strides: [usize; 3],
    bits: &PackedBits,
    kscale: Option<&Tensor>,
    taps: usize,
) -> Result<Tensor, GpuError> {
    assert!(
        taps > 0 && bits.rows.is_multiple_of(taps),
        "sign_gemm_tap_major: {} columns are not channels x {taps} taps",
        bits.rows
    );
    let c = Tensor::empty(gpu, &[strides[0], bits.rows], DType::F32)?;
    let scale = kscale.map(SignScale::K);
    launch(gpu, x, strides, bits, scale, &c, false, taps as u32)?;
    Ok(c)
}

#[allow(clippy::too_many_arguments)]
fn launch(
    gpu: &Gpu,
    x: &Tensor,
    [m, s_r, s_k]: [usize; 3],
    bits: &PackedBits,
    scale: Option<SignScale>,
    c: &Tensor,
    accumulate: bool,
    col_taps: u32,
) -> Result<(), GpuError> {
    assert_eq!(
        bits.layout,
        BitLayout::RowMajor,
        "sign_gemm: bits must be row-major"
    );
    let (n, k, kw) = (bits.rows, bits.k, bits.kw());
    assert_eq!(c.numel(), m * n, "sign_gemm: c {c:?} for [{m}, {n}]");
    let (kscale, nscale) = match scale {
        Some(SignScale::K(s)) => {
            assert_eq!(s.numel(), k, "sign_gemm: kscale {s:?} for k = {k}");
            (Some(s), None)
        }
        Some(SignScale::N(s)) => {
            assert_eq!(s.numel(), n, "sign_gemm: nscale {s:?} for n = {n}");
            (None, Some(s))
        }
        None => (None, None),
    };
    // Rows zero-padded to whole words, so padding bits multiply 0.
    let kp = kw * 32;
    let a = if s_r == kp && s_k == 1 {
        x.clone()
    } else {
        relayout(gpu, x, m, k, kp, s_r, s_k)?
    };
    let wg = super::column_lanes(gpu, n, WG);
    let gx = n.div_ceil(4 * wg as usize) as u32;
    let groups = gx as u64 * m.div_ceil(8) as u64;
    // A K split writes plain partial sums; the column scale and the
    // tap-major order stay on the unsplit path. 16 words = 512 k steps at
    // least per slice.
    let plain = nscale.is_none() && col_taps == 0;
    let split = Split::plan(gpu, plain, groups, kw, 16, [m, n])?;
    let params = Params {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        kw: kw as u32,
        a_k4: (kp / 4) as u32,
        has_kscale: kscale.is_some() as u32,
        groups_x: gx,
        groups: groups as u32,
        accumulate: (accumulate && !split.is_split()) as u32,
        has_nscale: nscale.is_some() as u32,
        col_taps,
        col_channels: (n as u32).checked_div(col_taps).unwrap_or(0),
        slices: split.slices as u32,
        slice_len: split.len as u32,
        _pad: [0; 2],
    };
    // As the f32 GEMM: on a CPU adapter a lane's four columns side by side
    // store one vec4 a row, where the columns are in plain order.
    let side_by_side = col_taps == 0 && super::gemm::side_by_side_columns(gpu, n, n, 0);
    let kernel = SIGN_GEMM.pick(gpu, true, side_by_side);
    gpu.launch(
        kernel,
        &[("WG", wg as f64)],
        &params,
        &[
            a.binding(),
            bits.words.binding(),
            kscale.or(nscale).map_or(unused(&a), |t| t.binding()),
            split.target(c).binding(),
        ],
        gpu.grid(split.groups()),
    );
    split.finish(gpu, c, accumulate)
}

/// CPU reference of [`sign_gemm`]: `a` row-major `[m, k]`, `s` the sign
/// matrix `[n, k]` as ±1 values, f64 sums.
pub fn sign_gemm_cpu(
    a: &[f32],
    s: &[f32],
    kscale: Option<&[f32]>,
    [m, n, k]: [usize; 3],
) -> Vec<f32> {
    let mut c = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let sum: f64 = (0..k)
                .map(|t| {
                    let sign = if s[j * k + t] >= 0.0 { 1.0 } else { -1.0 };
                    a[i * k + t] as f64 * kscale.map_or(1.0, |ks| ks[t] as f64) * sign
                })
                .sum();
            c[i * n + j] = sum as f32;
        }
    }
    c
}
