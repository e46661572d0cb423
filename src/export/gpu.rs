//! The GPU runtime of a packed model, on the training kernels (pack_signs,
//! xnor_gemm, binary_conv2d, max pooling, the f32 GEMM on integer operands)
//! plus three small kernels of its own. Every value that crosses a kernel is
//! an exact integer (held in f32 below 2^24, or i32) until the logits, which
//! come from a table the host fills with the CPU runtime's own expression:
//! the GPU's predictions and logits equal the CPU's bit for bit.

use std::sync::Arc;

use super::format::{BpmModel, ConvShape, Layer, LogitParams, PIXEL_CONV_LIMIT, Value, words64};
use crate::gpu::{Gpu, GpuError, Kernel, Readback};
use crate::kernel;
use crate::ops::conv::Conv2dGeom;
use crate::ops::conv_gemm::binary_conv2d_gemm;
use crate::ops::gemm::{Epilogue, GemmVariant, Trans, f32_gemm, xnor_gemm};
use crate::ops::pack::{BitLayout, PackedBits, pack_signs, to_word_major_cpu};
use crate::ops::tune::{GemmFamily, gemm_variant};
use crate::ops::{groups_for, pool, reduce};
use crate::tensor::{DType, Tensor};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ThresholdParams {
    total: u32,
    c: u32,
    s: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PixelConvParams {
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
    total: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LutParams {
    total: u32,
    c: u32,
    span: u32,
    lo: i32,
}

const THRESHOLD: Kernel = kernel!(
    "export/threshold_sign.wgsl",
    "threshold_sign",
    [Read, Read, Read, ReadWrite]
);
const PIXEL_CONV: Kernel = kernel!(
    "export/pixel_conv_sign.wgsl",
    "pixel_conv_sign",
    [Read, Read, Read, Read, ReadWrite]
);
const LUT: Kernel = kernel!(
    "export/logit_lut.wgsl",
    "logit_lut",
    [Read, Read, ReadWrite]
);

/// Per-channel thresholds on the device: `thr` (i32 bit patterns) and
/// `flip` (0/1), both u32 `[C]`.
pub struct DeviceThreshold {
    pub thr: Tensor,
    pub flip: Tensor,
}

impl DeviceThreshold {
    /// Thresholds for values below 2^24 in magnitude: clamping to the i32
    /// range changes no comparison with them.
    pub fn new(gpu: &Gpu, threshold: &[i64], flip: &[bool]) -> Result<Self, GpuError> {
        let t: Vec<u32> = threshold
            .iter()
            .map(|&t| t.clamp(i32::MIN as i64, i32::MAX as i64) as i32 as u32)
            .collect();
        Self::from_words(gpu, &t, flip)
    }

    /// 64-bit thresholds for [`pixel_conv_sign`], as pairs `(hi, lo)` with
    /// `t = hi * 2^15 + lo`, `0 <= lo < 2^15`: `thr` is u32 `[2C]`. Clamping
    /// to `+-(2^45 + 1)` changes no comparison with a pixel convolution's sums.
    pub fn wide(gpu: &Gpu, threshold: &[i64], flip: &[bool]) -> Result<Self, GpuError> {
        let bound = PIXEL_CONV_LIMIT + 1;
        let t: Vec<u32> = threshold
            .iter()
            .flat_map(|&t| {
                let t = t.clamp(-bound, bound);
                [(t >> 15) as i32 as u32, (t & 0x7fff) as u32]
            })
            .collect();
        Self::from_words(gpu, &t, flip)
    }

    fn from_words(gpu: &Gpu, thr: &[u32], flip: &[bool]) -> Result<Self, GpuError> {
        Ok(DeviceThreshold {
            thr: Tensor::from_u32(gpu, &[thr.len()], thr)?,
            flip: Tensor::from_u32(
                gpu,
                &[flip.len()],
                &flip.iter().map(|&f| f as u32).collect::<Vec<_>>(),
            )?,
        })
    }
}

/// `y = +1` where `x >= thr[c]` (`x <= thr[c]` when `flip[c]`), else -1, for
/// `x` `[N, C, ...]` holding exact integers (|x| < 2^24).
pub fn threshold_sign(gpu: &Gpu, x: &Tensor, t: &DeviceThreshold) -> Result<Tensor, GpuError> {
    let s = x.shape();
    let (c, inner) = (s[1], s[2..].iter().product::<usize>());
    assert_eq!(
        t.thr.numel(),
        c,
        "threshold_sign: {c} channels vs {:?}",
        t.thr
    );
    let y = Tensor::empty(gpu, s, DType::F32)?;
    let params = ThresholdParams {
        total: x.numel() as u32,
        c: c as u32,
        s: inner as u32,
        _pad: 0,
    };
    gpu.launch(
        &THRESHOLD,
        &[("WG", 64.0)],
        &params,
        &[x.binding(), t.thr.binding(), t.flip.binding(), y.binding()],
        groups_for(gpu, x.numel(), 64),
    );
    Ok(y)
}

/// CPU reference of [`threshold_sign`] on `[N, C, S]`.
pub fn threshold_sign_cpu(
    x: &[f32],
    [_, c, s]: [usize; 3],
    thr: &[i64],
    flip: &[bool],
) -> Vec<f32> {
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let ch = (i / s) % c;
            let v = v as i64;
            let on = if flip[ch] { v <= thr[ch] } else { v >= thr[ch] };
            if on { 1.0 } else { -1.0 }
        })
        .collect()
}

