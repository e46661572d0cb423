//! From a float checkpoint to a packed model: sign bits of the binary
//! weights, integer weights for the first convolution, and batch norm +
//! sign folded into per-channel integer thresholds.
//!
//! The fold is exact with respect to a stated f32 expression: for a channel
//! whose integer pre-activation is `s`, the float model's next sign is
//! `bn(v(s)) >= 0` with `bn(x) = gamma * (x - mean) * invstd + beta`,
//! `invstd = 1 / sqrt(var + eps)` in f32 (the order of `bn_apply.wgsl`), and
//! `v(s)` the real value of `s`:
//! - after an XNOR layer, `v(s) = f32(s) * alpha` (the XNOR kernels' epilogue);
//! - after `bmlp`'s first layer, `v(s) = round_f32(s * alpha / 255)`, the
//!   exact value of `sum_i x_i alpha sign(w_i)` with `x_i = (2 p_i - 255) / 255`;
//! - after `bcnn`'s first convolution, `v(s) = round_f32(s / (255 * 2^shift))`.
//!
//! Each step of `bn(v(s))` rounds monotonically, so the predicate is
//! monotone in `s` (non-decreasing for gamma > 0, non-increasing for
//! gamma < 0, constant for gamma = 0), and a binary search over the integers
//! the layer can produce finds where it changes: the threshold reproduces
//! the predicate at every reachable `s`, bit for bit. Max pooling between the
//! layer and the batch norm commutes with `v` (monotone), so the threshold
//! applies to the pooled integer.

use std::collections::BTreeMap;

use super::format::{
    BpmModel, ConvShape, Layer, LayerSpec, LogitParams, PIXEL_CONV_LIMIT, PIXEL_CONV_MAX_WEIGHT,
    Value, bn_eval_f32, words64,
};
use super::plan::Description;
use crate::ops::norm::BN_EPS;

/// How an integer pre-activation maps to the float model's real value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RealValue {
    /// `v(s) = f32(s) * alpha` in f32.
    Scaled { alpha: f32 },
    /// `v(s) = round_f32((s * num) / den)`, computed in f64 where `s * num` is exact.
    Ratio { num: f64, den: f64 },
}

impl RealValue {
    /// The real value of `s`.
    pub fn of(&self, s: i64) -> f32 {
        match *self {
            RealValue::Scaled { alpha } => s as f32 * alpha,
            RealValue::Ratio { num, den } => ((s as f64 * num) / den) as f32,
        }
    }
}

/// Batch-norm parameters of one channel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BnChannel {
    pub gamma: f32,
    pub beta: f32,
    pub mean: f32,
    pub var: f32,
    pub eps: f32,
}

impl BnChannel {
    /// The sign the float model takes: `bn(x) >= 0`.
    pub fn sign_positive(&self, x: f32) -> bool {
        bn_eval_f32(x, self.gamma, self.beta, self.mean, self.var, self.eps) >= 0.0
    }

    fn finite(&self) -> bool {
        [self.gamma, self.beta, self.mean, self.var, self.eps]
            .iter()
            .all(|v| v.is_finite())
            && self.var + self.eps > 0.0
    }
}

/// `(threshold, flip)` such that, for every integer `s` in `[lo, hi]`,
/// `pred(s) == if flip { s <= threshold } else { s >= threshold }`, given
/// that `pred` is monotone on `[lo, hi]`. Constant predicates give
/// `threshold = lo` (always) or `hi + 1` (never), unflipped.
pub fn fold_threshold(lo: i64, hi: i64, pred: impl Fn(i64) -> bool) -> (i64, bool) {
    assert!(lo <= hi);
    match (pred(lo), pred(hi)) {
        (true, true) => (lo, false),
        (false, false) => (hi + 1, false),
        (false, true) => {
            // Smallest s with pred(s): pred(a) false, pred(b) true.
            let (mut a, mut b) = (lo, hi);
            while b - a > 1 {
                let m = a + (b - a) / 2;
                if pred(m) { b = m } else { a = m }
            }
            (b, false)
        }
        (true, false) => {
            // Largest s with pred(s): pred(a) true, pred(b) false.
            let (mut a, mut b) = (lo, hi);
            while b - a > 1 {
                let m = a + (b - a) / 2;
                if pred(m) { a = m } else { b = m }
            }
            (a, true)
        }
    }
}

