//! Activations: binarisers and their surrogate gradients, hardtanh, the
//! ternary and {0, 1} activations, ReActNet's RSign and RPReLU, and small
//! elementwise arithmetic (scale, add, `y += s * x`).
//!
//! Elementwise ops work on any shape. Per-channel ops see `x` as `[N, C, S]`
//! ([`channel_view`]); their parameter gradients are sums over `n` and `s`,
//! done by one workgroup per channel with a workgroup-memory tree (f32).

use crate::gpu::{Gpu, GpuError, Kernel};
use crate::kernel;
use crate::tensor::{DType, Tensor};

use super::reduce::channel_view;
use super::{PerLane, groups_for};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ElementParams {
    n: u32,
    a: f32,
    b: f32,
    _pad: u32,
}

/// An entry of act/unary.wgsl and its four-per-lane twin in unary4.wgsl.
macro_rules! unary_kernel {
    ($one:literal, $four:literal) => {
        PerLane {
            one: kernel!(
                ["act/unary_common.wgsl", "act/unary.wgsl"],
                $one,
                [Read, ReadWrite]
            ),
            four: kernel!(
                ["act/unary_common.wgsl", "act/unary4.wgsl"],
                $four,
                [Read, ReadWrite]
            ),
        }
    };
}

/// An entry of act/binary.wgsl and its four-per-lane twin in binary4.wgsl.
macro_rules! binary_kernel {
    ($one:literal, $four:literal) => {
        PerLane {
            one: kernel!(
                ["act/binary_common.wgsl", "act/binary.wgsl"],
                $one,
                [Read, Read, ReadWrite]
            ),
            four: kernel!(
                ["act/binary_common.wgsl", "act/binary4.wgsl"],
                $four,
                [Read, Read, ReadWrite]
            ),
        }
    };
}

const SIGN: PerLane = unary_kernel!("sign_forward", "sign_forward4");
const CLAMP: PerLane = unary_kernel!("clamp_forward", "clamp_forward4");
const TERNARY: PerLane = unary_kernel!("ternary_forward", "ternary_forward4");
const STEP01: PerLane = unary_kernel!("step01_forward", "step01_forward4");
const SCALE: PerLane = unary_kernel!("scale_forward", "scale_forward4");
const ADD_SCALED: PerLane = unary_kernel!("add_scaled", "add_scaled4");

const STE_SIGN_BACKWARD: PerLane = binary_kernel!("ste_sign_backward", "ste_sign_backward4");
const APPROX_SIGN_BACKWARD: PerLane =
    binary_kernel!("approx_sign_backward", "approx_sign_backward4");
const HARDTANH_BACKWARD: PerLane = binary_kernel!("hardtanh_backward", "hardtanh_backward4");
const ADD: PerLane = binary_kernel!("add", "add4");

/// Per-channel kernels reduce with this many lanes per channel.
const CHANNEL_WG: f64 = 256.0;

/// Parameters for `lanes` lanes (elements, or vec4s for a four-per-lane kernel).
fn element_params(lanes: usize, a: f32, b: f32) -> ElementParams {
    ElementParams {
        n: lanes as u32,
        a,
        b,
        _pad: 0,
    }
}

fn unary(gpu: &Gpu, kernel: &PerLane, x: &Tensor, a: f32, b: f32) -> Result<Tensor, GpuError> {
    let y = Tensor::empty(gpu, x.shape(), DType::F32)?;
    let (kernel, lanes) = kernel.pick(x.numel());
    gpu.launch(
        kernel,
        &[("WG", 64.0)],
        &element_params(lanes, a, b),
        &[x.binding(), y.binding()],
        groups_for(gpu, lanes, 64),
    );
    Ok(y)
}

fn binary(
    gpu: &Gpu,
    kernel: &PerLane,
    x: &Tensor,
    g: &Tensor,
    lo: f32,
    hi: f32,
) -> Result<Tensor, GpuError> {
    assert_eq!(
        x.shape(),
        g.shape(),
        "{}: operands {x:?} and {g:?} differ in shape",
        kernel.one.entry
    );
    let out = Tensor::empty(gpu, x.shape(), DType::F32)?;
    let (kernel, lanes) = kernel.pick(x.numel());
    gpu.launch(
        kernel,
        &[("WG", 64.0)],
        &element_params(lanes, lo, hi),
        &[x.binding(), g.binding(), out.binding()],
        groups_for(gpu, lanes, 64),
    );
    Ok(out)
}