/// The integer first convolution fused with its threshold:
/// `s = sum_{c, ky, kx inside} x * q[o, c, ky, kx]` exactly (as two i32
/// words) over `x` `[N, C, H, W]` (exact integers, `2p - 255`), `y = +1`
/// where `s >= thr[o]` (`<=` when `flip[o]`), else -1. `q` is u32
/// `[O, C, KH, KW]` holding i32 bit patterns with `|q| <= 2^30` and
/// `255 * sum |q[o]| <= 2^45`; `t` from [`DeviceThreshold::wide`].
pub fn pixel_conv_sign(
    gpu: &Gpu,
    x: &Tensor,
    q: &Tensor,
    shape: &ConvShape,
    t: &DeviceThreshold,
) -> Result<Tensor, GpuError> {
    let &[n, c, h, w] = x.shape() else {
        panic!("pixel_conv_sign: x {:?} is not [N, C, H, W]", x.shape());
    };
    assert_eq!(c, shape.in_c, "pixel_conv_sign: channels");
    assert_eq!(
        t.thr.numel(),
        2 * shape.out,
        "pixel_conv_sign: wide thresholds"
    );
    assert_eq!(
        q.numel(),
        shape.out * c * shape.taps(),
        "pixel_conv_sign: weights"
    );
    let (oh, ow) = shape.out_hw(h, w).expect("pixel_conv_sign: kernel fits");
    let y = Tensor::empty(gpu, &[n, shape.out, oh, ow], DType::F32)?;
    let params = PixelConvParams {
        n: n as u32,
        c: c as u32,
        h: h as u32,
        w: w as u32,
        o: shape.out as u32,
        kh: shape.kh as u32,
        kw: shape.kw as u32,
        stride: shape.stride as u32,
        pad: shape.pad as u32,
        oh: oh as u32,
        ow: ow as u32,
        total: y.numel() as u32,
    };
    gpu.launch(
        &PIXEL_CONV,
        &[("WG", 64.0)],
        &params,
        &[
            x.binding(),
            q.binding(),
            t.thr.binding(),
            t.flip.binding(),
            y.binding(),
        ],
        groups_for(gpu, y.numel(), 64),
    );
    Ok(y)
}

/// CPU reference of [`pixel_conv_sign`].
pub fn pixel_conv_sign_cpu(
    x: &[f32],
    [n, c, h, w]: [usize; 4],
    q: &[i32],
    shape: &ConvShape,
    thr: &[i64],
    flip: &[bool],
) -> Vec<f32> {
    let (oh, ow) = shape.out_hw(h, w).expect("kernel fits");
    let mut y = Vec::with_capacity(n * shape.out * oh * ow);
    for b in 0..n {
        for o in 0..shape.out {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = 0i64;
                    for ch in 0..c {
                        for ky in 0..shape.kh {
                            for kx in 0..shape.kw {
                                let iy = (oy * shape.stride + ky) as isize - shape.pad as isize;
                                let ix = (ox * shape.stride + kx) as isize - shape.pad as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let a = x[((b * c + ch) * h + iy as usize) * w + ix as usize];
                                let wq = q[((o * c + ch) * shape.kh + ky) * shape.kw + kx];
                                s += a as i64 * wq as i64;
                            }
                        }
                    }
                    let on = if flip[o] { s <= thr[o] } else { s >= thr[o] };
                    y.push(if on { 1.0 } else { -1.0 });
                }
            }
        }
    }
    y
}

