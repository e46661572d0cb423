//! Periodic sampling over weight distributions (../shared/METHODS.md §4):
//! every `every` steps of a period the latent weights are sampled into
//! running sums on the device; at the period's end they are replaced by
//! PSWA: the mean of the period's samples; PWALKS: the mean of the last K;
//! PSWM: `m_p + mu (m_p - m_{p-1})` with `m_p` the period's mean (PSWA in the
//! first period). Batch norm running statistics are then re-estimated with a
//! pass over a few training batches, and the replacement's flip ratio (share
//! of latent weights whose sign it changed) is logged.

use std::collections::{BTreeMap, VecDeque};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Method, MethodCtx, MethodState};
use crate::autograd::Tape;
use crate::data::{Batch, Batches};
use crate::gpu::{Gpu, GpuError};
use crate::nn::{Ctx, Model, ParamId, ParamKind};
use crate::ops::act;
use crate::tensor::Tensor;

/// Which replacement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sampling {
    Pswa,
    Pwalks,
    Pswm,
}

impl FromStr for Sampling {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pswa" => Ok(Sampling::Pswa),
            "pwalks" => Ok(Sampling::Pwalks),
            "pswm" => Ok(Sampling::Pswm),
            _ => Err(format!(
                "unknown sampling '{s}': expected pswa, pwalks or pswm"
            )),
        }
    }
}

/// Settings of periodic sampling.
#[derive(Clone, Copy, Debug)]
pub struct SamplingConfig {
    pub kind: Sampling,
    /// Steps per period.
    pub period: usize,
    /// Steps between samples.
    pub every: usize,
    pub pwalks_k: usize,
    pub pswm_mu: f64,
    /// First and last epoch (1-based, inclusive) in which sampling runs.
    pub start: usize,
    pub stop: usize,
    /// Training batches of the batch-norm re-estimation pass.
    pub bn_batches: usize,
}

/// Samples of one period: running sums, or the last K copies (PWALKS).
#[derive(Default)]
struct Samples {
    sums: BTreeMap<ParamId, Tensor>,
    count: usize,
    recent: VecDeque<BTreeMap<ParamId, Tensor>>,
}

pub struct PeriodicSampling {
    cfg: SamplingConfig,
    samples: Samples,
    /// `m_{p-1}` for PSWM.
    previous_mean: Option<BTreeMap<ParamId, Tensor>>,
    steps_in_period: usize,
    replacement_flip_ratio: Option<f64>,
    replacements: usize,
}

/// The latent real parameters that are averaged (every trainable tensor).
fn sampled(model: &dyn Model) -> Vec<ParamId> {
    model
        .store()
        .entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind != ParamKind::Buffer)
        .map(|(i, _)| ParamId(i))
        .collect()
}

/// A device copy of `t`.
fn copy(gpu: &Gpu, t: &Tensor) -> Result<Tensor, GpuError> {
    act::scale(gpu, t, 1.0)
}

impl PeriodicSampling {
    pub fn new(cfg: SamplingConfig) -> PeriodicSampling {
        PeriodicSampling {
            cfg,
            samples: Samples::default(),
            previous_mean: None,
            steps_in_period: 0,
            replacement_flip_ratio: None,
            replacements: 0,
        }
    }

    /// Adds the current weights to the period's samples.
    pub fn sample(&mut self, gpu: &Gpu, model: &dyn Model) -> Result<(), GpuError> {
        let store = model.store();
        match self.cfg.kind {
            Sampling::Pwalks => {
                let mut snapshot = BTreeMap::new();
                for id in sampled(model) {
                    snapshot.insert(id, copy(gpu, store.get(id))?);
                }
                self.samples.recent.push_back(snapshot);
                while self.samples.recent.len() > self.cfg.pwalks_k {
                    self.samples.recent.pop_front();
                }
            }
            Sampling::Pswa | Sampling::Pswm => {
                for id in sampled(model) {
                    match self.samples.sums.get(&id) {
                        Some(sum) => act::add_scaled(gpu, sum, store.get(id), 1.0),
                        None => {
                            self.samples.sums.insert(id, copy(gpu, store.get(id))?);
                        }
                    }
                }
            }
        }
        self.samples.count += 1;
        Ok(())
    }

