//! Fused optimizer updates, one dispatch per parameter tensor, in place:
//! Adam, AdamW and SGD in torch.optim's operation order, plus a non-finite
//! check whose flag can veto the updates on the device.
//!
//! Hyper-parameters travel in each dispatch's parameters, so changing the
//! learning rate between steps costs nothing. Every update takes a `skip`
//! flag (u32 `[1]`): when `skip[0] != 0` the kernel writes nothing, so a
//! [`check_finite`] over the gradients can cancel a step without a read-back.
//! The step count `t` stays on the host: a vetoed step still counts there,
//! which only shifts Adam's bias corrections.

use crate::gpu::{Gpu, GpuError, Kernel};
use crate::kernel;
use crate::tensor::{DType, Tensor};

use super::{PerLane, groups_for};

/// Adam / AdamW hyper-parameters, f64 like the Python floats torch computes
/// its per-step scalars from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl AdamConfig {
    /// torch.optim.Adam's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, no weight decay.
    pub fn adam() -> AdamConfig {
        AdamConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }

    /// torch.optim.AdamW's defaults: Adam's, with weight decay 1e-2.
    pub fn adamw() -> AdamConfig {
        AdamConfig {
            weight_decay: 1e-2,
            ..AdamConfig::adam()
        }
    }
}

/// SGD hyper-parameters (torch.optim.SGD's, without `maximize`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
}