/// `logits[n, c] = table[c, s[n, c] - lo]` for `s` `[N, C]` holding exact
/// integers in `[lo, lo + span)`; `table` is `[C, span]`.
pub fn logit_lut(gpu: &Gpu, s: &Tensor, table: &Tensor, lo: i32) -> Result<Tensor, GpuError> {
    let c = s.shape()[1];
    let span = table.numel() / c;
    assert_eq!(
        table.numel(),
        c * span,
        "logit_lut: table {table:?} vs {c} classes"
    );
    let y = Tensor::empty(gpu, s.shape(), DType::F32)?;
    let params = LutParams {
        total: s.numel() as u32,
        c: c as u32,
        span: span as u32,
        lo,
    };
    gpu.launch(
        &LUT,
        &[("WG", 64.0)],
        &params,
        &[s.binding(), table.binding(), y.binding()],
        groups_for(gpu, s.numel(), 64),
    );
    Ok(y)
}

/// CPU reference of [`logit_lut`].
pub fn logit_lut_cpu(s: &[f32], c: usize, table: &[f32], lo: i32) -> Vec<f32> {
    let span = table.len() / c;
    s.iter()
        .enumerate()
        .map(|(i, &v)| {
            let j = (v as i32 - lo).clamp(0, span as i32 - 1) as usize;
            table[(i % c) * span + j]
        })
        .collect()
}

/// The logit table `[C, hi - lo + 1]` of a logits layer over `[lo, hi]`.
pub fn logit_table(p: &LogitParams, lo: i32, hi: i32) -> Vec<f32> {
    let c = p.alpha.len();
    let mut t = Vec::with_capacity(c * (hi - lo + 1) as usize);
    for class in 0..c {
        t.extend((lo..=hi).map(|s| p.logit(class, s as i64)));
    }
    t
}

/// Largest logit table the GPU runtime builds (entries).
const MAX_TABLE: i64 = 1 << 24;

enum GpuLayer {
    /// `[out, inputs]` +-1 weights for an f32 GEMM whose sums stay exact integers.
    PixelDense {
        w: Tensor,
    },
    PixelConvSign {
        shape: ConvShape,
        q: Tensor,
        t: DeviceThreshold,
    },
    BinaryDense {
        w: PackedBits,
    },
    BinaryConv {
        shape: ConvShape,
        w: PackedBits,
    },
    MaxPool2,
    Threshold(DeviceThreshold),
    Flatten,
    Logits {
        table: Tensor,
        lo: i32,
    },
}

/// A `.bpm` model on the GPU.
pub struct GpuModel {
    gpu: Arc<Gpu>,
    input: [usize; 3],
    classes: usize,
    layers: Vec<GpuLayer>,
    xnor: GemmVariant,
    f32v: GemmVariant,
}

