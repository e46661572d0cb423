//! Losses over logits `[N, C]`: softmax cross-entropy against u32 labels
//! `[N]`, and knowledge distillation from teacher logits at a temperature.
//!
//! Rows are processed one invocation per row (class counts here are small:
//! tens to a thousand); the mean over rows is [`reduce_all`]. Labels are
//! validated by the host elsewhere; on the device a label `>= C` is never
//! used as an index: its row loss is NaN (so the mean shows it) and its
//! backward row has no one-hot term.

use crate::gpu::{Gpu, GpuError, Kernel};
use crate::kernel;
use crate::tensor::{DType, Tensor};

use super::groups_for;
use super::reduce::{Reduction, reduce_all};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LossParams {
    n: u32,
    c: u32,
    a: f32,
    b: f32,
}

const CE: Kernel = kernel!(
    "loss/cross_entropy.wgsl",
    "cross_entropy_forward",
    [Read, Read, ReadWrite, ReadWrite]
);
const CE_BACKWARD: Kernel = kernel!(
    "loss/cross_entropy_backward.wgsl",
    "cross_entropy_backward",
    [Read, Read, ReadWrite]
);
const KD: Kernel = kernel!("loss/kd.wgsl", "kd_forward", [Read, Read, ReadWrite]);
const KD_BACKWARD: Kernel = kernel!("loss/kd.wgsl", "kd_backward", [Read, Read, ReadWrite]);

fn rows_cols(logits: &Tensor, op: &str) -> (usize, usize) {
    let shape = logits.shape();
    assert!(
        shape.len() == 2 && shape[0] > 0 && shape[1] > 0,
        "{op}: logits {logits:?} must be a non-empty [N, C]"
    );
    (shape[0], shape[1])
}

fn check_labels(labels: &Tensor, n: usize, op: &str) {
    assert_eq!(labels.dtype(), DType::U32, "{op}: labels must be u32");
    assert_eq!(labels.numel(), n, "{op}: {labels:?} for {n} rows");
}

/// Softmax cross-entropy: returns `(loss [1], probs [N, C])` with
/// `probs = softmax(z)` per row and
/// `loss = (1/N) sum_r -log softmax(z_r)[label_r]`, computed as
/// `log sum_c exp(z_rc - m_r) + m_r - z_r,label` (`m_r` the row max).
pub fn softmax_cross_entropy(
    gpu: &Gpu,
    logits: &Tensor,
    labels: &Tensor,
) -> Result<(Tensor, Tensor), GpuError> {
    let (n, c) = rows_cols(logits, "softmax_cross_entropy");
    check_labels(labels, n, "softmax_cross_entropy");
    let probs = Tensor::empty(gpu, &[n, c], DType::F32)?;
    let rowloss = Tensor::empty(gpu, &[n], DType::F32)?;
    let params = LossParams {
        n: n as u32,
        c: c as u32,
        a: 0.0,
        b: 0.0,
    };
    gpu.launch(
        &CE,
        &[("WG", 64.0)],
        &params,
        &[
            logits.binding(),
            labels.binding(),
            probs.binding(),
            rowloss.binding(),
        ],
        groups_for(gpu, n, 64),
    );
    Ok((reduce_all(gpu, &rowloss, Reduction::Mean)?, probs))
}

/// Backward of [`softmax_cross_entropy`] from its `probs`:
/// `dlogits = (probs - onehot(labels)) / N`.
pub fn softmax_cross_entropy_backward(
    gpu: &Gpu,
    probs: &Tensor,
    labels: &Tensor,
) -> Result<Tensor, GpuError> {
    let (n, c) = rows_cols(probs, "softmax_cross_entropy_backward");
    check_labels(labels, n, "softmax_cross_entropy_backward");
    let dlogits = Tensor::empty(gpu, &[n, c], DType::F32)?;
    let params = LossParams {
        n: n as u32,
        c: c as u32,
        a: 1.0 / n as f32,
        b: 0.0,
    };
    gpu.launch(
        &CE_BACKWARD,
        &[("WG", 64.0)],
        &params,
        &[probs.binding(), labels.binding(), dlogits.binding()],
        groups_for(gpu, n * c, 64),
    );
    Ok(dlogits)
}

