//! Convolutions as GEMMs: im2col layouts plus the vec4 GEMM
//! ([`nt4_gemm`]), in chunks of images so no operand passes the storage
//! binding limit. On CPU adapters these run several times faster than the
//! direct kernels in [`super::conv`], which remain the references on the
//! device and the choice where they win.

use crate::gpu::{Gpu, GpuError, Kernel};
use crate::kernel;
use crate::tensor::{DType, Tensor};

use super::conv::Conv2dGeom;
use super::gemm::{Epilogue, GemmVariant, OutLayout, nt4_gemm, relayout, xnor_gemm_nchw};
use super::pack::{BitLayout, PackedBits, last_word_mask, pack_signs};
use super::sign_gemm::{sign_gemm, sign_gemm_into, sign_gemm_tap_major};
use super::tune::GemmFamily;
use super::{RUN, WG_RUN, groups_for};

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct LayoutParams {
    images: u32,
    n0: u32,
    c: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad: u32,
    k: u32,
    kp: u32,
    pp: u32,
    o: u32,
    op: u32,
    cw: u32,
    last_mask: u32,
    _pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SignConvDataParams {
    m: u32,
    n: u32,
    kw: u32,
    o4: u32,
    words_per_tap: u32,
    h: u32,
    w: u32,
    pad: u32,
    kwidth: u32,
    groups_x: u32,
    groups: u32,
    dx_offset: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SignConvPackParams {
    o: u32,
    c: u32,
    taps: u32,
    kw: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PadCorrectParams {
    o: u32,
    k: u32,
    taps: u32,
    _pad: u32,
}

/// A layout kernel: the shared parameters and tap geometry, then `$file`.
macro_rules! layout_kernel {
    ($file:literal, $entry:literal) => {
        kernel!(
            ["conv/im2col_common.wgsl", $file],
            $entry,
            [Read, ReadWrite]
        )
    };
}

const IM2COL_ROWS: Kernel = layout_kernel!("conv/im2col4.wgsl", "im2col_rows4");
const IM2COL_COLS: Kernel = layout_kernel!("conv/im2col4.wgsl", "im2col_cols4");
const COL2IM: Kernel = layout_kernel!("conv/im2col.wgsl", "col2im");
const CHANNEL_ROWS: Kernel = layout_kernel!("conv/im2col.wgsl", "channel_rows");
const PIXEL_ROWS: Kernel = layout_kernel!("conv/im2col.wgsl", "pixel_rows");
const COL2IM4: Kernel = layout_kernel!("conv/col2im4.wgsl", "col2im4");
const CHANNEL_ROWS4: Kernel = layout_kernel!("conv/layout4.wgsl", "channel_rows4");
/// [`CHANNEL_ROWS4`] for CPU adapters: runs of [`RUN`] vec4s a lane.
const CHANNEL_ROWS4_RUNS: Kernel = layout_kernel!("conv/layout4.wgsl", "channel_rows4_runs");
const PIXEL_ROWS4: Kernel = layout_kernel!("conv/layout4.wgsl", "pixel_rows4");
const IM2COL_BITS: Kernel = layout_kernel!("conv/im2col_bits.wgsl", "im2col_bits");
const IM2COL_WORDS: Kernel = layout_kernel!("conv/im2col_words.wgsl", "im2col_words");
const IM2COL_WORDS4: Kernel = layout_kernel!("conv/im2col_words4.wgsl", "im2col_words4");
const PIXEL_BITS: Kernel = kernel!(
    ["conv/im2col_common.wgsl", "conv/pixel_bits.wgsl"],
    "pixel_bits",
    [Read, ReadWrite]
);
const IM2COL_BITS_SHIFTED: Kernel = kernel!(
    ["conv/im2col_common.wgsl", "conv/im2col_bits_shifted.wgsl"],
    "im2col_bits_shifted",
    [Read, ReadWrite]
);
const SIGN_CONV_DATA: Kernel = kernel!(
    "conv/sign_conv_data.wgsl",
    "sign_conv_data",
    [Read, Read, Read, ReadWrite]
);
const SIGN_CONV_DATA_S: Kernel = kernel!(
    ["conv/sign_conv_data.wgsl", "conv/sign_conv_data_s.wgsl"],
    "sign_conv_data_s",
    [Read, Read, Read, ReadWrite]
);
/// [`SIGN_CONV_DATA`] and [`SIGN_CONV_DATA_S`] with two columns a lane.
const SIGN_CONV_DATA2: Kernel = kernel!(
    "conv/sign_conv_data.wgsl",
    "sign_conv_data2",
    [Read, Read, Read, ReadWrite]
);
const SIGN_CONV_DATA_S2: Kernel = kernel!(
    ["conv/sign_conv_data.wgsl", "conv/sign_conv_data_s.wgsl"],
    "sign_conv_data_s2",
    [Read, Read, Read, ReadWrite]
);
const SIGN_CONV_DATA_PACK: Kernel = kernel!(
    "conv/sign_conv_data_pack.wgsl",
    "pack_tap_major_signs",
    [Read, ReadWrite]
);
const PAD_CORRECT: Kernel = kernel!("conv/pad_correct.wgsl", "pad_correct", [Read, ReadWrite]);

/// Bytes one chunk's largest temporary may take (changeable so tests can
/// exercise several chunks on small sizes).
static CHUNK_BYTES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(48 << 20);

/// Sets the per-chunk temporary budget (default 48 MiB).
pub fn set_chunk_bytes(bytes: usize) {
    CHUNK_BYTES.store(bytes.max(1), std::sync::atomic::Ordering::Relaxed);
}

/// The nt4 GEMM the convolutions launch: the adapter's tuned f32 variant
/// where it is an nt4 one, else 64-lane nt4.
fn gemm_variant(gpu: &Gpu) -> Result<GemmVariant, GpuError> {
    Ok(match super::tune::gemm_variant(gpu, GemmFamily::F32)? {
        v @ (GemmVariant::Nt4 { .. } | GemmVariant::Nt4u { .. } | GemmVariant::Nt4s { .. }) => v,
        _ => GemmVariant::Nt4 { wg: 64 },
    })
}

fn params(g: &Conv2dGeom, n0: usize, images: usize) -> LayoutParams {
    let k = g.c * g.kh * g.kw;
    let pixels = images * g.out_h() * g.out_w();
    LayoutParams {
        images: images as u32,
        n0: n0 as u32,
        c: g.c as u32,
        h: g.h as u32,
        w: g.w as u32,
        oh: g.out_h() as u32,
        ow: g.out_w() as u32,
        kh: g.kh as u32,
        kw: g.kw as u32,
        stride: g.stride as u32,
        pad: g.pad as u32,
        k: k as u32,
        kp: k.next_multiple_of(4) as u32,
        pp: pixels.next_multiple_of(4) as u32,
        o: g.o as u32,
        op: g.o.next_multiple_of(4) as u32,
        cw: g.c.div_ceil(32) as u32,
        last_mask: last_word_mask(g.c),
        _pad: [0; 2],
    }
}

/// Image chunks `(n0, images)` whose im2col fits in [`CHUNK_BYTES`].
fn chunks(gpu: &Gpu, g: &Conv2dGeom) -> Vec<(usize, usize)> {
    let row = (g.c * g.kh * g.kw)
        .next_multiple_of(4)
        .max(g.o.next_multiple_of(4));
    chunks_of(gpu, g, g.out_h() * g.out_w() * row * 4)
}

/// Image chunks `(n0, images)` whose temporaries, `per_image` bytes an
/// image, fit in [`CHUNK_BYTES`].
fn chunks_of(gpu: &Gpu, g: &Conv2dGeom, per_image: usize) -> Vec<(usize, usize)> {
    let budget = CHUNK_BYTES
        .load(std::sync::atomic::Ordering::Relaxed)
        .min(gpu.max_binding_bytes() as usize);
    let step = (budget / per_image.max(1)).clamp(1, g.n);
    (0..g.n)
        .step_by(step)
        .map(|n0| (n0, step.min(g.n - n0)))
        .collect()
}

/// Whether an output plane holds whole vec4s, so the vec4 layout kernels
/// (layout4.wgsl) apply.
fn planes_of_vec4s(g: &Conv2dGeom) -> bool {
    (g.out_h() * g.out_w()).is_multiple_of(4)
}

/// The chunk's output gradient `grad [N, O, OH, OW]` as rows `[O, pp]`.
fn channel_rows(
    gpu: &Gpu,
    grad: &Tensor,
    p: &LayoutParams,
    g: &Conv2dGeom,
    pp: usize,
) -> Result<Tensor, GpuError> {
    if planes_of_vec4s(g) && gpu.cpu_forms() {
        let out = Tensor::empty(gpu, &[g.o, pp], DType::F32)?;
        gpu.launch(
            &CHANNEL_ROWS4_RUNS,
            WG_RUN,
            p,
            &[grad.binding(), out.binding()],
            groups_for(gpu, g.o * (pp / 4).div_ceil(RUN), 64),
        );
        Ok(out)
    } else if planes_of_vec4s(g) {
        layout(gpu, &CHANNEL_ROWS4, grad, p, &[g.o, pp], g.o * pp / 4)
    } else {
        layout(gpu, &CHANNEL_ROWS, grad, p, &[g.o, pp], g.o * pp)
    }
}

/// The chunk's output gradient `grad [N, O, OH, OW]` as rows `[pixels, op]`.
fn pixel_rows(
    gpu: &Gpu,
    grad: &Tensor,
    p: &LayoutParams,
    g: &Conv2dGeom,
    pixels: usize,
) -> Result<Tensor, GpuError> {
    let op = p.op as usize;
    if planes_of_vec4s(g) {
        layout(
            gpu,
            &PIXEL_ROWS4,
            grad,
            p,
            &[pixels, op],
            pixels / 4 * op / 4,
        )
    } else {
        layout(gpu, &PIXEL_ROWS, grad, p, &[pixels, op], pixels * op)
    }
}

fn layout(
    gpu: &Gpu,
    kernel: &Kernel,
    x: &Tensor,
    p: &LayoutParams,
    out_shape: &[usize],
    invocations: usize,
) -> Result<Tensor, GpuError> {
    let out = Tensor::empty(gpu, out_shape, DType::F32)?;
    gpu.launch(
        kernel,
        &[("WG", 64.0)],
        p,
        &[x.binding(), out.binding()],
        groups_for(gpu, invocations, 64),
    );
    Ok(out)
}

/// [`super::conv::conv2d`] (zero padding, no bias) as `W [O, K] x im2col^T`,
/// written straight into NCHW; a one-channel 3x3 input runs direct
/// ([`super::conv3x3_c1`]) where that applies.
pub fn conv2d_gemm(gpu: &Gpu, x: &Tensor, w: &Tensor, g: Conv2dGeom) -> Result<Tensor, GpuError> {
    g.check();
    if super::conv3x3_c1::applies(gpu, &g) {
        return super::conv3x3_c1::forward(gpu, x, w, g);
    }
    let variant = gemm_variant(gpu)?;
    let k = g.c * g.kh * g.kw;
    let kp = k.next_multiple_of(4);
    let plane = g.out_h() * g.out_w();
    let w_rows = relayout(gpu, w, g.o, k, kp, k, 1)?;
    let y = Tensor::empty(gpu, &g.output_shape(), DType::F32)?;
    for (n0, images) in chunks(gpu, &g) {
        let p = params(&g, n0, images);
        let pixels = images * plane;
        let col = layout(gpu, &IM2COL_ROWS, x, &p, &[pixels, kp], pixels * kp / 4)?;
        let out = OutLayout {
            plane,
            offset: n0 * g.o * plane,
        };
        nt4_gemm(
            gpu,
            &w_rows,
            &col,
            [g.o, pixels, kp],
            Epilogue::default(),
            &y,
            out,
            variant,
        )?;
    }
    Ok(y)
}

/// [`super::conv::binary_conv2d`] with zero padding as an XNOR GEMM: the
/// input's packed words laid out per tap (im2col of whole words, no bit
/// packing), the vec4 XNOR GEMM written straight into NCHW, then the
/// padding taps (read as +1 by the layout) taken out and the scale applied.
/// `x` and `w` as [`super::conv::binary_conv2d`] takes them, row-major.
/// Equal to it bit for bit.
pub fn binary_conv2d_gemm(
    gpu: &Gpu,
    x: &PackedBits,
    w: &PackedBits,
    g: Conv2dGeom,
    scale: Option<&Tensor>,
) -> Result<Tensor, GpuError> {
    g.check();
    let taps = g.taps();
    assert!(
        x.layout == BitLayout::RowMajor && x.rows == g.n * g.h * g.w && x.k == g.c,
        "binary_conv2d_gemm: x must be row-major, {} rows of {} bits: {:?} {} x {}",
        g.n * g.h * g.w,
        g.c,
        x.layout,
        x.rows,
        x.k
    );
    assert!(
        w.layout == BitLayout::RowMajor && w.rows == g.o * taps && w.k == g.c,
        "binary_conv2d_gemm: w must be row-major, {} rows of {} bits: {:?} {} x {}",
        g.o * taps,
        g.c,
        w.layout,
        w.rows,
        w.k
    );
    if let Some(s) = scale {
        assert_eq!(
            s.numel(),
            g.o,
            "binary_conv2d_gemm: scale {s:?} for {} channels",
            g.o
        );
    }
    let cw = g.c.div_ceil(32);
    let plane = g.out_h() * g.out_w();
    let y = Tensor::empty(gpu, &g.output_shape(), DType::F32)?;
    for (n0, images) in chunks_of(gpu, &g, plane * taps * cw * 4) {
        let p = params(&g, n0, images);
        let pixels = images * plane;
        let words = Tensor::empty(gpu, &[taps * cw, pixels], DType::U32)?;
        // Four pixels a lane where they come in fours: 2-3x faster on lavapipe.
        let (kernel, lanes) = if pixels.is_multiple_of(4) {
            (&IM2COL_WORDS4, taps * cw * pixels / 4)
        } else {
            (&IM2COL_WORDS, taps * cw * pixels)
        };
        gpu.launch(
            kernel,
            &[("WG", 64.0)],
            &p,
            &[x.words.binding(), words.binding()],
            groups_for(gpu, lanes, 64),
        );
        // w's rows o * T + t of CW words are row o of [O, T * CW] words.
        xnor_gemm_nchw(
            gpu,
            &w.words,
            &words,
            [g.o, pixels, taps * cw, taps * g.c],
            plane,
            &y,
            n0 * g.o * plane,
        )?;
    }
    super::conv::finish_padded_gemm(gpu, x, w, g, scale, &y)?;
    Ok(y)
}

/// [`super::conv::conv2d_backward_weights`] as `g [O, P] x im2col [P, K]`,
/// accumulated over image chunks; a one-channel 3x3 input runs direct
/// ([`super::conv3x3_c1`]) where that applies.
pub fn conv2d_backward_weights_gemm(
    gpu: &Gpu,
    x: &Tensor,
    grad: &Tensor,
    g: Conv2dGeom,
) -> Result<Tensor, GpuError> {
    g.check();
    if super::conv3x3_c1::applies(gpu, &g) {
        return super::conv3x3_c1::backward_weights(gpu, x, grad, g);
    }
    let variant = gemm_variant(gpu)?;
    let k = g.c * g.kh * g.kw;
    let dw = Tensor::empty(gpu, &g.weight_shape(), DType::F32)?;
    for (i, (n0, images)) in chunks(gpu, &g).into_iter().enumerate() {
        let p = params(&g, n0, images);
        let pp = p.pp as usize;
        let g_rows = channel_rows(gpu, grad, &p, &g, pp)?;
        let col_t = layout(gpu, &IM2COL_COLS, x, &p, &[k, pp], k * pp / 4)?;
        let ep = Epilogue {
            accumulate: i > 0,
            ..Default::default()
        };
        nt4_gemm(
            gpu,
            &g_rows,
            &col_t,
            [g.o, k, pp],
            ep,
            &dw,
            OutLayout {
                plane: k,
                offset: 0,
            },
            variant,
        )?;
    }
    Ok(dw)
}

/// Whether a tap row of the packed im2col is a shift of the input's
/// per-channel pixel bits (im2col_bits_shifted.wgsl): stride 1, output the
/// size of the input, planes of whole vec4s.
fn shifted_taps(g: &Conv2dGeom) -> bool {
    g.stride == 1 && g.out_h() == g.h && g.out_w() == g.w && (g.h * g.w).is_multiple_of(4)
}

/// [`conv2d_backward_weights_gemm`] for an input `x` that holds signs (+-1):
/// the GEMM reads the im2col of `x` packed, one bit per tap
/// ([`sign_gemm`]), and the zero-padding taps, which bits cannot hold, are
/// taken out after it (shaders/conv/im2col_bits.wgsl, pad_correct.wgsl).
pub fn conv2d_backward_weights_signs(
    gpu: &Gpu,
    x: &Tensor,
    grad: &Tensor,
    g: Conv2dGeom,
) -> Result<Tensor, GpuError> {
    g.check();
    let k = g.c * g.kh * g.kw;
    let taps = g.kh * g.kw;
    let rows = k + taps + 1;
    let plane = g.out_h() * g.out_w();
    let s = Tensor::empty(gpu, &[g.o, rows], DType::F32)?;
    // The largest temporary is g's rows, [O, pixels] in f32.
    let per_image = plane * g.o.max(1) * 4;
    for (i, (n0, images)) in chunks_of(gpu, &g, per_image).into_iter().enumerate() {
        let mut p = params(&g, n0, images);
        let pp = (images * plane).next_multiple_of(32);
        p.pp = pp as u32;
        let g_rows = channel_rows(gpu, grad, &p, &g, pp)?;
        let words = Tensor::empty(gpu, &[rows, pp / 32], DType::U32)?;
        if shifted_taps(&g) {
            let stream = Tensor::empty(gpu, &[g.c, pp / 32], DType::U32)?;
            gpu.launch(
                &PIXEL_BITS,
                &[("WG", 64.0)],
                &p,
                &[x.binding(), stream.binding()],
                groups_for(gpu, g.c * pp / 32, 64),
            );
            gpu.launch(
                &IM2COL_BITS_SHIFTED,
                &[("WG", 64.0)],
                &p,
                &[stream.binding(), words.binding()],
                groups_for(gpu, taps * pp / 32, 64),
            );
        } else {
            gpu.launch(
                &IM2COL_BITS,
                &[("WG", 64.0)],
                &p,
                &[x.binding(), words.binding()],
                groups_for(gpu, rows * pp / 32, 64),
            );
        }
        let bits = PackedBits {
            words,
            rows,
            k: pp,
            layout: BitLayout::RowMajor,
        };
        sign_gemm_into(gpu, &g_rows, [g.o, pp, 1], &bits, None, &s, i > 0)?;
    }
    let dw = Tensor::empty(gpu, &g.weight_shape(), DType::F32)?;
    let params = PadCorrectParams {
        o: g.o as u32,
        k: k as u32,
        taps: taps as u32,
        _pad: 0,
    };
    gpu.launch(
        &PAD_CORRECT,
        &[("WG", 64.0)],
        &params,
        &[s.binding(), dw.binding()],
        groups_for(gpu, g.o * k, 64),
    );
    Ok(dw)
}

/// [`super::conv::conv2d_backward_data`] as `g [P, O] x W [O, K]` followed
/// by a col2im gather.
pub fn conv2d_backward_data_gemm(
    gpu: &Gpu,
    grad: &Tensor,
    w: &Tensor,
    g: Conv2dGeom,
) -> Result<Tensor, GpuError> {
    backward_data(gpu, grad, g, BackwardWeights::Float(w))
}

/// [`conv2d_backward_data_gemm`] for binary weights `alpha_o * sign(W)`:
/// the GEMM reads W's signs packed ([`sign_gemm`]) and scales by `alpha`.
/// Where [`implicit_data_gradient`] applies, one implicit GEMM over
/// (tap, output channel) instead (shaders/conv/sign_conv_data.wgsl).
pub fn conv2d_backward_data_signs(
    gpu: &Gpu,
    grad: &Tensor,
    w: &Tensor,
    alpha: &Tensor,
    g: Conv2dGeom,
) -> Result<Tensor, GpuError> {
    if implicit_data_gradient(&g) {
        return backward_data_signs_implicit(gpu, grad, w, alpha, g);
    }
    backward_data(gpu, grad, g, BackwardWeights::Signs(w, alpha))
}

/// Whether a binary convolution's data gradient runs as one implicit GEMM:
/// stride 1, output the size of the input (a tap is a fixed pixel shift),
/// output channels in 32s (a word of signs is one tap's).
pub fn implicit_data_gradient(g: &Conv2dGeom) -> bool {
    g.stride == 1 && g.out_h() == g.h && g.out_w() == g.w && g.o.is_multiple_of(32)
}

fn backward_data_signs_implicit(
    gpu: &Gpu,
    grad: &Tensor,
    w: &Tensor,
    alpha: &Tensor,
    g: Conv2dGeom,
) -> Result<Tensor, GpuError> {
    g.check();
    assert_eq!(
        alpha.numel(),
        g.o,
        "conv2d_backward_data_signs: alpha {alpha:?} for {} channels",
        g.o
    );
    let taps = g.kh * g.kw;
    let kw = taps * g.o / 32;
    let words = Tensor::empty(gpu, &[g.c, kw], DType::U32)?;
    gpu.launch(
        &SIGN_CONV_DATA_PACK,
        &[("WG", 64.0)],
        &SignConvPackParams {
            o: g.o as u32,
            c: g.c as u32,
            taps: taps as u32,
            kw: kw as u32,
        },
        &[w.binding(), words.binding()],
        groups_for(gpu, g.c * kw, 64),
    );
    let plane = g.h * g.w;
    // Four columns (input channels) a lane, or two where C / 4 lanes would
    // not fill a SIMD row (bcnn's conv2 on a GPU: 16 of a 32-lane
    // subgroup); the workgroup no wider than C needs.
    let cols = if g.c.div_ceil(4) < super::simd_row(gpu) as usize {
        2
    } else {
        4
    };
    let wg = (g.c.div_ceil(cols).next_power_of_two()).clamp(8, 64);
    let kernel = match (gpu.has_subgroups(8), cols) {
        (true, 2) => &SIGN_CONV_DATA_S2,
        (true, _) => &SIGN_CONV_DATA_S,
        (false, 2) => &SIGN_CONV_DATA2,
        (false, _) => &SIGN_CONV_DATA,
    };
    let dx = Tensor::empty(gpu, &g.input_shape(), DType::F32)?;
    for (n0, images) in chunks(gpu, &g) {
        let p = params(&g, n0, images);
        let pixels = images * plane;
        let g_pixels = pixel_rows(gpu, grad, &p, &g, pixels)?;
        let groups_x = g.c.div_ceil(cols * wg);
        let groups = groups_x * pixels.div_ceil(8);
        let params = SignConvDataParams {
            m: pixels as u32,
            n: g.c as u32,
            kw: kw as u32,
            o4: (g.o / 4) as u32,
            words_per_tap: (g.o / 32) as u32,
            h: g.h as u32,
            w: g.w as u32,
            pad: g.pad as u32,
            kwidth: g.kw as u32,
            groups_x: groups_x as u32,
            groups: groups as u32,
            dx_offset: (n0 * g.c * plane) as u32,
        };
        gpu.launch(
            kernel,
            &[("WG", wg as f64)],
            &params,
            &[
                g_pixels.binding(),
                words.binding(),
                alpha.binding(),
                dx.binding(),
            ],
            gpu.grid(groups as u64),
        );
    }
    Ok(dx)
}

/// The weights a data gradient multiplies by.
#[derive(Clone, Copy)]
enum BackwardWeights<'a> {
    Float(&'a Tensor),
    /// Latent weights and their per-output scale: `alpha_o * sign(W)`.
    Signs(&'a Tensor, &'a Tensor),
}

fn backward_data(
    gpu: &Gpu,
    grad: &Tensor,
    g: Conv2dGeom,
    weights: BackwardWeights,
) -> Result<Tensor, GpuError> {
    g.check();
    let taps = g.kh * g.kw;
    let k = g.c * taps;
    let op = g.o.next_multiple_of(4);
    let plane = g.out_h() * g.out_w();
    let variant = gemm_variant(gpu)?;
    // Row k of W^T (or of its signs) holds W[:, k] over the output channels.
    enum Rows<'a> {
        Float(Tensor),
        Signs(PackedBits, &'a Tensor),
    }
    let w_t = match weights {
        BackwardWeights::Float(w) => Rows::Float(relayout(gpu, w, k, g.o, op, 1, k)?),
        BackwardWeights::Signs(w, alpha) => {
            Rows::Signs(pack_signs(gpu, w, 1, g.o, k, BitLayout::RowMajor)?, alpha)
        }
    };
    let dx = Tensor::empty(gpu, &g.input_shape(), DType::F32)?;
    for (n0, images) in chunks(gpu, &g) {
        let p = params(&g, n0, images);
        let pixels = images * plane;
        let g_pixels = pixel_rows(gpu, grad, &p, &g, pixels)?;
        // Binary weights with channels in fours: the GEMM writes the column
        // gradient tap-major and col2im4 gathers four channels per load.
        let tap_major = matches!(w_t, Rows::Signs(..)) && g.c.is_multiple_of(4);
        let colgrad = match &w_t {
            Rows::Float(w_t) => {
                let colgrad = Tensor::empty(gpu, &[pixels, k], DType::F32)?;
                let out = OutLayout {
                    plane: k,
                    offset: 0,
                };
                let ep = Epilogue::default();
                nt4_gemm(
                    gpu,
                    &g_pixels,
                    w_t,
                    [pixels, k, op],
                    ep,
                    &colgrad,
                    out,
                    variant,
                )?;
                colgrad
            }
            Rows::Signs(bits, alpha) if tap_major => {
                sign_gemm_tap_major(gpu, &g_pixels, [pixels, op, 1], bits, Some(alpha), taps)?
            }
            Rows::Signs(bits, alpha) => {
                sign_gemm(gpu, &g_pixels, [pixels, op, 1], bits, Some(alpha))?
            }
        };
        let per_image = g.c * g.h * g.w;
        let (kernel, lanes) = if tap_major {
            (&COL2IM4, images * per_image / 4)
        } else {
            (&COL2IM, images * per_image)
        };
        gpu.launch(
            kernel,
            &[("WG", 64.0)],
            &p,
            &[colgrad.binding(), dx.binding()],
            groups_for(gpu, lanes, 64),
        );
    }
    Ok(dx)
}