/// Errors building the GPU runtime.
#[derive(Debug, thiserror::Error)]
pub enum GpuModelError {
    #[error(transparent)]
    Gpu(#[from] GpuError),
    #[error(transparent)]
    Invalid(#[from] super::format::BpmError),
    #[error("layer {index}: {msg}")]
    Unsupported { index: usize, msg: String },
}

/// u64 words `[rows, words64(k)]` to u32 words `[rows, ceil(k / 32)]`.
fn to_u32_rows(words: &[u64], rows: usize, k: usize) -> Vec<u32> {
    let (kw64, kw32) = (words64(k), k.div_ceil(32));
    let mut out = Vec::with_capacity(rows * kw32);
    for r in 0..rows {
        for j in 0..kw32 {
            out.push((words[r * kw64 + j / 2] >> (32 * (j % 2))) as u32);
        }
    }
    out
}

impl GpuModel {
    /// Uploads a model, after [`BpmModel::validate`].
    pub fn new(gpu: &Arc<Gpu>, model: &BpmModel) -> Result<GpuModel, GpuModelError> {
        let values = model.validate()?;
        let xnor = gemm_variant(gpu, GemmFamily::Xnor)?;
        let f32v = gemm_variant(gpu, GemmFamily::F32)?;
        let mut layers = Vec::new();
        let mut i = 0;
        while i < model.layers.len() {
            let unsupported = |msg: &str| GpuModelError::Unsupported {
                index: i,
                msg: msg.to_string(),
            };
            let layer = match &model.layers[i] {
                Layer::PixelDense {
                    out,
                    inputs,
                    weights,
                } => {
                    if 255 * *inputs >= 1 << 24 {
                        return Err(unsupported(
                            "pixel_dense sums reach 2^24: not exact in the f32 GEMM",
                        ));
                    }
                    let kw = words64(*inputs);
                    let mut w = Vec::with_capacity(out * inputs);
                    for o in 0..*out {
                        for k in 0..*inputs {
                            let bit = weights[o * kw + k / 64] >> (k % 64) & 1;
                            w.push(if bit == 1 { 1.0 } else { -1.0 });
                        }
                    }
                    GpuLayer::PixelDense {
                        w: Tensor::from_f32(gpu, &[*out, *inputs], &w)?,
                    }
                }
                Layer::PixelConv { shape, weights, .. } => {
                    let Some(Layer::Threshold {
                        threshold, flip, ..
                    }) = model.layers.get(i + 1)
                    else {
                        return Err(unsupported(
                            "the GPU runtime needs a threshold right after pixel_conv",
                        ));
                    };
                    i += 1;
                    GpuLayer::PixelConvSign {
                        shape: *shape,
                        q: Tensor::from_u32(
                            gpu,
                            &[weights.len()],
                            &weights.iter().map(|&v| v as u32).collect::<Vec<_>>(),
                        )?,
                        t: DeviceThreshold::wide(gpu, threshold, flip)?,
                    }
                }
                Layer::BinaryDense {
                    out,
                    inputs,
                    weights,
                } => {
                    let rows = to_u32_rows(weights, *out, *inputs);
                    let layout = xnor.b_layout();
                    let words = match layout {
                        BitLayout::RowMajor => rows,
                        BitLayout::WordMajor => to_word_major_cpu(&rows, *out, inputs.div_ceil(32)),
                    };
                    let shape = match layout {
                        BitLayout::RowMajor => [*out, inputs.div_ceil(32)],
                        BitLayout::WordMajor => [inputs.div_ceil(32), *out],
                    };
                    GpuLayer::BinaryDense {
                        w: PackedBits {
                            words: Tensor::from_u32(gpu, &shape, &words)?,
                            rows: *out,
                            k: *inputs,
                            layout,
                        },
                    }
                }
                Layer::BinaryConv { shape, weights } => {
                    let rows = shape.out * shape.taps();
                    let words = to_u32_rows(weights, rows, shape.in_c);
                    GpuLayer::BinaryConv {
                        shape: *shape,
                        w: PackedBits {
                            words: Tensor::from_u32(gpu, &[rows, shape.in_c.div_ceil(32)], &words)?,
                            rows,
                            k: shape.in_c,
                            layout: BitLayout::RowMajor,
                        },
                    }
                }
                Layer::MaxPool2 => GpuLayer::MaxPool2,
                Layer::Threshold {
                    threshold, flip, ..
                } => {
                    let Some(Value::Int { lo, hi, .. }) = i.checked_sub(1).map(|j| &values[j])
                    else {
                        unreachable!("a threshold follows integers");
                    };
                    if lo.abs().max(hi.abs()) >= 1 << 24 {
                        return Err(unsupported(
                            "integers beyond 2^24 are not exact in f32 device tensors",
                        ));
                    }
                    GpuLayer::Threshold(DeviceThreshold::new(gpu, threshold, flip)?)
                }
                Layer::Flatten => GpuLayer::Flatten,
                Layer::Logits(p) => {
                    let Some(Value::Int { lo, hi, .. }) = i.checked_sub(1).map(|j| &values[j])
                    else {
                        unreachable!("logits follow integers");
                    };
                    let span = hi - lo + 1;
                    if span * p.alpha.len() as i64 > MAX_TABLE {
                        return Err(unsupported("the logit table would exceed 2^24 entries"));
                    }
                    let table = logit_table(p, *lo as i32, *hi as i32);
                    GpuLayer::Logits {
                        table: Tensor::from_f32(gpu, &[p.alpha.len(), span as usize], &table)?,
                        lo: *lo as i32,
                    }
                }
            };
            layers.push(layer);
            i += 1;
        }
        Ok(GpuModel {
            gpu: gpu.clone(),
            input: model.input,
            classes: model.classes,
            layers,
            xnor,
            f32v,
        })
    }

    /// Records the forward of `n` images (`[n, C, H, W]` pixel bytes) and
    /// returns `(logits [n, classes], preds u32 [n])` on the device.
    pub fn forward(&self, pixels: &[u8], n: usize) -> Result<(Tensor, Tensor), GpuError> {
        let gpu = &*self.gpu;
        let [c, h, w] = self.input;
        assert_eq!(pixels.len(), n * c * h * w, "batch size");
        let a: Vec<f32> = pixels.iter().map(|&p| 2.0 * p as f32 - 255.0).collect();
        let mut x = Tensor::from_f32(gpu, &[n, c, h, w], &a)?;
        for layer in &self.layers {
            x = match layer {
                GpuLayer::PixelDense { w } => {
                    let k = w.shape()[1];
                    f32_gemm(
                        gpu,
                        &x.reshape(&[n, k]),
                        Trans::N,
                        w,
                        Trans::T,
                        Epilogue::default(),
                        None,
                        self.f32v,
                    )?
                }
                GpuLayer::PixelConvSign { shape, q, t } => pixel_conv_sign(gpu, &x, q, shape, t)?,
                GpuLayer::BinaryDense { w } => {
                    let xp = pack_signs(gpu, &x, n, w.k, 1, BitLayout::RowMajor)?;
                    xnor_gemm(gpu, &xp, w, None, self.xnor)?
                }
                GpuLayer::BinaryConv { shape, w } => {
                    let s = x.shape().to_vec();
                    let xp = pack_signs(gpu, &x, n, s[1], s[2] * s[3], BitLayout::RowMajor)?;
                    let geom = Conv2dGeom {
                        n,
                        c: s[1],
                        h: s[2],
                        w: s[3],
                        o: shape.out,
                        kh: shape.kh,
                        kw: shape.kw,
                        stride: shape.stride,
                        pad: shape.pad,
                    };
                    binary_conv2d_gemm(gpu, &xp, w, geom, None)?
                }
                GpuLayer::MaxPool2 => pool::max_pool2x2(gpu, &x)?.0,
                GpuLayer::Threshold(t) => threshold_sign(gpu, &x, t)?,
                GpuLayer::Flatten => x.reshape(&[n, x.numel() / n]),
                GpuLayer::Logits { table, lo } => logit_lut(gpu, &x, table, *lo)?,
            };
        }
        let preds = reduce::argmax_rows(gpu, &x)?;
        Ok((x, preds))
    }

    /// Predictions and logits of `n` images, in device batches of `batch`,
    /// all recorded before the first read-back.
    pub fn run(
        &self,
        pixels: &[u8],
        n: usize,
        batch: usize,
    ) -> Result<super::cpu::Outputs, GpuError> {
        let p: usize = self.input.iter().product();
        let c = self.classes;
        let mut pending: Vec<(Readback, Readback, usize)> = Vec::new();
        for start in (0..n).step_by(batch.max(1)) {
            let m = batch.min(n - start);
            let (logits, preds) = self.forward(&pixels[start * p..(start + m) * p], m)?;
            pending.push((
                self.gpu.read_async(logits.buffer(), (m * c * 4) as u64),
                self.gpu.read_async(preds.buffer(), (m * 4) as u64),
                m,
            ));
        }
        self.gpu.flush();
        let mut out = super::cpu::Outputs {
            preds: Vec::with_capacity(n),
            logits: Vec::with_capacity(n * c),
        };
        for (l, pr, m) in pending {
            let l = l.wait(&self.gpu)?;
            let pr = pr.wait(&self.gpu)?;
            out.logits
                .extend_from_slice(&bytemuck::pod_collect_to_vec::<u8, f32>(&l[..m * c * 4]));
            out.preds
                .extend_from_slice(&bytemuck::pod_collect_to_vec::<u8, u32>(&pr[..m * 4]));
        }
        Ok(out)
    }
}
