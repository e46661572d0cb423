//! 2-D convolutions: the binary XNOR-popcount forward on packed bits, and
//! the f32 forward and both backwards used for training.
//!
//! Layouts: input `x [N, C, H, W]`, weights `w [O, C, KH, KW]`, output
//! `y [N, O, OH, OW]` with `OH = (H + 2*pad - KH) / stride + 1` (floor),
//! likewise `OW`.

use crate::gpu::{Gpu, GpuError, Kernel};
use crate::kernel;
use crate::tensor::{DType, Tensor};

use super::pack::{BitLayout, PackedBits, last_word_mask};
use super::{RUN, WG_RUN, groups_for, unused};

/// The geometry of one conv2d: batch, channels, image, kernel, stride, padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Conv2dGeom {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
}

impl Conv2dGeom {
    /// `OH = (H + 2*pad - KH) / stride + 1`.
    pub fn out_h(&self) -> usize {
        (self.h + 2 * self.pad - self.kh) / self.stride + 1
    }

    /// `OW = (W + 2*pad - KW) / stride + 1`.
    pub fn out_w(&self) -> usize {
        (self.w + 2 * self.pad - self.kw) / self.stride + 1
    }

    /// `[N, C, H, W]`.
    pub fn input_shape(&self) -> [usize; 4] {
        [self.n, self.c, self.h, self.w]
    }

    /// `[O, C, KH, KW]`.
    pub fn weight_shape(&self) -> [usize; 4] {
        [self.o, self.c, self.kh, self.kw]
    }

    /// `[N, O, OH, OW]`.
    pub fn output_shape(&self) -> [usize; 4] {
        [self.n, self.o, self.out_h(), self.out_w()]
    }

    /// Kernel taps, `KH * KW`.
    pub fn taps(&self) -> usize {
        self.kh * self.kw
    }

    /// Panics with the geometry when it has an empty dimension or the
    /// kernel does not fit the padded image.
    pub fn check(&self) {
        assert!(
            self.n > 0 && self.c > 0 && self.h > 0 && self.w > 0 && self.o > 0,
            "conv2d: empty dimension in {self:?}"
        );
        assert!(
            self.kh > 0 && self.kw > 0 && self.stride > 0,
            "conv2d: bad kernel or stride in {self:?}"
        );
        assert!(
            self.kh <= self.h + 2 * self.pad && self.kw <= self.w + 2 * self.pad,
            "conv2d: kernel larger than the padded image in {self:?}"
        );
    }
}

/// What a binary convolution sees outside the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PadMode {
    /// Zeros: a padded tap contributes nothing.
    Zero,
    /// +1 in every channel: a padded tap contributes `sum_c w_c`.
    One,
}

/// Register block of a conv kernel: `wg` lanes, each computing `rp` pixels
/// times `rc` channels (output channels forward, input channels for
/// backward data). Limits: `rc <= 16`, `rp <= 4`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConvBlock {
    pub wg: u32,
    pub rc: u32,
    pub rp: u32,
}

impl ConvBlock {
    /// The default block of every conv kernel here.
    pub const DEFAULT: ConvBlock = ConvBlock {
        wg: 64,
        rc: 8,
        rp: 2,
    };

    fn check(&self) {
        assert!(
            self.wg > 0 && (1..=16).contains(&self.rc) && (1..=4).contains(&self.rp),
            "conv block {self:?} out of range (rc 1..=16, rp 1..=4)"
        );
    }

