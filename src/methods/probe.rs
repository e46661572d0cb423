//! Gradient-mismatch probe (BinaryDuo's metric, METHODS.md section 2): the
//! cosine similarity between the straight-through gradient of a layer's
//! latent weights and the gradient of the Gaussian-smoothed quantized loss.
//!
//! The quantized loss is flat almost everywhere in the latent weights
//! (only sign flips change it), so plain finite differences give zero; its
//! smoothing `E[L(w + e)]`, `e ~ N(0, sigma^2)`, has the gradient
//! `E[L(w + e) e] / sigma^2`, estimated by Monte Carlo with antithetic pairs:
//! `mean over pairs of (L(w + e) - L(w - e)) e / (2 sigma^2)`. Only a small
//! sampled set of one layer's weights is perturbed (and compared); the
//! other weights stay put. The loss is the training loss on a fixed probe
//! batch in training mode (batch statistics) with the running-statistics
//! update switched off, so the probe does not change the model.
//!
//! The probed layer is the model's first binary layer (`bmlp` fc1, `bcnn`
//! conv2), whose gradient passes through every binary activation's STE.
//! `sigma` defaults to half the layer's mean |W| (`--probe-sigma 0`), which
//! flips the signs of the smaller sampled weights.

use crate::autograd::{Tape, ops};
use crate::data::rng::SplitMix64;
use crate::data::{self, Batches, Dataset};
use crate::gpu::Gpu;
use crate::methods::{Method, MethodCtx};
use crate::nn::{Ctx, Model, ParamId};
use crate::tensor::Tensor;

/// How the probe runs (flags `--probe-*`).
#[derive(Clone, Copy, Debug)]
pub struct ProbeConfig {
    /// Every this many epochs (and at the last epoch of a run).
    pub every: usize,
    /// Noise standard deviation; 0: half the probed layer's mean |W|.
    pub sigma: f64,
    /// Antithetic pairs of the Monte Carlo estimate.
    pub pairs: usize,
    /// Sampled weights of the layer.
    pub weights: usize,
    /// Images in the fixed probe batch.
    pub batch: usize,
    pub seed: u64,
}

/// One probe's outcome.
#[derive(Clone, Debug)]
pub struct ProbeResult {
    pub cos: f64,
    pub sigma: f64,
    pub pairs: usize,
    pub weights: usize,
    pub layer: String,
}

