//! The CPU runtime of a packed model: integer arithmetic end to end (u64
//! XNOR-popcount with the CPU's vector popcount where it has one, i32/i64 sums
//! for the pixel layers), then the logits in f32. Images run in parallel on
//! `std::thread::scope` threads.

use super::format::{BpmError, BpmModel, ConvShape, Layer, LogitParams, words64};
use crate::ops::gemm::popcount_xor;

/// A layer prepared for the CPU: weights laid out for the inner loops.
enum Prepared {
    PixelDense {
        inputs: usize,
        /// `[out, inputs]` as +-1.
        w: Vec<i16>,
    },
    PixelConv {
        shape: ConvShape,
        /// `[out, in_c, kh, kw]` as f64: every product `(2p - 255) * q` and
        /// every partial sum is an integer below 2^46, so f64 holds them
        /// exactly in any order, and the loops vectorise.
        w: Vec<f64>,
    },
    BinaryDense {
        inputs: usize,
        w: Vec<u64>,
    },
    BinaryConv {
        shape: ConvShape,
        /// Transposed to `[kh * kw, words64(in_c), out]`, so one input word
        /// meets every output channel's word in a contiguous (vectorisable) run.
        wt: Vec<u64>,
    },
    MaxPool2,
    Threshold {
        t: Vec<i64>,
        flip: Vec<bool>,
    },
    Flatten,
    Logits(LogitParams),
}

/// One image's value between layers.
enum Act {
    /// `2p - 255` as `[C, H, W]`.
    Pixels(Vec<i32>, [usize; 3]),
    /// Integers `[C, H, W]`, or a vector `[K]` when the flag is set.
    Int(Vec<i64>, [usize; 3], bool),
    /// Bits of `[C, H, W]` packed along channels: pixel p's channels in
    /// words `p * words64(C) ..`.
    BitsChw(Vec<u64>, [usize; 3]),
    /// Bits of a vector of `k`, packed in order.
    BitsFlat(Vec<u64>, usize),
    Logits(Vec<f32>),
}

/// A `.bpm` model ready to run on the CPU.
pub struct CpuModel {
    input: [usize; 3],
    classes: usize,
    layers: Vec<Prepared>,
}

/// Predictions and logits of a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Outputs {
    /// Index of the first maximum logit per image.
    pub preds: Vec<u32>,
    /// `[n, classes]`.
    pub logits: Vec<f32>,
}

/// Index of the first maximum (NaN never wins, as `argmax_rows`).
pub fn argmax(v: &[f32]) -> u32 {
    let mut best = v[0];
    let mut arg = 0;
    for (j, &x) in v.iter().enumerate().skip(1) {
        if x > best {
            best = x;
            arg = j;
        }
    }
    arg as u32
}

impl CpuModel {
    /// Prepares a model, after [`BpmModel::validate`] (which a model from
    /// [`BpmModel::from_bytes`] or an export passes).
    pub fn new(model: &BpmModel) -> Result<CpuModel, BpmError> {
        model.validate()?;
        let layers = model
            .layers
            .iter()
            .map(|l| match l {
                Layer::PixelDense {
                    out,
                    inputs,
                    weights,
                } => {
                    let kw = words64(*inputs);
                    let mut w = Vec::with_capacity(out * inputs);
                    for o in 0..*out {
                        for i in 0..*inputs {
                            let bit = weights[o * kw + i / 64] >> (i % 64) & 1;
                            w.push(if bit == 1 { 1 } else { -1 });
                        }
                    }
                    Prepared::PixelDense { inputs: *inputs, w }
                }
                Layer::PixelConv { shape, weights, .. } => Prepared::PixelConv {
                    shape: *shape,
                    w: weights.iter().map(|&q| q as f64).collect(),
                },
                Layer::BinaryDense {
                    inputs, weights, ..
                } => Prepared::BinaryDense {
                    inputs: *inputs,
                    w: weights.clone(),
                },
                Layer::BinaryConv { shape, weights } => {
                    let l = shape.taps() * words64(shape.in_c);
                    let mut wt = vec![0u64; weights.len()];
                    for o in 0..shape.out {
                        for k in 0..l {
                            wt[k * shape.out + o] = weights[o * l + k];
                        }
                    }
                    Prepared::BinaryConv { shape: *shape, wt }
                }
                Layer::MaxPool2 => Prepared::MaxPool2,
                Layer::Threshold {
                    threshold, flip, ..
                } => Prepared::Threshold {
                    t: threshold.clone(),
                    flip: flip.clone(),
                },
                Layer::Flatten => Prepared::Flatten,
                Layer::Logits(p) => Prepared::Logits(p.clone()),
            })
            .collect();
        Ok(CpuModel {
            input: model.input,
            classes: model.classes,
            layers,
        })
    }