    /// The weights that replace the current ones, from the period's samples.
    pub fn replacement(&mut self, gpu: &Gpu) -> Result<BTreeMap<ParamId, Tensor>, GpuError> {
        let mut out = BTreeMap::new();
        match self.cfg.kind {
            Sampling::Pwalks => {
                let k = self.samples.recent.len() as f32;
                let ids: Vec<ParamId> = self
                    .samples
                    .recent
                    .front()
                    .map(|s| s.keys().copied().collect())
                    .unwrap_or_default();
                for id in ids {
                    let mean = act::scale(gpu, &self.samples.recent[0][&id], 1.0 / k)?;
                    for s in self.samples.recent.iter().skip(1) {
                        act::add_scaled(gpu, &mean, &s[&id], 1.0 / k);
                    }
                    out.insert(id, mean);
                }
            }
            Sampling::Pswa | Sampling::Pswm => {
                let inv = 1.0 / self.samples.count as f32;
                let mut means = BTreeMap::new();
                for (id, sum) in &self.samples.sums {
                    means.insert(*id, act::scale(gpu, sum, inv)?);
                }
                if self.cfg.kind == Sampling::Pswm {
                    let mu = self.cfg.pswm_mu as f32;
                    for (id, m) in &means {
                        // w = m_p + mu (m_p - m_{p-1}) = (1 + mu) m_p - mu m_{p-1}
                        let w = act::scale(gpu, m, 1.0 + mu)?;
                        match self.previous_mean.as_ref().and_then(|p| p.get(id)) {
                            Some(prev) => act::add_scaled(gpu, &w, prev, -mu),
                            None => act::add_scaled(gpu, &w, m, -mu),
                        }
                        out.insert(*id, w);
                    }
                    self.previous_mean = Some(means);
                } else {
                    out = means;
                }
            }
        }
        self.samples = Samples::default();
        Ok(out)
    }

    fn replace(&mut self, ctx: &mut MethodCtx) -> anyhow::Result<()> {
        if self.samples.count == 0 {
            return Ok(());
        }
        let gpu = ctx.gpu.clone();
        let new = self.replacement(&gpu)?;
        let (mut flipped, mut total) = (0usize, 0usize);
        let store = ctx.model.store_mut();
        for (id, w) in new {
            let old = store.get(id).to_f32(&gpu)?;
            let fresh = w.to_f32(&gpu)?;
            flipped += old
                .iter()
                .zip(&fresh)
                .filter(|(a, b)| (**a >= 0.0) != (**b >= 0.0))
                .count();
            total += old.len();
            store.entries[id.0].value = w;
        }
        self.replacement_flip_ratio = Some(flipped as f64 / total.max(1) as f64);
        self.replacements += 1;
        reestimate_batch_norm(
            &gpu,
            ctx.model,
            ctx.train_set,
            ctx.batch,
            self.cfg.bn_batches,
        )?;
        Ok(())
    }

    fn active(&self, epoch: usize) -> bool {
        epoch >= self.cfg.start && (self.cfg.stop == 0 || epoch <= self.cfg.stop)
    }
}

impl Method for PeriodicSampling {
    fn name(&self) -> &str {
        match self.cfg.kind {
            Sampling::Pswa => "pswa",
            Sampling::Pwalks => "pwalks",
            Sampling::Pswm => "pswm",
        }
    }

    fn after_step(&mut self, ctx: &mut MethodCtx, _step: usize) -> anyhow::Result<()> {
        if !self.active(ctx.epoch) {
            return Ok(());
        }
        self.steps_in_period += 1;
        if self.steps_in_period.is_multiple_of(self.cfg.every.max(1)) {
            self.sample(ctx.gpu, ctx.model)?;
        }
        if self.steps_in_period >= self.cfg.period {
            self.steps_in_period = 0;
            self.replace(ctx)?;
        }
        Ok(())
    }

    fn epoch_metrics(&mut self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert(
            "replacement_flip_ratio".into(),
            self.replacement_flip_ratio.take().into(),
        );
        m.insert("replacements".into(), self.replacements.into());
        m
    }