/// `y = sign(x)`: `+1` if `x >= 0`, else `-1` (never 0).
pub fn sign(gpu: &Gpu, x: &Tensor) -> Result<Tensor, GpuError> {
    unary(gpu, &SIGN, x, 0.0, 0.0)
}

/// `y = min(max(x, lo), hi)`.
pub fn clamp(gpu: &Gpu, x: &Tensor, lo: f32, hi: f32) -> Result<Tensor, GpuError> {
    unary(gpu, &CLAMP, x, lo, hi)
}

/// `y = hardtanh(x) = min(max(x, lo), hi)` (the same kernel as [`clamp`]).
pub fn hardtanh(gpu: &Gpu, x: &Tensor, lo: f32, hi: f32) -> Result<Tensor, GpuError> {
    clamp(gpu, x, lo, hi)
}

/// `y = 0.5 * 1[x >= 0.25] + 0.5 * 1[x >= 0.75]`, values in {0, 0.5, 1}:
/// `round(2x) / 2` with halves rounded up, for `x` in [0, 1]. Its
/// straight-through backward is [`hardtanh_backward`] with `(0, 1)`.
pub fn ternary(gpu: &Gpu, x: &Tensor) -> Result<Tensor, GpuError> {
    unary(gpu, &TERNARY, x, 0.0, 0.0)
}

/// `y = 1[x >= threshold]`, values in {0, 1} (BinaryDuo's decoupled activation).
pub fn step01(gpu: &Gpu, x: &Tensor, threshold: f32) -> Result<Tensor, GpuError> {
    unary(gpu, &STEP01, x, threshold, 0.0)
}

const REPEAT_CHANNELS: Kernel = kernel!("act/repeat.wgsl", "repeat_channels", [Read, ReadWrite]);
const SUM_HALVES: Kernel = kernel!("act/repeat.wgsl", "sum_halves", [Read, ReadWrite]);

fn repeat_launch(
    gpu: &Gpu,
    kernel: &Kernel,
    x: &Tensor,
    shape: &[usize],
    c: usize,
) -> Result<Tensor, GpuError> {
    let y = Tensor::empty(gpu, shape, DType::F32)?;
    let s = shape[2..].iter().product::<usize>().max(1);
    let params = [y.numel() as u32, c as u32, s as u32, 0];
    gpu.launch(
        kernel,
        &[("WG", 64.0)],
        &params,
        &[x.binding(), y.binding()],
        groups_for(gpu, y.numel(), 64),
    );
    Ok(y)
}

/// `[N, C, ...] -> [N, 2C, ...]`: the C channels, then the same C channels
/// again (BinaryDuo's decoupled batch norm input).
pub fn repeat_channels(gpu: &Gpu, x: &Tensor) -> Result<Tensor, GpuError> {
    let mut shape = x.shape().to_vec();
    assert!(
        shape.len() >= 2,
        "repeat_channels: {x:?} has no channel axis"
    );
    let c = shape[1];
    shape[1] = 2 * c;
    repeat_launch(gpu, &REPEAT_CHANNELS, x, &shape, c)
}

/// Backward of [`repeat_channels`]: `[N, 2C, ...] -> [N, C, ...]`, the two
/// halves' channels summed.
pub fn sum_halves(gpu: &Gpu, g: &Tensor) -> Result<Tensor, GpuError> {
    let mut shape = g.shape().to_vec();
    assert!(
        shape.len() >= 2 && shape[1].is_multiple_of(2),
        "sum_halves: {g:?} has no even channel axis"
    );
    shape[1] /= 2;
    let c = shape[1];
    repeat_launch(gpu, &SUM_HALVES, g, &shape, c)
}

/// CPU reference of [`repeat_channels`] for `x` as `[outer, c, s]`.
pub fn repeat_channels_cpu(x: &[f32], outer: usize, c: usize, s: usize) -> Vec<f32> {
    let plane = c * s;
    (0..outer)
        .flat_map(|o| {
            let row = &x[o * plane..(o + 1) * plane];
            row.iter().chain(row.iter()).copied()
        })
        .collect()
}

