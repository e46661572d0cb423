//! ReCU (METHODS.md section 3): the tau schedule, and the per-layer
//! dead-weight, quantization-error and entropy metrics. The weight and
//! activation rules themselves are the model's [`Binarization`]
//! (`WeightRule::Recu`, `ActRule::RecuStd`); this method sets the tau those
//! forwards use at the start of every epoch (also of a resumed one, since
//! tau is a function of the epoch) and measures the layers at its end.
//!
//! [`Binarization`]: crate::nn::Binarization

use serde_json::{Map, Value};

use super::{Method, MethodCtx};
use crate::gpu::Gpu;
use crate::nn::{Model, WeightRule};
use crate::ops::recu::{LayerMetrics, layer_stats, recu_weights};
use crate::ops::reduce::{Reduction, reduce_rows};

/// ReCU's tau in epoch `i` (0-based) of `epochs`:
/// `tau_i = (tau_e - tau_s)/(e - 1) exp(i/I) + (e tau_s - tau_e)/(e - 1)`,
/// tau_s at the first epoch; as in ReCU's code, `i/I` stops one epoch short
/// of 1, so tau_e is approached, not reached.
pub fn recu_tau(i: usize, epochs: usize, tau_s: f64, tau_e: f64) -> f64 {
    let e = std::f64::consts::E;
    (tau_e - tau_s) / (e - 1.0) * (i as f64 / epochs.max(1) as f64).exp()
        + (e * tau_s - tau_e) / (e - 1.0)
}

pub struct Recu {
    pub epochs: usize,
    pub tau_start: f64,
    pub tau_end: f64,
    tau: f32,
    metrics: Map<String, Value>,
}

impl Recu {
    pub fn new(epochs: usize, tau_start: f64, tau_end: f64) -> Recu {
        Recu {
            epochs,
            tau_start,
            tau_end,
            tau: tau_start as f32,
            metrics: Map::new(),
        }
    }
}

/// ReCU's metrics of every binary layer of `model` at `tau`, keyed by layer
/// name under `dead_weight_ratio`, `dead_weight_expected`, `quant_error`,
/// `weight_entropy` (`{closed_form, histogram}`) and `recu_tau`. Counts and
/// sums run on the device; one small read-back per layer.
pub fn layer_metrics(gpu: &Gpu, model: &dyn Model, tau: f32) -> anyhow::Result<Map<String, Value>> {
    let mut out = Map::new();
    let WeightRule::Recu { b_star, .. } = model.binarization().weights else {
        return Ok(out);
    };
    let store = model.store();
    let (mut dead, mut expected, mut qe, mut ent) =
        (Map::new(), Map::new(), Map::new(), Map::new());
    for p in store.binary_weights() {
        let entry = store.entry(p);
        let layer = entry.name.trim_end_matches(".weight").to_string();
        let r = recu_weights(gpu, &entry.value, b_star, tau)?;
        let alpha = match store.find(&format!("{layer}.scale")) {
            Some(s) => store.get(s).clone(),
            None => reduce_rows(gpu, &r.w2, Reduction::MeanAbs)?,
        };
        let stats = layer_stats(gpu, &r, &alpha)?.to_f32(gpu)?;
        let q = r.q.to_f32(gpu)?;
        let m = LayerMetrics::from_stats(&stats, entry.value.numel(), q[0], q[1], tau);
        dead.insert(layer.clone(), m.dead_weight_ratio.into());
        expected.insert(layer.clone(), m.dead_weight_expected.into());
        qe.insert(layer.clone(), m.quant_error.into());
        let mut e = Map::new();
        e.insert("closed_form".into(), m.entropy_closed_form.into());
        e.insert("histogram".into(), m.entropy_histogram.into());
        ent.insert(layer, e.into());
    }
    out.insert("recu_tau".into(), (tau as f64).into());
    out.insert("dead_weight_ratio".into(), dead.into());
    out.insert("dead_weight_expected".into(), expected.into());
    out.insert("quant_error".into(), qe.into());
    out.insert("weight_entropy".into(), ent.into());
    Ok(out)
}

impl Method for Recu {
    fn name(&self) -> &str {
        "recu"
    }

    fn before_epoch(&mut self, ctx: &mut MethodCtx) -> anyhow::Result<()> {
        self.tau = recu_tau(ctx.epoch - 1, self.epochs, self.tau_start, self.tau_end) as f32;
        ctx.model.store_mut().recu_tau = Some(self.tau);
        Ok(())
    }

    fn end_of_epoch(&mut self, ctx: &mut MethodCtx) -> anyhow::Result<()> {
        self.metrics = layer_metrics(ctx.gpu, &*ctx.model, self.tau)?;
        Ok(())
    }

    fn epoch_metrics(&mut self) -> Map<String, Value> {
        std::mem::take(&mut self.metrics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tau_schedule_starts_at_tau_s_and_reaches_tau_e_at_i_equal_epochs() {
        assert!((recu_tau(0, 10, 0.85, 0.99) - 0.85).abs() < 1e-12);
        assert!((recu_tau(10, 10, 0.85, 0.99) - 0.99).abs() < 1e-12);
        let t: Vec<f64> = (0..10).map(|i| recu_tau(i, 10, 0.85, 0.99)).collect();
        assert!(t.windows(2).all(|w| w[1] > w[0]), "{t:?}");
        // Exponential: the steps grow.
        assert!(t[9] - t[8] > t[1] - t[0]);
    }
}