fn kd_launch(
    gpu: &Gpu,
    kernel: &Kernel,
    student: &Tensor,
    teacher: &Tensor,
    temperature: f32,
    out_shape: &[usize],
) -> Result<Tensor, GpuError> {
    let (n, c) = rows_cols(student, kernel.entry);
    assert_eq!(
        student.shape(),
        teacher.shape(),
        "{}: teacher {teacher:?} for student {student:?}",
        kernel.entry
    );
    assert!(
        temperature > 0.0,
        "{}: temperature {temperature} must be > 0",
        kernel.entry
    );
    let out = Tensor::empty(gpu, out_shape, DType::F32)?;
    let params = LossParams {
        n: n as u32,
        c: c as u32,
        a: 1.0 / temperature,
        b: 1.0 / (n as f32 * temperature),
    };
    gpu.launch(
        kernel,
        &[("WG", 64.0)],
        &params,
        &[student.binding(), teacher.binding(), out.binding()],
        groups_for(gpu, n, 64),
    );
    Ok(out)
}

/// Distillation loss at temperature `T`, shape `[1]`:
/// `-(1/N) sum_r sum_c softmax(t_r/T)_c * log softmax(s_r/T)_c`
/// (student `s`, teacher `t`, both `[N, C]`). No `T^2` factor: callers that
/// want Hinton's scaling multiply the loss and gradient by `T^2` themselves.
pub fn kd_loss(
    gpu: &Gpu,
    student: &Tensor,
    teacher: &Tensor,
    temperature: f32,
) -> Result<Tensor, GpuError> {
    let (n, _) = rows_cols(student, "kd_loss");
    let rowloss = kd_launch(gpu, &KD, student, teacher, temperature, &[n])?;
    reduce_all(gpu, &rowloss, Reduction::Mean)
}

/// Gradient of [`kd_loss`] with respect to the student logits:
/// `(softmax(s/T) - softmax(t/T)) / (N * T)`, shape `[N, C]`.
pub fn kd_loss_backward(
    gpu: &Gpu,
    student: &Tensor,
    teacher: &Tensor,
    temperature: f32,
) -> Result<Tensor, GpuError> {
    kd_launch(
        gpu,
        &KD_BACKWARD,
        student,
        teacher,
        temperature,
        student.shape(),
    )
}

// CPU references, in f64 inside.

/// `(max, log sum exp(z - max))` of a row.
fn log_sum_exp(z: &[f64]) -> (f64, f64) {
    let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    (m, z.iter().map(|v| (v - m).exp()).sum::<f64>().ln())
}

fn softmax(z: &[f64]) -> Vec<f64> {
    let (m, lse) = log_sum_exp(z);
    z.iter().map(|v| (v - m - lse).exp()).collect()
}

fn to_f64(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

/// Mean cross-entropy of `[n, c]` logits in f64 (NaN rows for labels >= c).
fn cross_entropy_f64(logits: &[f64], labels: &[u32], c: usize) -> f64 {
    let n = labels.len();
    let total: f64 = logits
        .chunks(c)
        .zip(labels)
        .map(|(z, &l)| {
            let (m, lse) = log_sum_exp(z);
            z.get(l as usize).map_or(f64::NAN, |zl| lse + m - zl)
        })
        .sum();
    total / n as f64
}

/// Mean distillation loss of `[n, c]` student and teacher logits in f64.
fn kd_f64(student: &[f64], teacher: &[f64], c: usize, temperature: f64) -> f64 {
    let n = student.len() / c;
    let total: f64 = student
        .chunks(c)
        .zip(teacher.chunks(c))
        .map(|(s, t)| {
            let s: Vec<f64> = s.iter().map(|v| v / temperature).collect();
            let t: Vec<f64> = t.iter().map(|v| v / temperature).collect();
            let (m, lse) = log_sum_exp(&s);
            let pt = softmax(&t);
            -pt.iter()
                .zip(&s)
                .map(|(p, z)| p * (z - m - lse))
                .sum::<f64>()
        })
        .sum();
    total / n as f64
}

/// CPU reference of [`softmax_cross_entropy`]: `(loss, probs)` for logits `[n, c]`.
pub fn softmax_cross_entropy_cpu(logits: &[f32], labels: &[u32], c: usize) -> (f32, Vec<f32>) {
    let z = to_f64(logits);
    let probs = z.chunks(c).flat_map(softmax).map(|v| v as f32).collect();
    (cross_entropy_f64(&z, labels, c) as f32, probs)
}

/// CPU reference of [`softmax_cross_entropy_backward`].
pub fn softmax_cross_entropy_backward_cpu(probs: &[f32], labels: &[u32], c: usize) -> Vec<f32> {
    let n = labels.len();
    probs
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let onehot = (labels[i / c] as usize == i % c) as u8 as f32;
            (p - onehot) / n as f32
        })
        .collect()
}