    /// Pixels per image.
    pub fn pixels(&self) -> usize {
        self.input.iter().product()
    }

    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The logits of one image of pixel bytes `[C, H, W]`.
    pub fn logits(&self, pixels: &[u8]) -> Vec<f32> {
        assert_eq!(pixels.len(), self.pixels(), "image size");
        let mut act = Act::Pixels(
            pixels.iter().map(|&p| 2 * p as i32 - 255).collect(),
            self.input,
        );
        for layer in &self.layers {
            act = step(layer, act);
        }
        match act {
            Act::Logits(l) => l,
            _ => unreachable!("a validated model ends in logits"),
        }
    }

    /// Predictions and logits of `n` images (`pixels` is `[n, C, H, W]`),
    /// on up to `threads` threads (0: all the CPU has).
    pub fn run(&self, pixels: &[u8], n: usize, threads: usize) -> Outputs {
        let p = self.pixels();
        assert_eq!(pixels.len(), n * p, "batch size");
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |t| t.get())
        } else {
            threads
        };
        let c = self.classes;
        let mut logits = vec![0f32; n * c];
        let per = n.div_ceil(threads.max(1)).max(1);
        if threads <= 1 || n <= 1 {
            for (i, out) in logits.chunks_mut(c).enumerate() {
                out.copy_from_slice(&self.logits(&pixels[i * p..(i + 1) * p]));
            }
        } else {
            std::thread::scope(|s| {
                for (t, chunk) in logits.chunks_mut(per * c).enumerate() {
                    s.spawn(move || {
                        for (j, out) in chunk.chunks_mut(c).enumerate() {
                            let i = t * per + j;
                            out.copy_from_slice(&self.logits(&pixels[i * p..(i + 1) * p]));
                        }
                    });
                }
            });
        }
        let preds = logits.chunks(c).map(argmax).collect();
        Outputs { preds, logits }
    }
}

/// `pops[o] = sum over (offset, x) in taps of popcount(x xor wt[offset + o])`:
/// the XNOR-popcount of one output pixel against every output channel, with
/// the CPU's vector popcount (AVX-512 VPOPCNTDQ) or scalar `popcnt` where it
/// has them, detected at run time as `ops::gemm::popcount_xor` does.
fn xnor_pops(taps: &[(usize, u64)], wt: &[u64], pops: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512vpopcntdq")
            && std::is_x86_feature_detected!("avx512f")
        {
            // SAFETY: the features were detected at run time.
            return unsafe { xnor_pops_avx512(taps, wt, pops) };
        }
        if std::is_x86_feature_detected!("popcnt") {
            // SAFETY: the feature was detected at run time.
            return unsafe { xnor_pops_popcnt(taps, wt, pops) };
        }
    }
    xnor_pops_generic(taps, wt, pops)
}