    fn groups(&self, gpu: &Gpu, pixels: usize, channels: usize) -> (u32, u32, [u32; 3]) {
        let gx = pixels.div_ceil((self.wg * self.rp) as usize) as u64;
        let gy = channels.div_ceil(self.rc as usize) as u64;
        let groups = gx * gy;
        assert!(
            groups <= u32::MAX as u64,
            "conv2d: {groups} workgroups do not fit a u32 index"
        );
        (gx as u32, groups as u32, gpu.grid(groups))
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct BinaryParams {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    o: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad: u32,
    oh: u32,
    ow: u32,
    cw: u32,
    pad_one: u32,
    has_scale: u32,
    groups_x: u32,
    groups: u32,
    pixels: u32,
    last_mask: u32,
    x_row: u32,
    x_word: u32,
    w_row: u32,
    w_word: u32,
    _pad: [u32; 2],
}

const BINARY: Kernel = kernel!(
    ["conv/binary_conv2d_params.wgsl", "conv/binary_conv2d.wgsl"],
    "binary_conv2d",
    [Read, Read, Read, ReadWrite]
);

/// Binary conv2d on packed signs, with [`ConvBlock::DEFAULT`]:
/// `y[n, o, oy, ox] = scale[o] * sum_{taps t} (C - 2 * popcount(x_t xor w_t))`,
/// i.e. the convolution of `sign(x)` with `sign(w)`. Padded taps contribute
/// 0 with [`PadMode::Zero`] and `sum_c sign(w_c) = 2 * popcount(w_t) - C`
/// with [`PadMode::One`].
///
/// `x` is `pack_signs(x, N, C, H*W, layout)` (rows `n*H*W + y*W + x`),
/// `w` is `pack_signs(w, O, C, KH*KW, layout)` (rows `o*KH*KW + tap`),
/// either layout for either operand; a word-major `x` lets neighbouring
/// lanes read neighbouring words. `scale` is per output channel `[O]`.
/// Returns `[N, O, OH, OW]`.
pub fn binary_conv2d(
    gpu: &Gpu,
    x: &PackedBits,
    w: &PackedBits,
    geom: Conv2dGeom,
    scale: Option<&Tensor>,
    padding: PadMode,
) -> Result<Tensor, GpuError> {
    binary_conv2d_with(gpu, x, w, geom, scale, padding, ConvBlock::DEFAULT)
}

/// [`binary_conv2d`] with an explicit register block (`rc` output channels
/// times `rp` pixels per invocation).
pub fn binary_conv2d_with(
    gpu: &Gpu,
    x: &PackedBits,
    w: &PackedBits,
    geom: Conv2dGeom,
    scale: Option<&Tensor>,
    padding: PadMode,
    block: ConvBlock,
) -> Result<Tensor, GpuError> {
    packed_conv2d(gpu, x, w, geom, scale, padding, block, false)
}

/// Binary conv2d of a {0, 1} input (packed with
/// [`super::pack::pack_bits`] at threshold 0.5, bit 1 = 1) with sign
/// weights, zero padding: `y = scale[o] * sum_taps (2 * popcount(x_t and
/// w_t) - popcount(x_t))`, the convolution of the {0, 1} input with
/// `sign(w)`. Layouts as [`binary_conv2d`].
pub fn binary_conv2d_01(
    gpu: &Gpu,
    x: &PackedBits,
    w: &PackedBits,
    geom: Conv2dGeom,
    scale: Option<&Tensor>,
) -> Result<Tensor, GpuError> {
    packed_conv2d(
        gpu,
        x,
        w,
        geom,
        scale,
        PadMode::Zero,
        ConvBlock::DEFAULT,
        true,
    )
}

/// [`binary_conv2d_with`], or with `and_x` [`binary_conv2d_01`] (the
/// kernel's `AND_X` override).
#[allow(clippy::too_many_arguments)]
fn packed_conv2d(
    gpu: &Gpu,
    x: &PackedBits,
    w: &PackedBits,
    geom: Conv2dGeom,
    scale: Option<&Tensor>,
    padding: PadMode,
    block: ConvBlock,
    and_x: bool,
) -> Result<Tensor, GpuError> {
    geom.check();
    block.check();
    let g = geom;
    assert!(
        x.rows == g.n * g.h * g.w && x.k == g.c,
        "binary_conv2d: x must be packed as {} rows of {} bits, got {} rows of {} bits ({:?})",
        g.n * g.h * g.w,
        g.c,
        x.rows,
        x.k,
        x.layout
    );
    assert!(
        w.rows == g.o * g.taps() && w.k == g.c,
        "binary_conv2d: w must be packed as {} rows of {} bits, got {} rows of {} bits ({:?})",
        g.o * g.taps(),
        g.c,
        w.rows,
        w.k,
        w.layout
    );
    if let Some(s) = scale {
        assert_eq!(
            s.numel(),
            g.o,
            "binary_conv2d: scale {s:?} must have {} elements",
            g.o
        );
    }
    let (oh, ow) = (g.out_h(), g.out_w());
    let y = Tensor::empty(gpu, &g.output_shape(), DType::F32)?;
    let pixels = g.n * oh * ow;
    let (gx, groups, grid) = block.groups(gpu, pixels, g.o);
    let params = binary_params(g, x, w, scale.is_some(), padding, gx, groups);
    let mut constants = vec![
        ("WG", block.wg as f64),
        ("RO", block.rc as f64),
        ("RP", block.rp as f64),
    ];
    if and_x {
        constants.push(("AND_X", 1.0));
    }
    gpu.launch(
        &BINARY,
        &constants,
        &params,
        &[
            x.words.binding(),
            w.words.binding(),
            scale.map_or(unused(&x.words), |s| s.binding()),
            y.binding(),
        ],
        grid,
    );
    Ok(y)
}

/// The uniform parameters of binary_conv2d.wgsl's entry points.
fn binary_params(
    g: Conv2dGeom,
    x: &PackedBits,
    w: &PackedBits,
    has_scale: bool,
    padding: PadMode,
    groups_x: u32,
    groups: u32,
) -> BinaryParams {
    let (oh, ow) = (g.out_h(), g.out_w());
    BinaryParams {
        n: g.n as u32,
        c: g.c as u32,
        h: g.h as u32,
        w: g.w as u32,
        o: g.o as u32,
        kh: g.kh as u32,
        kw: g.kw as u32,
        stride: g.stride as u32,
        pad: g.pad as u32,
        oh: oh as u32,
        ow: ow as u32,
        cw: g.c.div_ceil(32) as u32,
        pad_one: (padding == PadMode::One) as u32,
        has_scale: has_scale as u32,
        groups_x,
        groups,
        pixels: (g.n * oh * ow) as u32,
        last_mask: last_word_mask(g.c),
        x_row: word_strides(x).0,
        x_word: word_strides(x).1,
        w_row: word_strides(w).0,
        w_word: word_strides(w).1,
        _pad: [0; 2],
    }
}

const PAD_TERMS: Kernel = kernel!(
    ["conv/binary_conv2d_params.wgsl", "conv/binary_conv2d.wgsl"],
    "conv_pad_terms",
    [Read, Read, Read, ReadWrite, ReadWrite]
);
const FINISH: Kernel = kernel!(
    ["conv/binary_conv2d_params.wgsl", "conv/binary_conv2d.wgsl"],
    "conv_finish",
    [Read, Read, Read, ReadWrite, ReadWrite]
);
/// [`FINISH`] four elements per lane, for planes of whole vec4s.
const FINISH4: Kernel = kernel!(
    ["conv/binary_conv2d_params.wgsl", "conv/conv_finish4.wgsl"],
    "conv_finish4",
    [Read, Read, Read, ReadWrite, ReadWrite]
);
/// [`FINISH4`] for CPU adapters: runs of [`RUN`] vec4s a lane.
const FINISH4_RUNS: Kernel = kernel!(
    ["conv/binary_conv2d_params.wgsl", "conv/conv_finish4.wgsl"],
    "conv_finish4_runs",
    [Read, Read, Read, ReadWrite, ReadWrite]
);

/// Finishes a binary convolution (zero padding) that an XNOR GEMM wrote
/// unscaled into `y` `[N, O, OH, OW]` with the taps outside the image read
/// as +1 ([`super::conv_gemm::binary_conv2d_gemm`]): takes those taps'
/// terms out and applies `scale` (binary_conv2d.wgsl's conv_pad_terms and
/// conv_finish), so `y` equals [`binary_conv2d`]'s output bit for bit.
pub(crate) fn finish_padded_gemm(
    gpu: &Gpu,
    x: &PackedBits,
    w: &PackedBits,
    g: Conv2dGeom,
    scale: Option<&Tensor>,
    y: &Tensor,
) -> Result<(), GpuError> {
    let plane = g.out_h() * g.out_w();
    let params = binary_params(g, x, w, scale.is_some(), PadMode::Zero, 0, 0);
    let terms = Tensor::empty(gpu, &[g.o, plane], DType::U32)?;
    let bindings = [
        x.words.binding(),
        w.words.binding(),
        scale.map_or(w.words.binding(), |s| s.binding()),
        y.binding(),
        terms.binding(),
    ];
    gpu.launch(
        &PAD_TERMS,
        &[("WG", 64.0)],
        &params,
        &bindings,
        groups_for(gpu, g.o * plane, 64),
    );
    let vec4s = g.n * g.o * plane / 4;
    let wg: &[(&str, f64)] = &[("WG", 64.0)];
    let (finish, constants, lanes) = if !plane.is_multiple_of(4) {
        (&FINISH, wg, g.n * g.o * plane)
    } else if gpu.cpu_forms() {
        (&FINISH4_RUNS, WG_RUN, vec4s.div_ceil(RUN))
    } else {
        (&FINISH4, wg, vec4s)
    };
    gpu.launch(
        finish,
        constants,
        &params,
        &bindings,
        groups_for(gpu, lanes, 64),
    );
    Ok(())
}

/// (row stride, word stride) of a packed operand's words.
fn word_strides(b: &PackedBits) -> (u32, u32) {
    match b.layout {
        BitLayout::RowMajor => (b.kw() as u32, 1),
        BitLayout::WordMajor => (1, b.rows as u32),
    }
}

/// CPU reference of [`binary_conv2d_01`]: the float convolution of
/// `1[x >= 0.5]` with `sign(w)`, zero padding, times `scale[o]`.
pub fn binary_conv2d_01_cpu(
    x: &[f32],
    w: &[f32],
    geom: Conv2dGeom,
    scale: Option<&[f32]>,
) -> Vec<f32> {
    let xs: Vec<f64> = x.iter().map(|v| (*v >= 0.5) as u8 as f64).collect();
    let ws: Vec<f64> = w
        .iter()
        .map(|v| if *v >= 0.0 { 1.0 } else { -1.0 })
        .collect();
    let y = conv2d_f64(&xs, &ws, geom, 0.0);
    let plane = geom.out_h() * geom.out_w();
    y.iter()
        .enumerate()
        .map(|(i, &v)| v as f32 * scale.map_or(1.0, |s| s[(i / plane) % geom.o]))
        .collect()
}

/// CPU reference of [`binary_conv2d`] on the unpacked tensors: the float
/// convolution of `sign(x)` with `sign(w)` (`sign(0) = +1`), the input
/// padded with 0 ([`PadMode::Zero`]) or +1 ([`PadMode::One`]), times `scale[o]`.
pub fn binary_conv2d_cpu(
    x: &[f32],
    w: &[f32],
    geom: Conv2dGeom,
    scale: Option<&[f32]>,
    padding: PadMode,
) -> Vec<f32> {
    let sign = |v: &f32| if *v >= 0.0 { 1.0 } else { -1.0 };
    let xs: Vec<f64> = x.iter().map(sign).collect();
    let ws: Vec<f64> = w.iter().map(sign).collect();
    let pad_value = match padding {
        PadMode::Zero => 0.0,
        PadMode::One => 1.0,
    };
    let y = conv2d_f64(&xs, &ws, geom, pad_value);
    let plane = geom.out_h() * geom.out_w();
    y.iter()
        .enumerate()
        .map(|(i, &v)| {
            // The device multiplies the exact integer by the f32 scale; so does this.
            let o = (i / plane) % geom.o;
            v as f32 * scale.map_or(1.0, |s| s[o])
        })
        .collect()
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct F32Params {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    o: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad: u32,
    oh: u32,
    ow: u32,
    has_bias: u32,
    groups_x: u32,
    groups: u32,
    pixels: u32,
    _pad: u32,
}

impl F32Params {
    fn new(g: Conv2dGeom, has_bias: bool, groups_x: u32, groups: u32, pixels: usize) -> F32Params {
        F32Params {
            n: g.n as u32,
            c: g.c as u32,
            h: g.h as u32,
            w: g.w as u32,
            o: g.o as u32,
            kh: g.kh as u32,
            kw: g.kw as u32,
            stride: g.stride as u32,
            pad: g.pad as u32,
            oh: g.out_h() as u32,
            ow: g.out_w() as u32,
            has_bias: has_bias as u32,
            groups_x,
            groups,
            pixels: pixels as u32,
            _pad: 0,
        }
    }
}

const CONV: Kernel = kernel!("conv/conv2d.wgsl", "conv2d", [Read, Read, Read, ReadWrite]);
const CONV_BACKWARD_DATA: Kernel = kernel!(
    "conv/conv2d_backward_data.wgsl",
    "conv2d_backward_data",
    [Read, Read, ReadWrite]
);
const CONV_BACKWARD_WEIGHTS: Kernel = kernel!(
    "conv/conv2d_backward_weights.wgsl",
    "conv2d_backward_weights",
    [Read, Read, ReadWrite]
);

fn check_shape(what: &str, t: &Tensor, shape: [usize; 4]) {
    assert_eq!(
        t.numel(),
        shape.iter().product::<usize>(),
        "{what}: {t:?} is not {shape:?}"
    );
}

/// f32 conv2d with zero padding, with [`ConvBlock::DEFAULT`]:
/// `y[n, o, oy, ox] = bias[o] + sum_{c, ky, kx} w[o, c, ky, kx] * x[n, c, oy*s - pad + ky, ox*s - pad + kx]`.
/// Returns `[N, O, OH, OW]`.
pub fn conv2d(
    gpu: &Gpu,
    x: &Tensor,
    w: &Tensor,
    geom: Conv2dGeom,
    bias: Option<&Tensor>,
) -> Result<Tensor, GpuError> {
    conv2d_with(gpu, x, w, geom, bias, ConvBlock::DEFAULT)
}

/// [`conv2d`] with an explicit register block (`rc` output channels times
/// `rp` pixels per invocation).
pub fn conv2d_with(
    gpu: &Gpu,
    x: &Tensor,
    w: &Tensor,
    geom: Conv2dGeom,
    bias: Option<&Tensor>,
    block: ConvBlock,
) -> Result<Tensor, GpuError> {
    geom.check();
    block.check();
    check_shape("conv2d x", x, geom.input_shape());
    check_shape("conv2d w", w, geom.weight_shape());
    if let Some(b) = bias {
        assert_eq!(
            b.numel(),
            geom.o,
            "conv2d: bias {b:?} must have {} elements",
            geom.o
        );
    }
    let y = Tensor::empty(gpu, &geom.output_shape(), DType::F32)?;
    let pixels = geom.n * geom.out_h() * geom.out_w();
    let (gx, groups, grid) = block.groups(gpu, pixels, geom.o);
    gpu.launch(
        &CONV,
        &[
            ("WG", block.wg as f64),
            ("RO", block.rc as f64),
            ("RP", block.rp as f64),
        ],
        &F32Params::new(geom, bias.is_some(), gx, groups, pixels),
        &[
            x.binding(),
            w.binding(),
            bias.map_or(unused(x), |b| b.binding()),
            y.binding(),
        ],
        grid,
    );
    Ok(y)
}

/// Gradient of [`conv2d`] with respect to its input, with [`ConvBlock::DEFAULT`]:
/// `dx[n, c, iy, ix] = sum_{o, ky, kx : iy + pad - ky = oy*s, ix + pad - kx = ox*s} g[n, o, oy, ox] * w[o, c, ky, kx]`.
/// `g` is `[N, O, OH, OW]`; returns `[N, C, H, W]`.
pub fn conv2d_backward_data(
    gpu: &Gpu,
    g: &Tensor,
    w: &Tensor,
    geom: Conv2dGeom,
) -> Result<Tensor, GpuError> {
    conv2d_backward_data_with(gpu, g, w, geom, ConvBlock::DEFAULT)
}

/// [`conv2d_backward_data`] with an explicit register block (`rc` input
/// channels times `rp` input pixels per invocation).
pub fn conv2d_backward_data_with(
    gpu: &Gpu,
    g: &Tensor,
    w: &Tensor,
    geom: Conv2dGeom,
    block: ConvBlock,
) -> Result<Tensor, GpuError> {
    geom.check();
    block.check();
    check_shape("conv2d_backward_data g", g, geom.output_shape());
    check_shape("conv2d_backward_data w", w, geom.weight_shape());
    let dx = Tensor::empty(gpu, &geom.input_shape(), DType::F32)?;
    let pixels = geom.n * geom.h * geom.w;
    let (gx, groups, grid) = block.groups(gpu, pixels, geom.c);
    gpu.launch(
        &CONV_BACKWARD_DATA,
        &[
            ("WG", block.wg as f64),
            ("RC", block.rc as f64),
            ("RP", block.rp as f64),
        ],
        &F32Params::new(geom, false, gx, groups, pixels),
        &[g.binding(), w.binding(), dx.binding()],
        grid,
    );
    Ok(dx)
}

/// Gradient of [`conv2d`] with respect to its weights:
/// `dw[o, c, ky, kx] = sum_{n, oy, ox} g[n, o, oy, ox] * x[n, c, oy*s - pad + ky, ox*s - pad + kx]`.
/// One workgroup of 64 lanes per 4 output channels x 8 weight columns,
/// reduced through workgroup memory. Returns `[O, C, KH, KW]`.
pub fn conv2d_backward_weights(
    gpu: &Gpu,
    x: &Tensor,
    g: &Tensor,
    geom: Conv2dGeom,
) -> Result<Tensor, GpuError> {
    const WG: u32 = 64;
    const RO: u32 = 4;
    const RK: u32 = 8;
    geom.check();
    check_shape("conv2d_backward_weights x", x, geom.input_shape());
    check_shape("conv2d_backward_weights g", g, geom.output_shape());
    let dw = Tensor::empty(gpu, &geom.weight_shape(), DType::F32)?;
    let pixels = geom.n * geom.out_h() * geom.out_w();
    let gx = (geom.c * geom.taps()).div_ceil(RK as usize) as u64;
    let groups = gx * geom.o.div_ceil(RO as usize) as u64;
    gpu.launch(
        &CONV_BACKWARD_WEIGHTS,
        &[("WG", WG as f64), ("RO", RO as f64), ("RK", RK as f64)],
        &F32Params::new(geom, false, gx as u32, groups as u32, pixels),
        &[x.binding(), g.binding(), dw.binding()],
        gpu.grid(groups),
    );
    Ok(dw)
}

/// CPU reference of [`conv2d`] (f64 accumulation).
pub fn conv2d_cpu(x: &[f32], w: &[f32], geom: Conv2dGeom, bias: Option<&[f32]>) -> Vec<f32> {
    let y = conv2d_f64(&to_f64(x), &to_f64(w), geom, 0.0);
    let plane = geom.out_h() * geom.out_w();
    y.iter()
        .enumerate()
        .map(|(i, &v)| (v + bias.map_or(0.0, |b| b[(i / plane) % geom.o] as f64)) as f32)
        .collect()
}

/// CPU reference of [`conv2d_backward_data`] (f64 accumulation).
pub fn conv2d_backward_data_cpu(g: &[f32], w: &[f32], geom: Conv2dGeom) -> Vec<f32> {
    to_f32(&conv2d_backward_data_f64(&to_f64(g), &to_f64(w), geom))
}

/// CPU reference of [`conv2d_backward_weights`] (f64 accumulation).
pub fn conv2d_backward_weights_cpu(x: &[f32], g: &[f32], geom: Conv2dGeom) -> Vec<f32> {
    to_f32(&conv2d_backward_weights_f64(&to_f64(x), &to_f64(g), geom))
}

fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// Calls `f(n, oy, ox, ky, kx, Some((iy, ix)))` for every output pixel and
/// tap, with `None` where the tap falls in the padding.
fn for_each_tap(
    g: Conv2dGeom,
    mut f: impl FnMut(usize, usize, usize, usize, usize, Option<(usize, usize)>),
) {
    for n in 0..g.n {
        for oy in 0..g.out_h() {
            for ox in 0..g.out_w() {
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        let iy = (oy * g.stride + ky).checked_sub(g.pad).filter(|&v| v < g.h);
                        let ix = (ox * g.stride + kx).checked_sub(g.pad).filter(|&v| v < g.w);
                        f(n, oy, ox, ky, kx, iy.zip(ix));
                    }
                }
            }
        }
    }
}

/// The convolution with the input padded by `pad_value`, no bias.
fn conv2d_f64(x: &[f64], w: &[f64], g: Conv2dGeom, pad_value: f64) -> Vec<f64> {
    g.check();
    assert_eq!(x.len(), g.input_shape().iter().product::<usize>());
    assert_eq!(w.len(), g.weight_shape().iter().product::<usize>());
    let (oh, ow) = (g.out_h(), g.out_w());
    let mut y = vec![0f64; g.n * g.o * oh * ow];
    for_each_tap(g, |n, oy, ox, ky, kx, at| {
        for o in 0..g.o {
            let mut acc = 0.0;
            for c in 0..g.c {
                let xv = match at {
                    Some((iy, ix)) => x[((n * g.c + c) * g.h + iy) * g.w + ix],
                    None => pad_value,
                };
                acc += xv * w[((o * g.c + c) * g.kh + ky) * g.kw + kx];
            }
            y[((n * g.o + o) * oh + oy) * ow + ox] += acc;
        }
    });
    y
}

fn conv2d_backward_data_f64(gy: &[f64], w: &[f64], g: Conv2dGeom) -> Vec<f64> {
    g.check();
    let (oh, ow) = (g.out_h(), g.out_w());
    assert_eq!(gy.len(), g.n * g.o * oh * ow);
    assert_eq!(w.len(), g.weight_shape().iter().product::<usize>());
    let mut dx = vec![0f64; g.n * g.c * g.h * g.w];
    for_each_tap(g, |n, oy, ox, ky, kx, at| {
        let Some((iy, ix)) = at else { return };
        for o in 0..g.o {
            let gv = gy[((n * g.o + o) * oh + oy) * ow + ox];
            for c in 0..g.c {
                dx[((n * g.c + c) * g.h + iy) * g.w + ix] +=
                    gv * w[((o * g.c + c) * g.kh + ky) * g.kw + kx];
            }
        }
    });
    dx
}

fn conv2d_backward_weights_f64(x: &[f64], gy: &[f64], g: Conv2dGeom) -> Vec<f64> {
    g.check();
    let (oh, ow) = (g.out_h(), g.out_w());
    assert_eq!(gy.len(), g.n * g.o * oh * ow);
    assert_eq!(x.len(), g.input_shape().iter().product::<usize>());
    let mut dw = vec![0f64; g.o * g.c * g.kh * g.kw];
    for_each_tap(g, |n, oy, ox, ky, kx, at| {
        let Some((iy, ix)) = at else { return };
        for o in 0..g.o {
            let gv = gy[((n * g.o + o) * oh + oy) * ow + ox];
            for c in 0..g.c {
                dw[((o * g.c + c) * g.kh + ky) * g.kw + kx] +=
                    gv * x[((n * g.c + c) * g.h + iy) * g.w + ix];
            }
        }
    });
    dw
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geoms() -> Vec<Conv2dGeom> {
        let geom = |n, c, h, w, o, k, stride, pad| Conv2dGeom {
            n,
            c,
            h,
            w,
            o,
            kh: k,
            kw: k,
            stride,
            pad,
        };
        vec![
            geom(1, 1, 5, 4, 1, 3, 1, 1),
            geom(2, 3, 7, 5, 2, 3, 2, 1),
            geom(1, 2, 6, 6, 3, 1, 1, 0),
            geom(2, 2, 5, 7, 2, 3, 2, 0),
            Conv2dGeom {
                kh: 2,
                kw: 3,
                ..geom(1, 2, 4, 5, 2, 1, 1, 1)
            },
        ]
    }

    /// Deterministic values in [-1, 1).
    fn values(seed: u64, len: usize) -> Vec<f64> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 11) as f64 / (1u64 << 52) as f64 - 1.0
            })
            .collect()
    }

    #[test]
    fn out_size_is_the_floor_formula() {
        let g = Conv2dGeom {
            n: 1,
            c: 1,
            h: 7,
            w: 5,
            o: 1,
            kh: 3,
            kw: 3,
            stride: 2,
            pad: 1,
        };
        assert_eq!((g.out_h(), g.out_w()), (4, 3));
        let g = Conv2dGeom {
            stride: 1,
            pad: 0,
            ..g
        };
        assert_eq!((g.out_h(), g.out_w()), (5, 3));
    }

    /// L = sum(y * r) is linear in x and in w, so dL/dx = backward_data(r, w)
    /// and dL/dw = backward_weights(x, r); central differences of a linear
    /// function are exact up to rounding.
    #[test]
    fn backwards_are_the_derivatives_of_the_forward() {
        let eps = 1e-3;
        for (t, g) in geoms().into_iter().enumerate() {
            let x = values(3 * t as u64 + 1, g.n * g.c * g.h * g.w);
            let w = values(3 * t as u64 + 2, g.o * g.c * g.kh * g.kw);
            let r = values(3 * t as u64 + 3, g.n * g.o * g.out_h() * g.out_w());
            let loss = |x: &[f64], w: &[f64]| -> f64 {
                conv2d_f64(x, w, g, 0.0)
                    .iter()
                    .zip(&r)
                    .map(|(a, b)| a * b)
                    .sum()
            };
            let dx = conv2d_backward_data_f64(&r, &w, g);
            let dw = conv2d_backward_weights_f64(&x, &r, g);
            for i in 0..x.len() {
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp[i] += eps;
                xm[i] -= eps;
                let fd = (loss(&xp, &w) - loss(&xm, &w)) / (2.0 * eps);
                assert!(
                    (fd - dx[i]).abs() < 1e-8,
                    "{g:?} dx[{i}]: fd {fd}, analytic {}",
                    dx[i]
                );
            }
            for i in 0..w.len() {
                let (mut wp, mut wm) = (w.clone(), w.clone());
                wp[i] += eps;
                wm[i] -= eps;
                let fd = (loss(&x, &wp) - loss(&x, &wm)) / (2.0 * eps);
                assert!(
                    (fd - dw[i]).abs() < 1e-8,
                    "{g:?} dw[{i}]: fd {fd}, analytic {}",
                    dw[i]
                );
            }
            // Not vacuous: some gradient is non-zero.
            assert!(dx.iter().chain(&dw).any(|v| v.abs() > 1e-3));
        }
    }

    /// One-padding adds, per padded tap, sum_c w[o, c, tap] to the zero-padded result.
    #[test]
    fn one_padding_adds_the_weight_sum_of_padded_taps() {
        let g = Conv2dGeom {
            n: 1,
            c: 3,
            h: 3,
            w: 3,
            o: 2,
            kh: 3,
            kw: 3,
            stride: 1,
            pad: 1,
        };
        let x: Vec<f32> = values(7, 27).iter().map(|&v| v as f32).collect();
        let w: Vec<f32> = values(8, 54).iter().map(|&v| v as f32).collect();
        let zero = binary_conv2d_cpu(&x, &w, g, None, PadMode::Zero);
        let one = binary_conv2d_cpu(&x, &w, g, None, PadMode::One);
        let sign = |v: f32| if v >= 0.0 { 1.0 } else { -1.0 };
        // Output (0, 0): taps with ky == 0 or kx == 0 are padded.
        for o in 0..2 {
            let mut extra = 0.0;
            for c in 0..3 {
                for ky in 0..3 {
                    for kx in 0..3 {
                        if ky == 0 || kx == 0 {
                            extra += sign(w[((o * 3 + c) * 3 + ky) * 3 + kx]);
                        }
                    }
                }
            }
            assert_eq!(one[o * 9] - zero[o * 9], extra);
        }
        // The centre output has no padded tap.
        assert_eq!(one[4], zero[4]);
    }
}