/// CPU reference of [`kd_loss`] for `[n, c]` logits.
pub fn kd_loss_cpu(student: &[f32], teacher: &[f32], c: usize, temperature: f32) -> f32 {
    kd_f64(&to_f64(student), &to_f64(teacher), c, temperature as f64) as f32
}

/// CPU reference of [`kd_loss_backward`].
pub fn kd_loss_backward_cpu(
    student: &[f32],
    teacher: &[f32],
    c: usize,
    temperature: f32,
) -> Vec<f32> {
    let t = temperature as f64;
    let n = student.len() / c;
    let scaled = |x: &[f32]| x.iter().map(|&v| v as f64 / t).collect::<Vec<f64>>();
    student
        .chunks(c)
        .zip(teacher.chunks(c))
        .flat_map(|(s, tc)| {
            let ps = softmax(&scaled(s));
            let pt = softmax(&scaled(tc));
            ps.iter()
                .zip(pt)
                .map(|(a, b)| ((a - b) / (n as f64 * t)) as f32)
                .collect::<Vec<f32>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits(n: usize, seed: u64, spread: f32) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * spread
            })
            .collect()
    }

    /// Central differences in f64 with h = 1e-5: truncation error about
    /// h^2 * f''' (f''' is O(1) here), rounding about 1e-16 / h, both far
    /// below the 1e-6 tolerance; the backward's f32 output adds ~1e-8.
    fn fd_check(what: &str, grad: &[f32], x: &[f32], f: impl Fn(&[f64]) -> f64) {
        let h = 1e-5;
        let x = to_f64(x);
        for i in 0..x.len() {
            let mut xp = x.clone();
            xp[i] += h;
            let mut xm = x.clone();
            xm[i] -= h;
            let want = (f(&xp) - f(&xm)) / (2.0 * h);
            assert!(
                (grad[i] as f64 - want).abs() <= 1e-6 + 1e-5 * want.abs(),
                "{what}: element {i}: backward {}, finite difference {want}",
                grad[i]
            );
        }
    }

    #[test]
    fn cross_entropy_backward_matches_finite_differences() {
        let (n, c) = (4, 5);
        let z = logits(n * c, 1, 3.0);
        let labels = [0, 4, 2, 2];
        let (_, probs) = softmax_cross_entropy_cpu(&z, &labels, c);
        let grad = softmax_cross_entropy_backward_cpu(&probs, &labels, c);
        fd_check("cross entropy", &grad, &z, |z| {
            cross_entropy_f64(z, &labels, c)
        });
    }

    #[test]
    fn kd_backward_matches_finite_differences() {
        let (n, c) = (3, 6);
        let s = logits(n * c, 2, 4.0);
        let t = logits(n * c, 3, 4.0);
        for temperature in [1.0f32, 2.5, 4.0] {
            let grad = kd_loss_backward_cpu(&s, &t, c, temperature);
            let t64 = to_f64(&t);
            fd_check(&format!("kd T={temperature}"), &grad, &s, |s| {
                kd_f64(s, &t64, c, temperature as f64)
            });
        }
    }

    #[test]
    fn losses_take_known_values() {
        // Uniform logits: loss log C, and the f32 forward agrees with f64.
        let (loss, probs) = softmax_cross_entropy_cpu(&[0.0; 8], &[1, 3], 4);
        assert!((loss - 4f32.ln()).abs() < 1e-6);
        assert!(probs.iter().all(|&p| (p - 0.25).abs() < 1e-7));
        // Huge logits stay finite: max subtraction.
        let (loss, _) = softmax_cross_entropy_cpu(&[1000.0, 0.0], &[1], 2);
        assert!((loss - 1000.0).abs() < 1e-3);
        // A label out of range flags the loss as NaN.
        assert!(softmax_cross_entropy_cpu(&[0.0, 1.0], &[2], 2).0.is_nan());
        // Distilling from yourself: the loss is the entropy, the gradient 0.
        let s = [0.3f32, -1.0, 2.0];
        let p = softmax(&to_f64(&s));
        let entropy: f64 = -p.iter().map(|v| v * v.ln()).sum::<f64>();
        assert!((kd_loss_cpu(&s, &s, 3, 1.0) as f64 - entropy).abs() < 1e-6);
        assert!(
            kd_loss_backward_cpu(&s, &s, 3, 2.0)
                .iter()
                .all(|&g| g.abs() < 1e-9)
        );
    }
}