#[inline(always)]
fn xnor_pops_generic(taps: &[(usize, u64)], wt: &[u64], pops: &mut [u32]) {
    pops.fill(0);
    let o = pops.len();
    for &(off, x) in taps {
        for (p, &w) in pops.iter_mut().zip(&wt[off..off + o]) {
            *p += (x ^ w).count_ones();
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vpopcntdq")]
unsafe fn xnor_pops_avx512(taps: &[(usize, u64)], wt: &[u64], pops: &mut [u32]) {
    xnor_pops_generic(taps, wt, pops)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
unsafe fn xnor_pops_popcnt(taps: &[(usize, u64)], wt: &[u64], pops: &mut [u32]) {
    xnor_pops_generic(taps, wt, pops)
}

fn step(layer: &Prepared, act: Act) -> Act {
    match (layer, act) {
        (Prepared::PixelDense { inputs, w }, Act::Pixels(a, _)) => {
            let a: Vec<i16> = a.iter().map(|&v| v as i16).collect();
            let s: Vec<i64> = w
                .chunks(*inputs)
                .map(|row| {
                    row.iter()
                        .zip(&a)
                        .map(|(&x, &y)| (x as i32) * (y as i32))
                        .sum::<i32>() as i64
                })
                .collect();
            let k = s.len();
            Act::Int(s, [k, 1, 1], true)
        }
        (Prepared::PixelConv { shape, w }, Act::Pixels(a, [c, h, wd])) => {
            let (oh, ow) = shape.out_hw(h, wd).expect("validated geometry");
            let (ph, pw) = (h + 2 * shape.pad, wd + 2 * shape.pad);
            // Zero padding made explicit, so the inner loop has no bounds tests.
            let mut xp = vec![0f64; c * ph * pw];
            for ch in 0..c {
                for y in 0..h {
                    for x in 0..wd {
                        xp[(ch * ph + y + shape.pad) * pw + x + shape.pad] =
                            a[(ch * h + y) * wd + x] as f64;
                    }
                }
            }
            let st = shape.stride;
            let mut acc = vec![0f64; shape.out * oh * ow];
            for (o, plane) in acc.chunks_mut(oh * ow).enumerate() {
                for ch in 0..c {
                    for ky in 0..shape.kh {
                        for kx in 0..shape.kw {
                            let q = w[((o * c + ch) * shape.kh + ky) * shape.kw + kx];
                            for (oy, row) in plane.chunks_mut(ow).enumerate() {
                                let src = &xp[(ch * ph + oy * st + ky) * pw + kx..];
                                for (ox, v) in row.iter_mut().enumerate() {
                                    *v += src[ox * st] * q;
                                }
                            }
                        }
                    }
                }
            }
            Act::Int(
                acc.into_iter().map(|v| v as i64).collect(),
                [shape.out, oh, ow],
                false,
            )
        }
        (Prepared::BinaryDense { inputs, w }, Act::BitsFlat(x, _)) => {
            let kw = words64(*inputs);
            let s: Vec<i64> = w
                .chunks(kw)
                .map(|row| *inputs as i64 - 2 * popcount_xor(&x, row) as i64)
                .collect();
            let k = s.len();
            Act::Int(s, [k, 1, 1], true)
        }
        (Prepared::BinaryConv { shape, wt }, Act::BitsChw(x, [c, h, wd])) => {
            let (oh, ow) = shape.out_hw(h, wd).expect("validated geometry");
            let cw = words64(c);
            let o = shape.out;
            let mut out = vec![0i64; o * oh * ow];
            let mut taps: Vec<(usize, u64)> = Vec::with_capacity(shape.taps() * cw);
            let mut pops = vec![0u32; o];
            for oy in 0..oh {
                for ox in 0..ow {
                    // The input words of the taps inside the image; taps in
                    // the zero padding contribute nothing.
                    taps.clear();
                    for ky in 0..shape.kh {
                        let iy = (oy * shape.stride + ky) as isize - shape.pad as isize;
                        if iy < 0 || iy >= h as isize {
                            continue;
                        }
                        for kx in 0..shape.kw {
                            let ix = (ox * shape.stride + kx) as isize - shape.pad as isize;
                            if ix < 0 || ix >= wd as isize {
                                continue;
                            }
                            let p = iy as usize * wd + ix as usize;
                            let t = ky * shape.kw + kx;
                            for j in 0..cw {
                                taps.push(((t * cw + j) * o, x[p * cw + j]));
                            }
                        }
                    }
                    xnor_pops(&taps, wt, &mut pops);
                    let valid = (taps.len() / cw * c) as i64;
                    for (ch, &pop) in pops.iter().enumerate() {
                        out[(ch * oh + oy) * ow + ox] = valid - 2 * pop as i64;
                    }
                }
            }
            Act::Int(out, [o, oh, ow], false)
        }
        (Prepared::MaxPool2, Act::Int(x, [c, h, w], false)) => {
            let (ho, wo) = (h / 2, w / 2);
            let mut out = vec![0i64; c * ho * wo];
            for ch in 0..c {
                for i in 0..ho {
                    for j in 0..wo {
                        let at = |y: usize, x_: usize| x[(ch * h + y) * w + x_];
                        out[(ch * ho + i) * wo + j] = at(2 * i, 2 * j)
                            .max(at(2 * i, 2 * j + 1))
                            .max(at(2 * i + 1, 2 * j))
                            .max(at(2 * i + 1, 2 * j + 1));
                    }
                }
            }
            Act::Int(out, [c, ho, wo], false)
        }
        (Prepared::Threshold { t, flip }, Act::Int(x, [c, h, w], vector)) => {
            let bit = |ch: usize, s: i64| {
                if flip[ch] { s <= t[ch] } else { s >= t[ch] }
            };
            if vector {
                let mut words = vec![0u64; words64(c)];
                for (ch, &s) in x.iter().enumerate() {
                    words[ch / 64] |= (bit(ch, s) as u64) << (ch % 64);
                }
                Act::BitsFlat(words, c)
            } else {
                let cw = words64(c);
                let plane = h * w;
                let mut words = vec![0u64; plane * cw];
                for ch in 0..c {
                    for (p, &s) in x[ch * plane..(ch + 1) * plane].iter().enumerate() {
                        words[p * cw + ch / 64] |= (bit(ch, s) as u64) << (ch % 64);
                    }
                }
                Act::BitsChw(words, [c, h, w])
            }
        }
        (Prepared::Flatten, Act::BitsChw(x, [c, h, w])) => {
            let (cw, plane) = (words64(c), h * w);
            let k = c * plane;
            let mut out = vec![0u64; words64(k)];
            for p in 0..plane {
                for ch in 0..c {
                    if x[p * cw + ch / 64] >> (ch % 64) & 1 == 1 {
                        let i = ch * plane + p;
                        out[i / 64] |= 1 << (i % 64);
                    }
                }
            }
            Act::BitsFlat(out, k)
        }
        (Prepared::Flatten, Act::BitsFlat(x, k)) => Act::BitsFlat(x, k),
        (Prepared::Logits(p), Act::Int(s, _, _)) => {
            Act::Logits(s.iter().enumerate().map(|(c, &v)| p.logit(c, v)).collect())
        }
        _ => unreachable!("a validated model chains its layers"),
    }
}