/// Errors exporting a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    NotExportable(String),
    #[error("{layer}: {msg}")]
    Parameters { layer: String, msg: String },
}

/// Mean |w| over each of `rows` rows: the XNOR-Net scale alpha, the mean
/// taken in f64 and rounded once to f32.
pub fn row_alpha(w: &[f32], rows: usize) -> Vec<f32> {
    let k = w.len() / rows;
    w.chunks(k)
        .map(|r| (r.iter().map(|v| v.abs() as f64).sum::<f64>() / k as f64) as f32)
        .collect()
}

/// Sign bits of `[rows, k]` row-major values, `words64(k)` words per row,
/// element i at bit `i % 64` of word `i / 64`, bit 1 for `w >= 0`.
pub fn pack_rows(w: &[f32], rows: usize, k: usize) -> Vec<u64> {
    let kw = words64(k);
    let mut out = vec![0u64; rows * kw];
    for r in 0..rows {
        for i in 0..k {
            if w[r * k + i] >= 0.0 {
                out[r * kw + i / 64] |= 1 << (i % 64);
            }
        }
    }
    out
}

/// Sign bits of conv weights `[O, C, KH, KW]` as `[O, KH*KW, words64(C)]`.
pub fn pack_conv(w: &[f32], s: &ConvShape) -> Vec<u64> {
    let (taps, cw) = (s.taps(), words64(s.in_c));
    let mut out = vec![0u64; s.out * taps * cw];
    for o in 0..s.out {
        for c in 0..s.in_c {
            for t in 0..taps {
                if w[(o * s.in_c + c) * taps + t] >= 0.0 {
                    out[(o * taps + t) * cw + c / 64] |= 1 << (c % 64);
                }
            }
        }
    }
    out
}

/// Integer weights `q = round(w * 2^shift)` per output channel, with the
/// largest shift (at most 62) that keeps every `|q| <= 2^30` and
/// `255 * sum |q| <= 2^45`: the weights keep 31 bits relative to the
/// channel's largest, more than an f32 product carries.
/// Returns `(q, shift per channel)`.
pub fn quantize_rows(w: &[f32], rows: usize) -> (Vec<i32>, Vec<u32>) {
    let k = w.len() / rows;
    let mut q = Vec::with_capacity(w.len());
    let mut shifts = Vec::with_capacity(rows);
    for r in w.chunks(k) {
        let fits = |shift: u32| -> bool {
            let scale = (shift as f64).exp2();
            let q: Vec<f64> = r
                .iter()
                .map(|v| (*v as f64 * scale).round().abs())
                .collect();
            q.iter().all(|&v| v <= PIXEL_CONV_MAX_WEIGHT as f64)
                && 255.0 * q.iter().sum::<f64>() <= PIXEL_CONV_LIMIT as f64
        };
        let mut shift = 0;
        while shift < 62 && fits(shift + 1) {
            shift += 1;
        }
        let scale = (shift as f64).exp2();
        q.extend(r.iter().map(|v| (*v as f64 * scale).round() as i32));
        shifts.push(shift);
    }
    (q, shifts)
}