/// CPU reference of [`sum_halves`] for `g` as `[outer, 2c, s]`.
pub fn sum_halves_cpu(g: &[f32], outer: usize, c: usize, s: usize) -> Vec<f32> {
    let plane = c * s;
    (0..outer)
        .flat_map(|o| (0..plane).map(move |r| g[2 * o * plane + r] + g[2 * o * plane + plane + r]))
        .collect()
}

/// `y = s * x`.
pub fn scale(gpu: &Gpu, x: &Tensor, s: f32) -> Result<Tensor, GpuError> {
    unary(gpu, &SCALE, x, s, 0.0)
}

/// In place: `y += s * x` (`y` and `x` the same shape, different buffers).
pub fn add_scaled(gpu: &Gpu, y: &Tensor, x: &Tensor, s: f32) {
    assert_eq!(y.shape(), x.shape(), "add_scaled: {y:?} += s * {x:?}");
    assert!(
        !y.same_buffer(x),
        "add_scaled: y and x share a buffer; use scale for y *= 1 + s"
    );
    let (kernel, lanes) = ADD_SCALED.pick(x.numel());
    gpu.launch(
        kernel,
        &[("WG", 64.0)],
        &element_params(lanes, s, 0.0),
        &[x.binding(), y.binding()],
        groups_for(gpu, lanes, 64),
    );
}

/// `y = a + b`, same shapes.
pub fn add(gpu: &Gpu, a: &Tensor, b: &Tensor) -> Result<Tensor, GpuError> {
    binary(gpu, &ADD, a, b, 0.0, 0.0)
}

/// Clipped straight-through estimator of [`sign`]: `dx = g * 1[|x| <= 1]`.
pub fn ste_sign_backward(gpu: &Gpu, x: &Tensor, g: &Tensor) -> Result<Tensor, GpuError> {
    binary(gpu, &STE_SIGN_BACKWARD, x, g, 0.0, 0.0)
}

/// Bi-Real Net's ApproxSign gradient of [`sign`]: `dx = g * max(0, 2 - 2|x|)`.
pub fn approx_sign_backward(gpu: &Gpu, x: &Tensor, g: &Tensor) -> Result<Tensor, GpuError> {
    binary(gpu, &APPROX_SIGN_BACKWARD, x, g, 0.0, 0.0)
}