    /// The period's running sums (or last K samples), `m_{p-1}` and the
    /// counters, so a resumed run replaces with the same weights.
    fn save_state(&self, gpu: &Gpu) -> anyhow::Result<MethodState> {
        let mut s = MethodState::default();
        let mut put = |name: String, t: &Tensor| -> anyhow::Result<()> {
            s.tensors.push((name, t.shape().to_vec(), t.to_f32(gpu)?));
            Ok(())
        };
        for (id, t) in &self.samples.sums {
            put(format!("sum/{}", id.0), t)?;
        }
        for (j, snapshot) in self.samples.recent.iter().enumerate() {
            for (id, t) in snapshot {
                put(format!("recent/{j}/{}", id.0), t)?;
            }
        }
        for (id, t) in self.previous_mean.iter().flatten() {
            put(format!("previous/{}", id.0), t)?;
        }
        s.ints = vec![
            ("count".into(), self.samples.count as i64),
            ("recent".into(), self.samples.recent.len() as i64),
            ("has_previous".into(), self.previous_mean.is_some() as i64),
            ("steps_in_period".into(), self.steps_in_period as i64),
            ("replacements".into(), self.replacements as i64),
            (
                "flip_ratio_bits".into(),
                self.replacement_flip_ratio
                    .map_or(-1, |f| f.to_bits() as i64),
            ),
        ];
        Ok(s)
    }

    fn restore_state(
        &mut self,
        gpu: &Gpu,
        model: &dyn Model,
        state: MethodState,
    ) -> anyhow::Result<()> {
        let int = |k: &str| -> anyhow::Result<i64> {
            state
                .ints
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| *v)
                .ok_or_else(|| anyhow::anyhow!("periodic sampling state has no '{k}'"))
        };
        let recent = int("recent")? as usize;
        let mut sums = BTreeMap::new();
        let mut snapshots = vec![BTreeMap::new(); recent];
        let mut previous = BTreeMap::new();
        let params = model.store().entries.len();
        for (name, shape, values) in &state.tensors {
            let t = Tensor::from_f32(gpu, shape, values)?;
            let parts: Vec<&str> = name.split('/').collect();
            let id = |s: &str| -> anyhow::Result<ParamId> {
                s.parse::<usize>()
                    .ok()
                    .filter(|i| *i < params)
                    .map(ParamId)
                    .ok_or_else(|| anyhow::anyhow!("periodic sampling state: bad tensor '{name}'"))
            };
            match parts[..] {
                ["sum", i] => {
                    sums.insert(id(i)?, t);
                }
                ["previous", i] => {
                    previous.insert(id(i)?, t);
                }
                ["recent", j, i] => {
                    let j: usize = j.parse().ok().filter(|j| *j < recent).ok_or_else(|| {
                        anyhow::anyhow!("periodic sampling state: bad tensor '{name}'")
                    })?;
                    snapshots[j].insert(id(i)?, t);
                }
                _ => anyhow::bail!("periodic sampling state: unknown tensor '{name}'"),
            }
        }
        self.samples = Samples {
            sums,
            count: int("count")? as usize,
            recent: snapshots.into(),
        };
        self.previous_mean = (int("has_previous")? != 0).then_some(previous);
        self.steps_in_period = int("steps_in_period")? as usize;
        self.replacements = int("replacements")? as usize;
        let bits = int("flip_ratio_bits")?;
        self.replacement_flip_ratio = (bits >= 0).then(|| f64::from_bits(bits as u64));
        Ok(())
    }
}

/// Re-estimates every batch norm's running statistics from `batches`
/// training batches: statistics reset, then a cumulative average (momentum
/// 1/(i+1) at batch i), as PyTorch's `swa_utils.update_bn`.
pub fn reestimate_batch_norm(
    gpu: &std::sync::Arc<Gpu>,
    model: &mut dyn Model,
    data: &crate::data::Dataset,
    batch: usize,
    batches: usize,
) -> anyhow::Result<()> {
    let store = model.store_mut();
    for e in store.entries.iter_mut() {
        let fill = if e.name.ends_with(".running_mean") {
            0.0
        } else if e.name.ends_with(".running_var") {
            1.0
        } else {
            continue;
        };
        e.value = Tensor::from_f32(gpu, e.value.shape(), &vec![fill; e.value.numel()])?;
    }
    let mut it = Batches::new(data, batch, None, 0)?;
    let mut b = Batch::default();
    let mut i = 0;
    while i < batches && it.next_into(&mut b) {
        let (x, _) = crate::train::upload(gpu, &b, &model.input_shape())?;
        let mut tape = Tape::new(gpu.clone());
        let mut ctx = Ctx::for_model(&mut tape, model, true);
        ctx.grads = false;
        ctx.bn_momentum = 1.0 / (i as f32 + 1.0);
        let xv = ctx.tape.leaf(x, false);
        model.forward(&mut ctx, xv)?;
        gpu.flush();
        i += 1;
    }
    Ok(())
}