/// Exports a float checkpoint's tensors (by name) as a packed model,
/// following the model's [`Description`]. `tensors` must hold exactly the
/// description's tensors with their shapes (as `Checkpoint::take_strict` ensures).
pub fn export_model(
    desc: &Description,
    tensors: &BTreeMap<String, Vec<f32>>,
) -> Result<BpmModel, ExportError> {
    if let Some(why) = &desc.not_exportable {
        return Err(ExportError::NotExportable(why.clone()));
    }
    let get = |name: &str| -> &[f32] {
        tensors
            .get(name)
            .unwrap_or_else(|| panic!("export: tensor {name} missing (checked by the caller)"))
    };
    let mut layers = Vec::new();
    let mut value = Value::Pixels(desc.input.to_vec());
    // The real value of each channel of the current integer tensor, and the
    // integer range each channel can reach.
    let mut real: Vec<RealValue> = Vec::new();
    let mut ranges: Vec<(i64, i64)> = Vec::new();
    for row in &desc.rows {
        let perr = |msg: String| ExportError::Parameters {
            layer: row.name.clone(),
            msg,
        };
        for spec in &row.deployed {
            let next = spec
                .output(&value)
                .map_err(|m| perr(format!("plan does not chain: {m}")))?;
            let layer = match *spec {
                LayerSpec::PixelDense { out, inputs } => {
                    let w = get(&row.tensors[0].0);
                    let alpha = row_alpha(w, out);
                    real = alpha
                        .iter()
                        .map(|&a| RealValue::Ratio {
                            num: a as f64,
                            den: 255.0,
                        })
                        .collect();
                    ranges = vec![(-255 * inputs as i64, 255 * inputs as i64); out];
                    Layer::PixelDense {
                        out,
                        inputs,
                        weights: pack_rows(w, out, inputs),
                    }
                }
                LayerSpec::BinaryDense { out, inputs } => {
                    let w = get(&row.tensors[0].0);
                    real = row_alpha(w, out)
                        .into_iter()
                        .map(|alpha| RealValue::Scaled { alpha })
                        .collect();
                    ranges = vec![(-(inputs as i64), inputs as i64); out];
                    Layer::BinaryDense {
                        out,
                        inputs,
                        weights: pack_rows(w, out, inputs),
                    }
                }
                LayerSpec::BinaryConv(shape) => {
                    let w = get(&row.tensors[0].0);
                    real = row_alpha(w, shape.out)
                        .into_iter()
                        .map(|alpha| RealValue::Scaled { alpha })
                        .collect();
                    let k = (shape.in_c * shape.taps()) as i64;
                    ranges = vec![(-k, k); shape.out];
                    Layer::BinaryConv {
                        shape,
                        weights: pack_conv(w, &shape),
                    }
                }
                LayerSpec::PixelConv(shape) => {
                    let w = get(&row.tensors[0].0);
                    if let Some(i) = w.iter().position(|v| !v.is_finite()) {
                        return Err(perr(format!("weight {i} is {}", w[i])));
                    }
                    let (q, shift) = quantize_rows(w, shape.out);
                    let per = shape.in_c * shape.taps();
                    ranges = q
                        .chunks(per)
                        .map(|r| {
                            let m = 255 * r.iter().map(|&v| (v as i64).abs()).sum::<i64>();
                            (-m, m)
                        })
                        .collect();
                    real = shift
                        .iter()
                        .map(|&s| RealValue::Ratio {
                            num: 1.0,
                            den: 255.0 * (s as f64).exp2(),
                        })
                        .collect();
                    Layer::PixelConv {
                        shape,
                        shift,
                        weights: q,
                    }
                }
                LayerSpec::MaxPool2 => Layer::MaxPool2,
                LayerSpec::Flatten => Layer::Flatten,
                LayerSpec::Threshold { channels, wide } => {
                    let bn = bn_params(row, &get, channels);
                    let mut threshold = Vec::with_capacity(channels);
                    let mut flip = Vec::with_capacity(channels);
                    for c in 0..channels {
                        let (b, r) = (bn[c], real[c]);
                        if !b.finite() || !r.of(1).is_finite() {
                            return Err(perr(format!(
                                "channel {c}: non-finite parameters ({b:?}, {r:?}) do not fold into a threshold"
                            )));
                        }
                        let (lo, hi) = ranges[c];
                        let (t, f) = fold_threshold(lo, hi, |s| b.sign_positive(r.of(s)));
                        if !wide && i32::try_from(t).is_err() {
                            return Err(perr(format!(
                                "channel {c}: threshold {t} does not fit a 32-bit record"
                            )));
                        }
                        threshold.push(t);
                        flip.push(f);
                    }
                    Layer::Threshold {
                        threshold,
                        flip,
                        wide,
                    }
                }
                LayerSpec::Logits { classes } => {
                    let bn = bn_params(row, &get, classes);
                    let alpha = real
                        .iter()
                        .map(|r| match r {
                            RealValue::Scaled { alpha } => Ok(*alpha),
                            other => Err(perr(format!(
                                "logits must follow an XNOR layer, not {other:?}"
                            ))),
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    Layer::Logits(LogitParams {
                        eps: BN_EPS,
                        alpha,
                        gamma: bn.iter().map(|b| b.gamma).collect(),
                        beta: bn.iter().map(|b| b.beta).collect(),
                        mean: bn.iter().map(|b| b.mean).collect(),
                        var: bn.iter().map(|b| b.var).collect(),
                    })
                }
            };
            layers.push(layer);
            value = next;
        }
    }
    Ok(BpmModel {
        name: desc.model.clone(),
        input: desc.input,
        classes: desc.classes,
        layers,
    })
}

fn bn_params<'a>(
    row: &super::plan::Row,
    get: &impl Fn(&str) -> &'a [f32],
    c: usize,
) -> Vec<BnChannel> {
    let [g, b, m, v] = [0, 1, 2, 3].map(|i| get(&row.tensors[i].0));
    (0..c)
        .map(|i| BnChannel {
            gamma: g[i],
            beta: b[i],
            mean: m[i],
            var: v[i],
            eps: BN_EPS,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The threshold reproduces the predicate at every integer of a range,
    /// for both signs of gamma, zero gamma and offsets that put the switch
    /// outside the range.
    #[test]
    fn threshold_matches_brute_force() {
        let mut seed = 0x1234_5678u64;
        let mut rnd = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        for case in 0..400 {
            let gamma = match case % 5 {
                0 => 0.0,
                1 => -rnd().abs() - 0.01,
                _ => rnd() * 3.0,
            };
            let b = BnChannel {
                gamma,
                beta: rnd() * 2.0,
                mean: rnd() * 20.0,
                var: rnd().abs() * 4.0,
                eps: BN_EPS,
            };
            let r = if case % 2 == 0 {
                RealValue::Scaled {
                    alpha: rnd().abs() * 0.1,
                }
            } else {
                RealValue::Ratio {
                    num: (rnd().abs() * 0.1) as f64,
                    den: 255.0,
                }
            };
            let (lo, hi) = if case % 2 == 0 {
                (-300, 300)
            } else {
                (-255 * 40, 255 * 40)
            };
            let (t, f) = fold_threshold(lo, hi, |s| b.sign_positive(r.of(s)));
            for s in lo..=hi {
                let want = b.sign_positive(r.of(s));
                let got = if f { s <= t } else { s >= t };
                assert_eq!(got, want, "case {case}: s = {s}, {b:?} {r:?} -> ({t}, {f})");
            }
        }
    }

    #[test]
    fn quantized_rows_stay_within_the_limits() {
        let w = [0.3f32, -0.2, 0.1, 0.0, 1e-3, -1e-3];
        let (q, shift) = quantize_rows(&w, 2);
        for (r, s) in q.chunks(3).zip(&shift) {
            let max = r.iter().map(|&v| (v as i64).abs()).max().unwrap();
            assert!(max <= PIXEL_CONV_MAX_WEIGHT);
            // One more bit would pass the limit (the shift is the largest).
            assert!(2 * max + 1 > PIXEL_CONV_MAX_WEIGHT, "{q:?} {shift:?}");
            assert!(*s > 0);
        }
        assert_eq!(q[3], 0);
        // The real weights come back to within 2^-31 of the row's largest.
        for (i, v) in w.iter().enumerate() {
            let back = q[i] as f64 / (shift[i / 3] as f64).exp2();
            assert!((back - *v as f64).abs() <= 0.31 * 2f64.powi(-30), "{i}");
        }
    }
}