/// Backward of [`hardtanh`]: `dx = g * 1[lo <= x <= hi]`.
pub fn hardtanh_backward(
    gpu: &Gpu,
    x: &Tensor,
    g: &Tensor,
    lo: f32,
    hi: f32,
) -> Result<Tensor, GpuError> {
    binary(gpu, &HARDTANH_BACKWARD, x, g, lo, hi)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ChannelParams {
    n: u32,
    c: u32,
    s: u32,
    _pad: u32,
}

fn channel_params(x: &Tensor, params: &[&Tensor], op: &str) -> ChannelParams {
    let [n, c, s] = channel_view(x.shape());
    for t in params {
        assert_eq!(
            t.numel(),
            c,
            "{op}: {t:?} must have one value per channel of {x:?}"
        );
    }
    ChannelParams {
        n: n as u32,
        c: c as u32,
        s: s as u32,
        _pad: 0,
    }
}

const RSIGN: Kernel = kernel!("act/rsign.wgsl", "rsign_forward", [Read, Read, ReadWrite]);
const RSIGN_BACKWARD: Kernel = kernel!(
    "act/rsign_backward.wgsl",
    "rsign_backward",
    [Read, Read, Read, ReadWrite, ReadWrite]
);
const RPRELU: Kernel = kernel!(
    "act/rprelu.wgsl",
    "rprelu_forward",
    [Read, Read, Read, Read, ReadWrite]
);
const RPRELU_BACKWARD: Kernel = kernel!(
    "act/rprelu_backward.wgsl",
    "rprelu_backward",
    [
        Read, Read, Read, Read, ReadWrite, ReadWrite, ReadWrite, ReadWrite
    ]
);

/// ReActNet RSign: `y[n, c, s] = sign(x[n, c, s] - a[c])` for `x` `[N, C, ...]`, `a` `[C]`.
pub fn rsign(gpu: &Gpu, x: &Tensor, a: &Tensor) -> Result<Tensor, GpuError> {
    let params = channel_params(x, &[a], "rsign");
    let y = Tensor::empty(gpu, x.shape(), DType::F32)?;
    gpu.launch(
        &RSIGN,
        &[("WG", 64.0)],
        &params,
        &[x.binding(), a.binding(), y.binding()],
        groups_for(gpu, x.numel(), 64),
    );
    Ok(y)
}

/// Backward of [`rsign`] with the ApproxSign surrogate: returns `(dx, da)` with
/// `dx = g * max(0, 2 - 2|x - a[c]|)` and `da[c] = -sum_{n,s} dx[n, c, s]`.
pub fn rsign_backward(
    gpu: &Gpu,
    x: &Tensor,
    a: &Tensor,
    g: &Tensor,
) -> Result<(Tensor, Tensor), GpuError> {
    assert_eq!(x.shape(), g.shape(), "rsign_backward: g {g:?} for x {x:?}");
    let params = channel_params(x, &[a], "rsign_backward");
    let dx = Tensor::empty(gpu, x.shape(), DType::F32)?;
    let da = Tensor::empty(gpu, &[params.c as usize], DType::F32)?;
    gpu.launch(
        &RSIGN_BACKWARD,
        &[("WG", CHANNEL_WG)],
        &params,
        &[
            x.binding(),
            a.binding(),
            g.binding(),
            dx.binding(),
            da.binding(),
        ],
        gpu.grid(params.c as u64),
    );
    Ok((dx, da))
}

/// ReActNet RPReLU, per channel `c` of `x` `[N, C, ...]`:
/// `y = x - gamma[c] + zeta[c]` if `x > gamma[c]`, else
/// `y = beta[c] * (x - gamma[c]) + zeta[c]`.
pub fn rprelu(
    gpu: &Gpu,
    x: &Tensor,
    beta: &Tensor,
    gamma: &Tensor,
    zeta: &Tensor,
) -> Result<Tensor, GpuError> {
    let params = channel_params(x, &[beta, gamma, zeta], "rprelu");
    let y = Tensor::empty(gpu, x.shape(), DType::F32)?;
    gpu.launch(
        &RPRELU,
        &[("WG", 64.0)],
        &params,
        &[
            x.binding(),
            beta.binding(),
            gamma.binding(),
            zeta.binding(),
            y.binding(),
        ],
        groups_for(gpu, x.numel(), 64),
    );
    Ok(y)
}

/// Gradients of [`rprelu`].
#[derive(Clone, Debug)]
pub struct RpreluGrads {
    /// `g * (1 if x > gamma[c] else beta[c])`, shape of `x`.
    pub dx: Tensor,
    /// `sum_{n,s} g * (x - gamma[c]) * 1[x <= gamma[c]]`, `[C]`.
    pub dbeta: Tensor,
    /// `-sum_{n,s} dx`, `[C]`.
    pub dgamma: Tensor,
    /// `sum_{n,s} g`, `[C]`.
    pub dzeta: Tensor,
}

/// Backward of [`rprelu`] given the upstream gradient `g` (`zeta` is not
/// needed: `dy/dzeta = 1`). At `x = gamma[c]` the slope is `beta[c]`, the
/// branch the forward takes there.
pub fn rprelu_backward(
    gpu: &Gpu,
    x: &Tensor,
    beta: &Tensor,
    gamma: &Tensor,
    g: &Tensor,
) -> Result<RpreluGrads, GpuError> {
    assert_eq!(x.shape(), g.shape(), "rprelu_backward: g {g:?} for x {x:?}");
    let params = channel_params(x, &[beta, gamma], "rprelu_backward");
    let c = params.c as usize;
    let grads = RpreluGrads {
        dx: Tensor::empty(gpu, x.shape(), DType::F32)?,
        dbeta: Tensor::empty(gpu, &[c], DType::F32)?,
        dgamma: Tensor::empty(gpu, &[c], DType::F32)?,
        dzeta: Tensor::empty(gpu, &[c], DType::F32)?,
    };
    gpu.launch(
        &RPRELU_BACKWARD,
        &[("WG", CHANNEL_WG)],
        &params,
        &[
            x.binding(),
            beta.binding(),
            gamma.binding(),
            g.binding(),
            grads.dx.binding(),
            grads.dbeta.binding(),
            grads.dgamma.binding(),
            grads.dzeta.binding(),
        ],
        gpu.grid(c as u64),
    );
    Ok(grads)
}

// CPU references.

/// CPU reference of [`sign`].
pub fn sign_cpu(x: &[f32]) -> Vec<f32> {
    x.iter()
        .map(|&v| if v >= 0.0 { 1.0 } else { -1.0 })
        .collect()
}

/// CPU reference of [`clamp`] and [`hardtanh`].
pub fn clamp_cpu(x: &[f32], lo: f32, hi: f32) -> Vec<f32> {
    x.iter().map(|&v| v.max(lo).min(hi)).collect()
}

/// CPU reference of [`ternary`].
pub fn ternary_cpu(x: &[f32]) -> Vec<f32> {
    x.iter()
        .map(|&v| 0.5 * (v >= 0.25) as u8 as f32 + 0.5 * (v >= 0.75) as u8 as f32)
        .collect()
}

/// CPU reference of [`step01`].
pub fn step01_cpu(x: &[f32], threshold: f32) -> Vec<f32> {
    x.iter().map(|&v| (v >= threshold) as u8 as f32).collect()
}

/// CPU reference of [`scale`].
pub fn scale_cpu(x: &[f32], s: f32) -> Vec<f32> {
    x.iter().map(|&v| s * v).collect()
}

/// CPU reference of [`add`].
pub fn add_cpu(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// CPU reference of [`add_scaled`]: `y += s * x`.
pub fn add_scaled_cpu(y: &mut [f32], x: &[f32], s: f32) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += s * x;
    }
}