/// A standard normal draw (Box-Muller).
fn normal(rng: &mut SplitMix64) -> f64 {
    let u1 = rng.next_f64().max(1e-300);
    let u2 = rng.next_f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The antithetic Monte Carlo estimate of the gradient of the Gaussian
/// smoothing of `loss` at `w`, in the coordinates `idx` only:
/// `mean over pairs of (L(w + e) - L(w - e)) e / (2 sigma^2)`.
pub fn smoothed_gradient(
    w: &[f32],
    idx: &[usize],
    sigma: f64,
    pairs: usize,
    rng: &mut SplitMix64,
    mut loss: impl FnMut(&[f32]) -> anyhow::Result<f64>,
) -> anyhow::Result<Vec<f64>> {
    let mut g = vec![0f64; idx.len()];
    let mut wp = w.to_vec();
    for _ in 0..pairs {
        let e: Vec<f64> = idx.iter().map(|_| sigma * normal(rng)).collect();
        for (k, &i) in idx.iter().enumerate() {
            wp[i] = (w[i] as f64 + e[k]) as f32;
        }
        let lp = loss(&wp)?;
        for (k, &i) in idx.iter().enumerate() {
            wp[i] = (w[i] as f64 - e[k]) as f32;
        }
        let lm = loss(&wp)?;
        for (k, ek) in e.iter().enumerate() {
            g[k] += (lp - lm) * ek / (2.0 * sigma * sigma * pairs as f64);
        }
    }
    Ok(g)
}

/// Cosine similarity (0 when either vector is 0).
pub fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// Training-mode loss (no running-statistics update) and, with `grad`,
/// the gradient of `weight`.
fn loss_and_grad(
    gpu: &std::sync::Arc<Gpu>,
    model: &dyn Model,
    x: &Tensor,
    labels: &Tensor,
    weight: ParamId,
    grad: bool,
) -> anyhow::Result<(f64, Option<Vec<f32>>)> {
    let mut tape = Tape::new(gpu.clone());
    let mut ctx = Ctx::for_model(&mut tape, model, true);
    ctx.bn_momentum = 0.0;
    ctx.grads = grad;
    let xv = ctx.tape.leaf(x.clone(), false);
    let logits = model.forward(&mut ctx, xv)?;
    let leaves = ctx.leaves();
    let loss = ops::softmax_cross_entropy(&mut tape, logits, labels)?;
    let l = tape.value(loss).to_f32(gpu)?[0] as f64;
    if !grad {
        return Ok((l, None));
    }
    let wv = leaves
        .iter()
        .find(|(p, _)| *p == weight)
        .map(|(_, v)| *v)
        .ok_or_else(|| anyhow::anyhow!("probe: the probed layer is not used by the forward"))?;
    let seed = ops::loss_seed(&tape)?;
    let grads = tape.backward(loss, seed)?;
    let g = grads
        .get(wv)
        .ok_or_else(|| anyhow::anyhow!("probe: no gradient for the probed layer"))?
        .to_f32(gpu)?;
    Ok((l, Some(g)))
}

/// Runs the probe on `model`'s first binary layer with batch `(x, labels)`.
pub fn probe(
    gpu: &std::sync::Arc<Gpu>,
    model: &mut dyn Model,
    x: &Tensor,
    labels: &Tensor,
    cfg: &ProbeConfig,
) -> anyhow::Result<ProbeResult> {
    let weight = *model
        .store()
        .binary_weights()
        .first()
        .ok_or_else(|| anyhow::anyhow!("probe: {} has no binary layer", model.name()))?;
    let layer = model.store().entry(weight).name.clone();
    let original = model.store().get(weight).clone();
    let shape = original.shape().to_vec();
    let w = original.to_f32(gpu)?;
    let mut rng = SplitMix64::new(cfg.seed).fork(0x9b0b);
    let n = cfg.weights.min(w.len());
    // n distinct indices (partial Fisher-Yates on an index list).
    let mut all: Vec<usize> = (0..w.len()).collect();
    for k in 0..n {
        let j = k + rng.below((w.len() - k) as u64) as usize;
        all.swap(k, j);
    }
    let idx = all[..n].to_vec();
    let sigma = if cfg.sigma > 0.0 {
        cfg.sigma
    } else {
        0.5 * w.iter().map(|v| v.abs() as f64).sum::<f64>() / w.len() as f64
    };
    let (_, g) = loss_and_grad(gpu, model, x, labels, weight, true)?;
    let g = g.unwrap();
    let ste: Vec<f64> = idx.iter().map(|&i| g[i] as f64).collect();
    let est = {
        let mut loss = |wp: &[f32]| -> anyhow::Result<f64> {
            model.store_mut().entries[weight.0].value = Tensor::from_f32(gpu, &shape, wp)?;
            Ok(loss_and_grad(gpu, model, x, labels, weight, false)?.0)
        };
        smoothed_gradient(&w, &idx, sigma, cfg.pairs, &mut rng, &mut loss)
    };
    model.store_mut().entries[weight.0].value = original;
    Ok(ProbeResult {
        cos: cosine(&ste, &est?),
        sigma,
        pairs: cfg.pairs,
        weights: n,
        layer,
    })
}

/// The fixed probe batch: the first `n` training images.
pub fn probe_batch(
    gpu: &Gpu,
    train: &Dataset,
    n: usize,
    input_shape: &[usize],
) -> anyhow::Result<(Tensor, Tensor)> {
    let mut batches = Batches::new(train, n.min(train.n).max(1), None, 0)?;
    let mut b = data::Batch::default();
    anyhow::ensure!(batches.next_into(&mut b), "probe: no training images");
    crate::train::upload(gpu, &b, input_shape)
}

/// Wraps a run's method and adds the probe at the end of every
/// `every`-th epoch, logged as `grad_mismatch_cos`, `grad_mismatch_sigma`,
/// `grad_mismatch_pairs`, `grad_mismatch_weights`, `grad_mismatch_layer`.
pub struct WithProbe {
    inner: Box<dyn Method>,
    cfg: ProbeConfig,
    last_epoch: usize,
    pending: Option<ProbeResult>,
}

impl WithProbe {
    pub fn new(inner: Box<dyn Method>, cfg: ProbeConfig, last_epoch: usize) -> WithProbe {
        WithProbe {
            inner,
            cfg,
            last_epoch,
            pending: None,
        }
    }
}

impl Method for WithProbe {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn before_epoch(&mut self, ctx: &mut MethodCtx) -> anyhow::Result<()> {
        self.inner.before_epoch(ctx)
    }
    fn after_step(&mut self, ctx: &mut MethodCtx, step: usize) -> anyhow::Result<()> {
        self.inner.after_step(ctx, step)
    }
    fn save_state(&self, gpu: &crate::gpu::Gpu) -> anyhow::Result<super::MethodState> {
        self.inner.save_state(gpu)
    }
    fn restore_state(
        &mut self,
        gpu: &crate::gpu::Gpu,
        model: &dyn crate::nn::Model,
        state: super::MethodState,
    ) -> anyhow::Result<()> {
        self.inner.restore_state(gpu, model, state)
    }
    fn end_of_epoch(&mut self, ctx: &mut MethodCtx) -> anyhow::Result<()> {
        self.inner.end_of_epoch(ctx)?;
        if ctx.epoch.is_multiple_of(self.cfg.every) || ctx.epoch == self.last_epoch {
            let shape = ctx.model.input_shape();
            let (x, y) = probe_batch(ctx.gpu, ctx.train_set, self.cfg.batch, &shape)?;
            self.pending = Some(probe(ctx.gpu, ctx.model, &x, &y, &self.cfg)?);
        }
        Ok(())
    }
    fn epoch_metrics(&mut self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = self.inner.epoch_metrics();
        if let Some(p) = self.pending.take() {
            m.insert("grad_mismatch_cos".into(), p.cos.into());
            m.insert("grad_mismatch_sigma".into(), p.sigma.into());
            m.insert("grad_mismatch_pairs".into(), p.pairs.into());
            m.insert("grad_mismatch_weights".into(), p.weights.into());
            m.insert("grad_mismatch_layer".into(), p.layer.into());
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth (quadratic) loss: its smoothed gradient is the true
    /// gradient, and antithetic pairs cancel the curvature exactly, so the
    /// estimate's cosine with the true gradient approaches 1.
    #[test]
    fn smoothed_gradient_of_a_quadratic_is_its_gradient() {
        let w: Vec<f32> = vec![0.3, -0.2, 0.5, 0.1, -0.4, 0.0, 0.2, -0.1, 0.7, 0.05];
        let c = [1.0, -2.0, 0.5, 3.0, -1.0, 0.2, -0.7, 1.5, 0.0, -0.3];
        let idx = [0, 2, 3, 5, 7, 8];
        let loss = |v: &[f32]| -> anyhow::Result<f64> {
            Ok(v.iter()
                .zip(c)
                .map(|(x, ci)| ci * *x as f64 + 2.0 * (*x as f64).powi(2))
                .sum())
        };
        let truth: Vec<f64> = idx.iter().map(|&i| c[i] + 4.0 * w[i] as f64).collect();
        let mut rng = SplitMix64::new(1);
        let est = smoothed_gradient(&w, &idx, 0.05, 4000, &mut rng, loss).unwrap();
        let cos = cosine(&est, &truth);
        assert!(cos > 0.99, "cos {cos}, est {est:?} truth {truth:?}");
        // A loss that ignores the sampled weights has a zero estimate.
        let flat = |_: &[f32]| -> anyhow::Result<f64> { Ok(1.0) };
        let est = smoothed_gradient(&w, &idx, 0.05, 10, &mut rng, flat).unwrap();
        assert!(est.iter().all(|g| *g == 0.0));
        assert_eq!(cosine(&est, &truth), 0.0);
    }

    /// A quantized loss `sum c_i sign(w_i)`: flat almost everywhere, yet its
    /// smoothed gradient is `2 c_i phi(w_i / sigma) / sigma`, which points
    /// along `c` (all weights near 0, so phi is about equal).
    #[test]
    fn smoothed_gradient_sees_through_a_step() {
        let w: Vec<f32> = vec![0.001, -0.002, 0.0015, -0.001];
        let c = [1.0, -0.5, 2.0, 0.7];
        let loss = |v: &[f32]| -> anyhow::Result<f64> {
            Ok(v.iter()
                .zip(c)
                .map(|(x, ci)| if *x >= 0.0 { ci } else { -ci })
                .sum())
        };
        let mut rng = SplitMix64::new(2);
        let est = smoothed_gradient(&w, &[0, 1, 2, 3], 0.1, 4000, &mut rng, loss).unwrap();
        let cos = cosine(&est, &c);
        assert!(cos > 0.95, "cos {cos}, est {est:?}");
    }
}