impl SgdConfig {
    /// Plain SGD at `lr`: no momentum, no weight decay.
    pub fn new(lr: f64) -> SgdConfig {
        SgdConfig {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }
}

/// How weight decay enters an Adam step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decay {
    None = 0,
    /// Adam: `g = g + weight_decay * w`.
    L2 = 1,
    /// AdamW: `w = w * (1 - lr * weight_decay)`.
    Decoupled = 2,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct AdamParams {
    n: u32,
    mode: u32,
    _pad0: u32,
    _pad1: u32,
    weight_decay: f32,
    decay: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    eps: f32,
    neg_step_size: f32,
    bc2_sqrt: f32,
}

impl AdamParams {
    /// The per-step scalars as torch computes them: in f64 on the host, then
    /// used as f32 by the f32 tensor ops.
    fn new(n: usize, cfg: &AdamConfig, step: u32, decoupled: bool) -> AdamParams {
        assert!(step >= 1, "Adam steps count from 1, got {step}");
        let mode = match (cfg.weight_decay != 0.0, decoupled) {
            (false, _) => Decay::None,
            (true, false) => Decay::L2,
            (true, true) => Decay::Decoupled,
        };
        let t = step as i32;
        let bias_correction1 = 1.0 - cfg.beta1.powi(t);
        let bias_correction2 = 1.0 - cfg.beta2.powi(t);
        AdamParams {
            n: n as u32,
            mode: mode as u32,
            _pad0: 0,
            _pad1: 0,
            weight_decay: cfg.weight_decay as f32,
            decay: (1.0 - cfg.lr * cfg.weight_decay) as f32,
            one_minus_beta1: (1.0 - cfg.beta1) as f32,
            beta2: cfg.beta2 as f32,
            one_minus_beta2: (1.0 - cfg.beta2) as f32,
            eps: cfg.eps as f32,
            neg_step_size: -(cfg.lr / bias_correction1) as f32,
            bc2_sqrt: bias_correction2.sqrt() as f32,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct SgdParams {
    n: u32,
    has_momentum: u32,
    first: u32,
    nesterov: u32,
    neg_lr: f32,
    momentum: f32,
    one_minus_dampening: f32,
    weight_decay: f32,
}

impl SgdParams {
    fn new(n: usize, cfg: &SgdConfig, step: u32) -> SgdParams {
        assert!(step >= 1, "SGD steps count from 1, got {step}");
        assert!(
            !cfg.nesterov || (cfg.momentum > 0.0 && cfg.dampening == 0.0),
            "Nesterov momentum requires a momentum and zero dampening"
        );
        SgdParams {
            n: n as u32,
            has_momentum: (cfg.momentum != 0.0) as u32,
            first: (step == 1) as u32,
            nesterov: cfg.nesterov as u32,
            neg_lr: -cfg.lr as f32,
            momentum: cfg.momentum as f32,
            one_minus_dampening: (1.0 - cfg.dampening) as f32,
            weight_decay: cfg.weight_decay as f32,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct CheckParams {
    n: u32,
    tag: u32,
    _pad: [u32; 2],
}

const ADAM: PerLane = PerLane {
    one: kernel!(
        ["optim/adam_common.wgsl", "optim/adam.wgsl"],
        "adam",
        [Read, Read, ReadWrite, ReadWrite, ReadWrite]
    ),
    four: kernel!(
        ["optim/adam_common.wgsl", "optim/adam4.wgsl"],
        "adam4",
        [Read, Read, ReadWrite, ReadWrite, ReadWrite]
    ),
};
const SGD: Kernel = kernel!("optim/sgd.wgsl", "sgd", [Read, Read, ReadWrite, ReadWrite]);
const CHECK_FINITE: PerLane = PerLane {
    one: kernel!(
        ["optim/check_finite_common.wgsl", "optim/check_finite.wgsl"],
        "check_finite",
        [Read, ReadWrite]
    ),
    four: kernel!(
        ["optim/check_finite_common.wgsl", "optim/check_finite4.wgsl"],
        "check_finite4",
        [Read, ReadWrite]
    ),
};

fn check_update_operands(what: &str, param: &Tensor, others: &[(&str, &Tensor)], skip: &Tensor) {
    assert_eq!(param.dtype(), DType::F32, "{what}: param must be f32");
    for (name, t) in others {
        assert_eq!(
            t.numel(),
            param.numel(),
            "{what}: {name} is {:?}, param is {:?}",
            t.shape(),
            param.shape()
        );
        assert!(
            !t.same_buffer(param),
            "{what}: {name} shares param's buffer"
        );
    }
    assert_eq!(skip.numel(), 1, "{what}: skip must be a u32 [1]");
}

#[allow(clippy::too_many_arguments)]
fn adam_like(
    gpu: &Gpu,
    param: &Tensor,
    grad: &Tensor,
    exp_avg: &Tensor,
    exp_avg_sq: &Tensor,
    skip: &Tensor,
    cfg: &AdamConfig,
    step: u32,
    decoupled: bool,
) {
    let what = if decoupled { "adamw_step" } else { "adam_step" };
    check_update_operands(
        what,
        param,
        &[
            ("grad", grad),
            ("exp_avg", exp_avg),
            ("exp_avg_sq", exp_avg_sq),
        ],
        skip,
    );
    assert!(
        !exp_avg.same_buffer(exp_avg_sq),
        "{what}: exp_avg and exp_avg_sq share a buffer"
    );
    let (kernel, lanes) = ADAM.pick(param.numel());
    let params = AdamParams::new(lanes, cfg, step, decoupled);
    gpu.launch(
        kernel,
        &[("WG", 64.0)],
        &params,
        &[
            grad.binding(),
            skip.binding(),
            param.binding(),
            exp_avg.binding(),
            exp_avg_sq.binding(),
        ],
        groups_for(gpu, lanes, 64),
    );
}

/// One torch.optim.Adam step (L2 weight decay, non-amsgrad) at step `t >= 1`,
/// in place on `param`, `exp_avg` (m) and `exp_avg_sq` (v), both zeros before
/// step 1, unless `skip[0] != 0`:
/// `g' = g + wd * w; m = lerp(m, g', 1 - b1); v = b2 * v + (1 - b2) * g'^2;`
/// `w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)`.
#[allow(clippy::too_many_arguments)]
pub fn adam_step(
    gpu: &Gpu,
    param: &Tensor,
    grad: &Tensor,
    exp_avg: &Tensor,
    exp_avg_sq: &Tensor,
    skip: &Tensor,
    cfg: &AdamConfig,
    step: u32,
) {
    adam_like(
        gpu, param, grad, exp_avg, exp_avg_sq, skip, cfg, step, false,
    );
}

/// One torch.optim.AdamW step at step `t >= 1`, as [`adam_step`] but with
/// decoupled weight decay: `w *= 1 - lr * wd` first, then the Adam step on
/// the plain gradient.
#[allow(clippy::too_many_arguments)]
pub fn adamw_step(
    gpu: &Gpu,
    param: &Tensor,
    grad: &Tensor,
    exp_avg: &Tensor,
    exp_avg_sq: &Tensor,
    skip: &Tensor,
    cfg: &AdamConfig,
    step: u32,
) {
    adam_like(gpu, param, grad, exp_avg, exp_avg_sq, skip, cfg, step, true);
}

/// One torch.optim.SGD step at step `t >= 1`, in place, unless `skip[0] != 0`:
/// `g' = g + wd * w`; with momentum, `b = g'` at t = 1 else
/// `b = momentum * b + (1 - dampening) * g'`, and `g' = g' + momentum * b`
/// (Nesterov) or `g' = b`; then `w -= lr * g'`.
/// `momentum_buffer` is needed only when `cfg.momentum != 0`. If step 1 is
/// vetoed by `skip`, a zero-initialised buffer makes step 2 start it as
/// `(1 - dampening) * g'`, which is torch's `g'` when dampening is 0.
pub fn sgd_step(
    gpu: &Gpu,
    param: &Tensor,
    grad: &Tensor,
    momentum_buffer: Option<&Tensor>,
    skip: &Tensor,
    cfg: &SgdConfig,
    step: u32,
) -> Result<(), GpuError> {
    let params = SgdParams::new(param.numel(), cfg, step);
    // Without momentum the kernel never touches the buffer binding, but it is
    // read-write and may not alias param: one word stands in.
    let placeholder;
    let buffer = match momentum_buffer {
        Some(b) => b,
        None => {
            assert!(
                cfg.momentum == 0.0,
                "sgd_step: momentum {} needs a momentum buffer",
                cfg.momentum
            );
            placeholder = Tensor::empty(gpu, &[1], DType::F32)?;
            &placeholder
        }
    };
    let mut others = vec![("grad", grad)];
    if momentum_buffer.is_some() {
        others.push(("momentum_buffer", buffer));
    }
    check_update_operands("sgd_step", param, &others, skip);
    gpu.launch(
        &SGD,
        &[("WG", 64.0)],
        &params,
        &[
            grad.binding(),
            skip.binding(),
            param.binding(),
            buffer.binding(),
        ],
        groups_for(gpu, param.numel(), 64),
    );
    Ok(())
}

/// A cleared flag for [`check_finite`] and the updates' `skip`: u32 `[1]` = 0.
pub fn finite_flag(gpu: &Gpu) -> Result<Tensor, GpuError> {
    Tensor::zeros(gpu, &[1], DType::U32)
}

/// `flag[0] |= 1` if any element of `x` is NaN or +-inf (exponent bits all
/// ones); never clears it, so several tensors can be checked into one flag.
pub fn check_finite(gpu: &Gpu, x: &Tensor, flag: &Tensor) {
    check_finite_tagged(gpu, x, flag, 1);
}

/// [`check_finite`] that ORs `tag` (non-zero) into the flag, so one flag can
/// tell which of up to 32 checked tensors held a NaN or an infinity.
pub fn check_finite_tagged(gpu: &Gpu, x: &Tensor, flag: &Tensor, tag: u32) {
    assert_ne!(tag, 0, "check_finite_tagged: tag must be non-zero");
    assert_eq!(x.dtype(), DType::F32, "check_finite: x must be f32");
    assert_eq!(flag.numel(), 1, "check_finite: flag must be a u32 [1]");
    assert!(
        !x.same_buffer(flag),
        "check_finite: x and flag share a buffer"
    );
    if x.numel() == 0 {
        return;
    }
    let (kernel, lanes) = CHECK_FINITE.pick(x.numel());
    gpu.launch(
        kernel,
        &[("WG", 64.0)],
        &CheckParams {
            n: lanes as u32,
            tag,
            _pad: [0; 2],
        },
        &[x.binding(), flag.binding()],
        groups_for(gpu, lanes, 64),
    );
}

/// torch.lerp on f32: the form that is exact at the nearer end point.
fn torch_lerp(a: f32, b: f32, w: f32) -> f32 {
    if w.abs() < 0.5 {
        a + w * (b - a)
    } else {
        b - (b - a) * (1.0 - w)
    }
}

fn adam_like_cpu(
    param: &mut [f32],
    grad: &[f32],
    exp_avg: &mut [f32],
    exp_avg_sq: &mut [f32],
    cfg: &AdamConfig,
    step: u32,
    decoupled: bool,
) {
    let p = AdamParams::new(param.len(), cfg, step, decoupled);
    for i in 0..param.len() {
        let mut w = param[i];
        let mut g = grad[i];
        if p.mode == Decay::L2 as u32 {
            g += p.weight_decay * w;
        } else if p.mode == Decay::Decoupled as u32 {
            w *= p.decay;
        }
        let m = torch_lerp(exp_avg[i], g, p.one_minus_beta1);
        let v = exp_avg_sq[i] * p.beta2 + p.one_minus_beta2 * g * g;
        exp_avg[i] = m;
        exp_avg_sq[i] = v;
        let denom = v.sqrt() / p.bc2_sqrt + p.eps;
        param[i] = w + p.neg_step_size * (m / denom);
    }
}

/// CPU reference of [`adam_step`], f32 in torch's operation order.
pub fn adam_step_cpu(
    param: &mut [f32],
    grad: &[f32],
    exp_avg: &mut [f32],
    exp_avg_sq: &mut [f32],
    cfg: &AdamConfig,
    step: u32,
) {
    adam_like_cpu(param, grad, exp_avg, exp_avg_sq, cfg, step, false);
}

/// CPU reference of [`adamw_step`], f32 in torch's operation order.
pub fn adamw_step_cpu(
    param: &mut [f32],
    grad: &[f32],
    exp_avg: &mut [f32],
    exp_avg_sq: &mut [f32],
    cfg: &AdamConfig,
    step: u32,
) {
    adam_like_cpu(param, grad, exp_avg, exp_avg_sq, cfg, step, true);
}

/// CPU reference of [`sgd_step`], f32 in torch's operation order; the buffer
/// may be empty when `cfg.momentum == 0`.
pub fn sgd_step_cpu(
    param: &mut [f32],
    grad: &[f32],
    momentum_buffer: &mut [f32],
    cfg: &SgdConfig,
    step: u32,
) {
    let p = SgdParams::new(param.len(), cfg, step);
    for i in 0..param.len() {
        let w = param[i];
        let mut g = grad[i];
        if p.weight_decay != 0.0 {
            g += p.weight_decay * w;
        }
        if p.has_momentum != 0 {
            let b = if p.first != 0 {
                g
            } else {
                momentum_buffer[i] * p.momentum + p.one_minus_dampening * g
            };
            momentum_buffer[i] = b;
            g = if p.nesterov != 0 {
                g + p.momentum * b
            } else {
                b
            };
        }
        param[i] = w + p.neg_lr * g;
    }
}

/// CPU reference of [`check_finite`]: whether any element is NaN or infinite.
pub fn check_finite_cpu(x: &[f32]) -> bool {
    x.iter().any(|v| !v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRADS: [[f32; 4]; 3] = [
        [0.5, -0.25, 1e-3, -2.0],
        [0.1, 0.3, -0.7, 4.0],
        [-1.0, 0.0, 0.2, 0.05],
    ];

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + b.abs())
    }

    /// With a constant gradient the bias corrections are exact: mhat = g,
    /// vhat = g^2, so every Adam step moves w by lr * g / (|g| + eps), and
    /// AdamW first scales w by 1 - lr * wd. Tolerance: a few f32 ulps per step.
    #[test]
    fn adam_and_adamw_on_a_constant_gradient() {
        let g = GRADS[0];
        for decoupled in [false, true] {
            let cfg = AdamConfig {
                lr: 0.01,
                weight_decay: if decoupled { 0.1 } else { 0.0 },
                ..AdamConfig::adam()
            };
            let mut w = [1.0f32, -0.5, 0.25, 2.0];
            let mut want: Vec<f64> = w.iter().map(|&v| v as f64).collect();
            let (mut m, mut v) = ([0f32; 4], [0f32; 4]);
            for step in 1..=4 {
                adam_like_cpu(&mut w, &g, &mut m, &mut v, &cfg, step, decoupled);
                for (i, wi) in want.iter_mut().enumerate() {
                    let gi = g[i] as f64;
                    *wi *= 1.0 - cfg.lr * cfg.weight_decay;
                    *wi -= cfg.lr * gi / (gi.abs() + cfg.eps);
                }
            }
            for i in 0..4 {
                assert!(
                    close(w[i] as f64, want[i], 1e-6),
                    "decoupled {decoupled} w[{i}] = {}, want {}",
                    w[i],
                    want[i]
                );
            }
        }
    }

    /// Adam's L2 decay is the plain step on g + wd * w: one step by hand.
    #[test]
    fn adam_l2_decay_adds_to_the_gradient() {
        let cfg = AdamConfig {
            lr: 0.1,
            weight_decay: 0.5,
            ..AdamConfig::adam()
        };
        let mut w = [1.0f32, -2.0, 0.0, 3.0];
        let g = GRADS[1];
        let (mut m, mut v) = ([0f32; 4], [0f32; 4]);
        let w0 = w;
        adam_step_cpu(&mut w, &g, &mut m, &mut v, &cfg, 1);
        for i in 0..4 {
            let gi = g[i] as f64 + 0.5 * w0[i] as f64;
            assert!(close(m[i] as f64, 0.1 * gi, 1e-6));
            assert!(close(v[i] as f64, 0.001 * gi * gi, 1e-6));
            let want = w0[i] as f64 - 0.1 * gi / (gi.abs() + 1e-8);
            assert!(
                close(w[i] as f64, want, 1e-6),
                "w[{i}] = {}, want {want}",
                w[i]
            );
        }
    }

    /// SGD with momentum (plain and Nesterov) and weight decay, three steps
    /// by hand in f64; plain SGD without a buffer.
    #[test]
    fn sgd_follows_torch_by_hand() {
        for nesterov in [false, true] {
            let cfg = SgdConfig {
                lr: 0.1,
                momentum: 0.9,
                dampening: 0.0,
                weight_decay: 0.01,
                nesterov,
            };
            let mut w = [1.0f32, -1.0, 0.5, 0.0];
            let mut buf = [0f32; 4];
            let mut want_w: Vec<f64> = w.iter().map(|&v| v as f64).collect();
            let mut want_b = [0f64; 4];
            for (t, g) in GRADS.iter().enumerate() {
                sgd_step_cpu(&mut w, g, &mut buf, &cfg, t as u32 + 1);
                for i in 0..4 {
                    let gi = g[i] as f64 + 0.01 * want_w[i];
                    want_b[i] = if t == 0 { gi } else { 0.9 * want_b[i] + gi };
                    let d = if nesterov {
                        gi + 0.9 * want_b[i]
                    } else {
                        want_b[i]
                    };
                    want_w[i] -= 0.1 * d;
                }
            }
            for i in 0..4 {
                assert!(
                    close(w[i] as f64, want_w[i], 1e-6),
                    "nesterov {nesterov} w[{i}]"
                );
                assert!(
                    close(buf[i] as f64, want_b[i], 1e-6),
                    "nesterov {nesterov} buf[{i}]"
                );
            }
        }
        let mut w = [1.0f32, 2.0, 3.0, 4.0];
        sgd_step_cpu(&mut w, &GRADS[0], &mut [], &SgdConfig::new(0.5), 1);
        assert_eq!(w, [0.75, 2.125, 2.9995, 5.0]);
    }

    /// torch.lerp's two branches agree with a + w * (b - a) and are exact at
    /// the nearer end.
    #[test]
    fn lerp_is_exact_at_the_nearer_end() {
        assert_eq!(torch_lerp(3.0, 7.0, 0.0), 3.0);
        assert_eq!(torch_lerp(3.0, 7.0, 1.0), 7.0);
        assert_eq!(torch_lerp(3.0, 7.0, 0.25), 4.0);
        assert_eq!(torch_lerp(3.0, 7.0, 0.75), 6.0);
    }

    #[test]
    fn check_finite_cpu_flags_nan_and_infinities() {
        assert!(!check_finite_cpu(&[
            0.0,
            -0.0,
            f32::MAX,
            f32::MIN_POSITIVE / 2.0
        ]));
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            assert!(check_finite_cpu(&[1.0, bad]));
        }
    }
}