/// CPU reference of [`ste_sign_backward`].
pub fn ste_sign_backward_cpu(x: &[f32], g: &[f32]) -> Vec<f32> {
    hardtanh_backward_cpu(x, g, -1.0, 1.0)
}

/// CPU reference of [`approx_sign_backward`].
pub fn approx_sign_backward_cpu(x: &[f32], g: &[f32]) -> Vec<f32> {
    x.iter()
        .zip(g)
        .map(|(&x, &g)| g * (2.0 - 2.0 * x.abs()).max(0.0))
        .collect()
}

/// CPU reference of [`hardtanh_backward`].
pub fn hardtanh_backward_cpu(x: &[f32], g: &[f32], lo: f32, hi: f32) -> Vec<f32> {
    x.iter()
        .zip(g)
        .map(|(&x, &g)| if lo <= x && x <= hi { g } else { 0.0 })
        .collect()
}

/// Flat index of element `(n, c, s)` of `[N, C, S]`, and its channel, for every element.
fn channels_of(len: usize, c: usize, s: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..len).map(move |i| (i, (i / s) % c))
}

/// CPU reference of [`rsign`] for `x` `[n, c, s]`.
pub fn rsign_cpu(x: &[f32], a: &[f32], [_, c, s]: [usize; 3]) -> Vec<f32> {
    channels_of(x.len(), c, s)
        .map(|(i, ch)| if x[i] - a[ch] >= 0.0 { 1.0 } else { -1.0 })
        .collect()
}

/// CPU reference of [`rsign_backward`]: `(dx, da)`, sums in f64.
pub fn rsign_backward_cpu(
    x: &[f32],
    a: &[f32],
    g: &[f32],
    [_, c, s]: [usize; 3],
) -> (Vec<f32>, Vec<f32>) {
    let mut dx = vec![0f32; x.len()];
    let mut da = vec![0f64; c];
    for (i, ch) in channels_of(x.len(), c, s) {
        dx[i] = g[i] * (2.0 - 2.0 * (x[i] - a[ch]).abs()).max(0.0);
        da[ch] -= dx[i] as f64;
    }
    (dx, da.iter().map(|&v| v as f32).collect())
}

/// CPU reference of [`rprelu`] for `x` `[n, c, s]`.
pub fn rprelu_cpu(
    x: &[f32],
    beta: &[f32],
    gamma: &[f32],
    zeta: &[f32],
    [_, c, s]: [usize; 3],
) -> Vec<f32> {
    channels_of(x.len(), c, s)
        .map(|(i, ch)| {
            let t = x[i] - gamma[ch];
            if x[i] > gamma[ch] {
                t + zeta[ch]
            } else {
                beta[ch] * t + zeta[ch]
            }
        })
        .collect()
}

