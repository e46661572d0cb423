//! ReCU (METHODS.md section 3): the standardize-and-clamp weight path, its
//! backward, the per-sample std activation path, the gradient of a
//! per-channel output scale, and the per-layer statistics behind the
//! dead-weight, quantization-error and entropy metrics. WGSL in
//! `shaders/recu/`; each op has its CPU reference below.

use crate::gpu::{Gpu, GpuError, Kernel};
use crate::kernel;
use crate::tensor::{DType, Tensor};

use super::reduce::{channel_view, row_view};
use super::{groups_for, unused};

/// eps inside the square root of both standardizations (ReCU's code).
pub const RECU_EPS: f32 = 1e-5;
/// Histogram bins of [`layer_stats`] over [-Q, Q].
pub const BINS: usize = 64;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct WeightParams {
    rows: u32,
    k: u32,
    bins: u32,
    _pad: u32,
    kk: f32,
    eps: f32,
    tau: f32,
    _pad2: f32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ActParams {
    n: u32,
    c: u32,
    s: u32,
    has_bias: u32,
    eps: f32,
    _pad: [f32; 3],
}

// Every ReCU kernel binds three read-only inputs and two outputs.
macro_rules! recu_kernel {
    ($file:literal, $entry:literal) => {
        kernel!(
            ["reduce/workgroup_sum.wgsl", $file],
            $entry,
            [Read, Read, Read, ReadWrite, ReadWrite]
        )
    };
}

const STANDARDIZE: Kernel = recu_kernel!("recu/weights.wgsl", "standardize_rows");
const THRESHOLD: Kernel = recu_kernel!("recu/weights.wgsl", "threshold");
const CLAMP_Q: Kernel = recu_kernel!("recu/weights.wgsl", "clamp_q");
const STANDARDIZE_BACKWARD: Kernel = recu_kernel!("recu/weights.wgsl", "standardize_backward");
const LAYER_STATS: Kernel = recu_kernel!("recu/weights.wgsl", "layer_stats");
const STD_SIGN: Kernel = recu_kernel!("recu/acts.wgsl", "std_sign_forward");
const STD_SIGN_BACKWARD: Kernel = recu_kernel!("recu/acts.wgsl", "std_sign_backward");
const SCALE_GRAD: Kernel = recu_kernel!("recu/acts.wgsl", "scale_grad");

const WG: f64 = 256.0;

/// A layer's weights on ReCU's path, kept for the backward and the metrics.
#[derive(Clone)]
pub struct RecuWeights {
    /// Standardized weights `w1`, the latent weights' shape.
    pub w1: Tensor,
    /// Clamped weights `w2 = clamp(w1, -Q, Q)`, the latent weights' shape.
    pub w2: Tensor,
    /// `[R, 2]` (mean, inv) per output channel, then `[R]` sum |w1|.
    pub stats: Tensor,
    /// `[2]`: (b_hat, Q).
    pub q: Tensor,
    pub b_star: f32,
}

fn weight_params(rows: usize, k: usize, b_star: f32, tau: f32) -> WeightParams {
    WeightParams {
        rows: rows as u32,
        k: k as u32,
        bins: BINS as u32,
        _pad: 0,
        kk: std::f32::consts::SQRT_2 * b_star,
        eps: RECU_EPS,
        tau,
        _pad2: 0.0,
    }
}

/// ReCU's forward weight path for `w` seen as rows `[R, K]` (one per
/// output channel):
/// `w1 = (w - mean_r) / (sqrt(var_r + eps) / (sqrt(2) b_star))`,
/// `b_hat = mean |w1|` over the layer, `Q = -b_hat ln(2 - 2 tau)`,
/// `w2 = clamp(w1, -Q, Q)`. `var_r` is the population variance (ReCU's code
/// uses torch's unbiased one: a factor sqrt(K / (K - 1)) on w1, 0.2% at K = 288).
pub fn recu_weights(gpu: &Gpu, w: &Tensor, b_star: f32, tau: f32) -> Result<RecuWeights, GpuError> {
    let [rows, k] = row_view(w.shape());
    let p = weight_params(rows, k, b_star, tau);
    let w1 = Tensor::empty(gpu, w.shape(), DType::F32)?;
    let stats = Tensor::empty(gpu, &[3 * rows], DType::F32)?;
    gpu.launch(
        &STANDARDIZE,
        &[("WG", WG)],
        &p,
        &[
            w.binding(),
            unused(w),
            unused(w),
            w1.binding(),
            stats.binding(),
        ],
        gpu.grid(rows as u64),
    );
    let q = Tensor::empty(gpu, &[2], DType::F32)?;
    let scratch = Tensor::empty(gpu, &[1], DType::F32)?;
    gpu.launch(
        &THRESHOLD,
        &[("WG", WG)],
        &p,
        &[
            stats.binding(),
            unused(&stats),
            unused(&stats),
            q.binding(),
            scratch.binding(),
        ],
        [1, 1, 1],
    );
    let w2 = Tensor::empty(gpu, w.shape(), DType::F32)?;
    gpu.launch(
        &CLAMP_Q,
        &[("WG", WG)],
        &p,
        &[
            w1.binding(),
            q.binding(),
            unused(&w1),
            w2.binding(),
            scratch.binding(),
        ],
        groups_for(gpu, w.numel(), WG as u32),
    );
    Ok(RecuWeights {
        w1,
        w2,
        stats,
        q,
        b_star,
    })
}

/// Backward of [`recu_weights`] with Q detached: `g1 = g2 * 1[|w1| <= Q]`,
/// `dw = inv_r (g1 - mean_r g1 - xh mean_r(g1 xh))`, `xh = w1 / (sqrt(2) b_star)`.
pub fn recu_weights_backward(gpu: &Gpu, r: &RecuWeights, g2: &Tensor) -> Result<Tensor, GpuError> {
    assert_eq!(
        r.w1.shape(),
        g2.shape(),
        "recu_weights_backward: g {g2:?} for {:?}",
        r.w1
    );
    let [rows, k] = row_view(r.w1.shape());
    let p = weight_params(rows, k, r.b_star, 0.0);
    let dw = Tensor::empty(gpu, g2.shape(), DType::F32)?;
    gpu.launch(
        &STANDARDIZE_BACKWARD,
        &[("WG", WG)],
        &p,
        &[
            r.w1.binding(),
            r.stats.binding(),
            g2.binding(),
            dw.binding(),
            r.q.binding(),
        ],
        gpu.grid(rows as u64),
    );
    Ok(dw)
}

/// Per-layer statistics of ReCU weights with per-row scale `alpha` `[R]`:
/// `[2 + BINS]` = (count of |w1| >= Q, sum (|w2| - alpha_r)^2, histogram of
/// w2 over [-Q, Q] in [`BINS`] bins). One workgroup: an epoch-end metric.
pub fn layer_stats(gpu: &Gpu, r: &RecuWeights, alpha: &Tensor) -> Result<Tensor, GpuError> {
    let [rows, k] = row_view(r.w1.shape());
    assert_eq!(
        alpha.numel(),
        rows,
        "layer_stats: alpha {alpha:?} for {rows} rows"
    );
    let p = weight_params(rows, k, r.b_star, 0.0);
    let out = Tensor::empty(gpu, &[2 + BINS], DType::F32)?;
    gpu.launch(
        &LAYER_STATS,
        &[("WG", WG)],
        &p,
        &[
            r.w1.binding(),
            r.w2.binding(),
            alpha.binding(),
            out.binding(),
            r.q.binding(),
        ],
        [1, 1, 1],
    );
    Ok(out)
}

fn act_params(x: &Tensor, bias: Option<&Tensor>) -> ActParams {
    let [n, c, s] = channel_view(x.shape());
    if let Some(b) = bias {
        assert_eq!(b.numel(), c, "std_sign: bias {b:?} for {x:?}");
    }
    ActParams {
        n: n as u32,
        c: c as u32,
        s: s as u32,
        has_bias: bias.is_some() as u32,
        eps: RECU_EPS,
        _pad: [0.0; 3],
    }
}

/// ReCU's training-time activation: `z = x - bias[c]` (without a bias, `z =
/// x`), `y = sign(z / sigma_n)` = sign(z), `sigma_n = sqrt(var_n(z) + eps)`
/// over each sample's C*H*W values. Returns `(y, stats [N, 2])`.
pub fn std_sign(
    gpu: &Gpu,
    x: &Tensor,
    bias: Option<&Tensor>,
) -> Result<(Tensor, Tensor), GpuError> {
    let p = act_params(x, bias);
    let y = Tensor::empty(gpu, x.shape(), DType::F32)?;
    let stats = Tensor::empty(gpu, &[2 * p.n as usize], DType::F32)?;
    gpu.launch(
        &STD_SIGN,
        &[("WG", WG)],
        &p,
        &[
            x.binding(),
            bias.map_or(unused(x), |b| b.binding()),
            unused(x),
            y.binding(),
            stats.binding(),
        ],
        gpu.grid(p.n as u64),
    );
    Ok((y, stats))
}

/// Backward of [`std_sign`]: `dz = g0 / sigma - (z - mean) sum(g0 z) / (L sigma^3)`
/// with ApproxSign's `g0 = g max(0, 2 - 2 |z / sigma|)`. `dx = dz`; the
/// bias gradient (when there is a bias) is `-sum_{n,s} dz`.
pub fn std_sign_backward(
    gpu: &Gpu,
    x: &Tensor,
    bias: Option<&Tensor>,
    stats: &Tensor,
    g: &Tensor,
) -> Result<Tensor, GpuError> {
    assert_eq!(
        x.shape(),
        g.shape(),
        "std_sign_backward: g {g:?} for x {x:?}"
    );
    let p = act_params(x, bias);
    let dz = Tensor::empty(gpu, x.shape(), DType::F32)?;
    gpu.launch(
        &STD_SIGN_BACKWARD,
        &[("WG", WG)],
        &p,
        &[
            x.binding(),
            bias.map_or(unused(x), |b| b.binding()),
            g.binding(),
            dz.binding(),
            stats.binding(),
        ],
        gpu.grid(p.n as u64),
    );
    Ok(dz)
}

/// Gradient of `alpha` in `y = alpha_c * y0`: `d alpha_c = sum_{n,s} dy * y0`.
pub fn scale_grad(gpu: &Gpu, dy: &Tensor, y0: &Tensor) -> Result<Tensor, GpuError> {
    assert_eq!(dy.shape(), y0.shape(), "scale_grad: dy {dy:?} vs y0 {y0:?}");
    let p = act_params(dy, None);
    let out = Tensor::empty(gpu, &[p.c as usize], DType::F32)?;
    let scratch = Tensor::empty(gpu, &[1], DType::F32)?;
    gpu.launch(
        &SCALE_GRAD,
        &[("WG", WG)],
        &p,
        &[
            dy.binding(),
            y0.binding(),
            unused(dy),
            out.binding(),
            scratch.binding(),
        ],
        gpu.grid(p.c as u64),
    );
    Ok(out)
}

/// CPU reference of [`recu_weights`]: `(w1, w2, b_hat, Q)`.
pub fn recu_weights_cpu(
    w: &[f32],
    rows: usize,
    k: usize,
    b_star: f32,
    tau: f32,
) -> (Vec<f32>, Vec<f32>, f32, f32) {
    let kk = std::f64::consts::SQRT_2 * b_star as f64;
    let mut w1 = vec![0f32; rows * k];
    for r in 0..rows {
        let row = &w[r * k..(r + 1) * k];
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / k as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / k as f64;
        let inv = kk / (var + RECU_EPS as f64).sqrt();
        for j in 0..k {
            w1[r * k + j] = ((row[j] as f64 - mean) * inv) as f32;
        }
    }
    let b_hat = (w1.iter().map(|v| v.abs() as f64).sum::<f64>() / (rows * k) as f64) as f32;
    let q = -b_hat * (2.0 - 2.0 * tau).ln();
    let w2 = w1.iter().map(|v| v.clamp(-q, q)).collect();
    (w1, w2, b_hat, q)
}

/// CPU reference of [`recu_weights_backward`] (Q given, as it is detached).
pub fn recu_weights_backward_cpu(
    w: &[f32],
    rows: usize,
    k: usize,
    b_star: f32,
    q: f32,
    g2: &[f32],
) -> Vec<f32> {
    let kk = std::f64::consts::SQRT_2 * b_star as f64;
    let mut dw = vec![0f32; rows * k];
    for r in 0..rows {
        let row = &w[r * k..(r + 1) * k];
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / k as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / k as f64;
        let inv = kk / (var + RECU_EPS as f64).sqrt();
        let w1: Vec<f64> = row.iter().map(|&v| (v as f64 - mean) * inv).collect();
        let g1: Vec<f64> = (0..k)
            .map(|j| {
                if w1[j].abs() <= q as f64 {
                    g2[r * k + j] as f64
                } else {
                    0.0
                }
            })
            .collect();
        let m1 = g1.iter().sum::<f64>() / k as f64;
        let m2 = (0..k).map(|j| g1[j] * w1[j] / kk).sum::<f64>() / k as f64;
        for j in 0..k {
            dw[r * k + j] = (inv * (g1[j] - m1 - w1[j] / kk * m2)) as f32;
        }
    }
    dw
}

/// CPU reference of [`std_sign`] and [`std_sign_backward`] for `x` `[n, c, s]`:
/// `(y, dx, dbias)`.
pub fn std_sign_cpu(
    x: &[f32],
    bias: Option<&[f32]>,
    [n, c, s]: [usize; 3],
    g: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let l = c * s;
    let (mut y, mut dx, mut db) = (vec![0f32; n * l], vec![0f32; n * l], vec![0f32; c]);
    for i in 0..n {
        let z: Vec<f64> = (0..l)
            .map(|j| x[i * l + j] as f64 - bias.map_or(0.0, |b| b[j / s] as f64))
            .collect();
        let mean = z.iter().sum::<f64>() / l as f64;
        let var = z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / l as f64;
        let sigma = (var + RECU_EPS as f64).sqrt();
        let g0: Vec<f64> = (0..l)
            .map(|j| g[i * l + j] as f64 * (2.0 - 2.0 * (z[j] / sigma).abs()).max(0.0))
            .collect();
        let sum: f64 = (0..l).map(|j| g0[j] * z[j]).sum();
        for j in 0..l {
            y[i * l + j] = if z[j] >= 0.0 { 1.0 } else { -1.0 };
            let d = g0[j] / sigma - (z[j] - mean) * sum / (l as f64 * sigma.powi(3));
            dx[i * l + j] = d as f32;
            db[j / s] -= d as f32;
        }
    }
    (y, dx, db)
}

/// CPU reference of [`scale_grad`] for `[n, c, s]`.
pub fn scale_grad_cpu(dy: &[f32], y0: &[f32], [n, c, s]: [usize; 3]) -> Vec<f32> {
    let mut out = vec![0f32; c];
    for i in 0..n {
        for (ch, o) in out.iter_mut().enumerate() {
            let at = (i * c + ch) * s;
            *o += (at..at + s).map(|j| dy[j] * y0[j]).sum::<f32>();
        }
    }
    out
}

/// CPU reference of [`layer_stats`].
pub fn layer_stats_cpu(w1: &[f32], w2: &[f32], alpha: &[f32], k: usize, q: f32) -> Vec<f32> {
    let mut out = vec![0f32; 2 + BINS];
    for (i, (&a, &b)) in w1.iter().zip(w2).enumerate() {
        if a.abs() >= q {
            out[0] += 1.0;
        }
        out[1] += (b.abs() - alpha[i / k]).powi(2);
        let bin = if q > 0.0 {
            ((b + q) / (2.0 * q) * BINS as f32).clamp(0.0, BINS as f32 - 1.0) as usize
        } else {
            BINS / 2
        };
        out[2 + bin] += 1.0;
    }
    out
}

/// ReCU's epoch-end metrics of one layer from [`layer_stats`]' output.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerMetrics {
    /// Share of weights with |w1| >= Q.
    pub dead_weight_ratio: f64,
    /// 2 (1 - tau): the dead-weight ratio if the w1 were Laplace.
    pub dead_weight_expected: f64,
    /// mean (w2 - alpha_r sign(w2))^2.
    pub quant_error: f64,
    /// Closed form `(2 tau - 1)(ln b_hat + 1) + ln 2` (METHODS.md).
    pub entropy_closed_form: f64,
    /// Histogram estimate `-sum p_i ln(p_i / width)` of w2 over [-Q, Q].
    pub entropy_histogram: f64,
}

impl LayerMetrics {
    pub fn from_stats(stats: &[f32], n: usize, b_hat: f32, q: f32, tau: f32) -> LayerMetrics {
        let width = 2.0 * q as f64 / BINS as f64;
        let entropy_histogram = stats[2..]
            .iter()
            .map(|&c| c as f64 / n as f64)
            .filter(|&p| p > 0.0)
            .map(|p| -p * (p / width).ln())
            .sum();
        LayerMetrics {
            dead_weight_ratio: stats[0] as f64 / n as f64,
            dead_weight_expected: 2.0 * (1.0 - tau as f64),
            quant_error: stats[1] as f64 / n as f64,
            entropy_closed_form: (2.0 * tau as f64 - 1.0) * ((b_hat as f64).ln() + 1.0)
                + std::f64::consts::LN_2,
            entropy_histogram,
        }
    }
}