/// CPU reference of [`rprelu_backward`]: `(dx, dbeta, dgamma, dzeta)`, sums in f64.
pub fn rprelu_backward_cpu(
    x: &[f32],
    beta: &[f32],
    gamma: &[f32],
    g: &[f32],
    [_, c, s]: [usize; 3],
) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut dx = vec![0f32; x.len()];
    let mut sums = vec![[0f64; 3]; c];
    for (i, ch) in channels_of(x.len(), c, s) {
        let above = x[i] > gamma[ch];
        dx[i] = if above { g[i] } else { beta[ch] * g[i] };
        if !above {
            sums[ch][0] += g[i] as f64 * (x[i] - gamma[ch]) as f64;
        }
        sums[ch][1] -= dx[i] as f64;
        sums[ch][2] += g[i] as f64;
    }
    let col = |k: usize| sums.iter().map(|v| v[k] as f32).collect::<Vec<f32>>();
    (dx, col(0), col(1), col(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1.5, 1.5) that stay `margin` away from `kinks`,
    /// so central differences never straddle a kink.
    fn points(n: usize, seed: u64, kinks: &[f32], margin: f32) -> Vec<f32> {
        let mut state = seed;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let v = ((state >> 40) as f32 / (1u64 << 24) as f32) * 3.0 - 1.5;
            if kinks.iter().all(|k| (v - k).abs() > margin) {
                out.push(v);
            }
        }
        out
    }

    /// The function whose derivative ApproxSign is: -1 below -1, 2x + x^2 on
    /// [-1, 0), 2x - x^2 on [0, 1), 1 above.
    fn approx_sign(x: f64) -> f64 {
        if x < -1.0 {
            -1.0
        } else if x < 0.0 {
            2.0 * x + x * x
        } else if x < 1.0 {
            2.0 * x - x * x
        } else {
            1.0
        }
    }

    const EPS: f64 = 1e-3;

    /// Central difference of `f` at `x`.
    fn fd(f: impl Fn(f64) -> f64, x: f64) -> f64 {
        (f(x + EPS) - f(x - EPS)) / (2.0 * EPS)
    }

    fn close(what: &str, got: f32, want: f64) {
        // Central differences of a smooth piece: error O(EPS^2) times the
        // second derivative (at most 2 here); f32 inputs add ~1e-7.
        assert!(
            (got as f64 - want).abs() <= 1e-4 + 1e-4 * want.abs(),
            "{what}: backward {got}, finite difference {want}"
        );
    }

    #[test]
    fn surrogate_backwards_match_finite_differences() {
        let x = points(64, 1, &[-1.0, 0.0, 1.0], 0.01);
        let g = points(64, 2, &[], 0.0);
        let approx = approx_sign_backward_cpu(&x, &g);
        let ste = ste_sign_backward_cpu(&x, &g);
        let ht01 = hardtanh_backward_cpu(&x, &g, 0.0, 1.0);
        let hardtanh = |v: f64, lo: f64, hi: f64| v.max(lo).min(hi);
        for i in 0..x.len() {
            let (xi, gi) = (x[i] as f64, g[i] as f64);
            close("approx sign", approx[i], gi * fd(approx_sign, xi));
            close("ste sign", ste[i], gi * fd(|v| hardtanh(v, -1.0, 1.0), xi));
            close(
                "hardtanh(0, 1)",
                ht01[i],
                gi * fd(|v| hardtanh(v, 0.0, 1.0), xi),
            );
        }
        // The window is closed: x = lo and x = hi pass the gradient.
        assert_eq!(
            hardtanh_backward_cpu(&[0.0, 1.0, 1.0001], &[3.0; 3], 0.0, 1.0),
            [3.0, 3.0, 0.0]
        );
        assert_eq!(
            ste_sign_backward_cpu(&[-1.0, 1.0, -1.01], &[2.0; 3]),
            [2.0, 2.0, 0.0]
        );
    }

    #[test]
    fn forwards_take_the_documented_values() {
        assert_eq!(sign_cpu(&[0.0, -0.0, 1e-30, -1e-30]), [1.0, 1.0, 1.0, -1.0]);
        assert_eq!(
            ternary_cpu(&[-1.0, 0.2499, 0.25, 0.5, 0.7499, 0.75, 2.0]),
            [0.0, 0.0, 0.5, 0.5, 0.5, 1.0, 1.0]
        );
        assert_eq!(step01_cpu(&[0.49, 0.5, 0.51], 0.5), [0.0, 1.0, 1.0]);
        assert_eq!(clamp_cpu(&[-2.0, 0.5, 2.0], 0.0, 1.0), [0.0, 0.5, 1.0]);
    }

    #[test]
    fn rsign_backward_matches_finite_differences() {
        let dims = [3, 2, 5];
        let (n, c, s) = (dims[0], dims[1], dims[2]);
        let a = [0.3f32, -0.2];
        // Keep x - a away from the surrogate's kinks at -1, 0 and 1 (a value
        // too close moves to a[c] + 0.5, halfway between two kinks).
        let x: Vec<f32> = channels_of(n * c * s, c, s)
            .zip(points(n * c * s, 3, &[], 0.0))
            .map(|((_, ch), v)| {
                let clear = [-1.0f32, 0.0, 1.0]
                    .iter()
                    .all(|k| (v - a[ch] - k).abs() > 0.01);
                if clear { v } else { a[ch] + 0.5 }
            })
            .collect();
        let g = points(n * c * s, 4, &[], 0.0);
        let (dx, da) = rsign_backward_cpu(&x, &a, &g, dims);
        // L(x, a) = sum g * F(x - a[c]), F the ApproxSign primitive.
        let loss = |x: &[f64], a: &[f64]| -> f64 {
            channels_of(x.len(), c, s)
                .map(|(i, ch)| g[i] as f64 * approx_sign(x[i] - a[ch]))
                .sum()
        };
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let a64: Vec<f64> = a.iter().map(|&v| v as f64).collect();
        for i in 0..x.len() {
            let f = |v: f64| {
                let mut xs = x64.clone();
                xs[i] = v;
                loss(&xs, &a64)
            };
            close("rsign dx", dx[i], fd(f, x64[i]));
        }
        for ch in 0..c {
            let f = |v: f64| {
                let mut as_ = a64.clone();
                as_[ch] = v;
                loss(&x64, &as_)
            };
            close("rsign da", da[ch], fd(f, a64[ch]));
        }
    }

    #[test]
    fn rprelu_backward_matches_finite_differences() {
        let dims = [2, 3, 4];
        let (n, c, s) = (dims[0], dims[1], dims[2]);
        let beta = [0.25f32, -0.5, 1.5];
        let gamma = [0.1f32, -0.3, 0.0];
        let zeta = [0.2f32, 0.0, -0.4];
        let x: Vec<f32> = channels_of(n * c * s, c, s)
            .zip(points(n * c * s, 5, &[], 0.0))
            .map(|((_, ch), v)| {
                if (v - gamma[ch]).abs() > 0.05 {
                    v
                } else {
                    gamma[ch] + 0.3
                }
            })
            .collect();
        let g = points(n * c * s, 6, &[], 0.0);
        let (dx, dbeta, dgamma, dzeta) = rprelu_backward_cpu(&x, &beta, &gamma, &g, dims);
        let loss = |x: &[f32], b: &[f32], ga: &[f32], z: &[f32]| -> f64 {
            let y = rprelu_cpu(x, b, ga, z, dims);
            y.iter().zip(&g).map(|(&y, &g)| y as f64 * g as f64).sum()
        };
        // The CPU forward is f32, so differences use a wider step; the loss is
        // piecewise linear in every argument, so the step adds no truncation error.
        let h = 1e-2f32;
        let diff = |f: &dyn Fn(f32) -> f64, v: f32| (f(v + h) - f(v - h)) / (2.0 * h as f64);
        let check = |what: &str, got: f32, want: f64| {
            assert!(
                (got as f64 - want).abs() <= 1e-3,
                "{what}: backward {got}, finite difference {want}"
            );
        };
        for i in 0..x.len() {
            let f = |v: f32| {
                let mut xs = x.clone();
                xs[i] = v;
                loss(&xs, &beta, &gamma, &zeta)
            };
            check("rprelu dx", dx[i], diff(&f, x[i]));
        }
        for ch in 0..c {
            let with = |p: &[f32; 3], v: f32| {
                let mut q = *p;
                q[ch] = v;
                q
            };
            check(
                "rprelu dbeta",
                dbeta[ch],
                diff(&|v| loss(&x, &with(&beta, v), &gamma, &zeta), beta[ch]),
            );
            check(
                "rprelu dgamma",
                dgamma[ch],
                diff(&|v| loss(&x, &beta, &with(&gamma, v), &zeta), gamma[ch]),
            );
            check(
                "rprelu dzeta",
                dzeta[ch],
                diff(&|v| loss(&x, &beta, &gamma, &with(&zeta, v)), zeta[ch]),
            );
        }
    }
}
