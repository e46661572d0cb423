//! Per-layer weight metrics logged every epoch with every method (the
//! AdamBNN paper's optimizer-trajectory measures), computed on the device:
//! `flip_ratio` (share of latent weights whose sign changed in a step,
//! averaged over the epoch's steps), `sign_change_from_init`, `cam` (mean
//! over output channels of each channel's mean |w|) and `sdam` (the std of
//! those per-channel means across channels).

use serde_json::{Map, Value};

use crate::gpu::Gpu;
use crate::nn::{Model, ParamId};
use crate::ops::metrics::hamming_accumulate;
use crate::ops::pack::{BitLayout, PackedBits, pack_signs};
use crate::ops::reduce::{Reduction, reduce_all, reduce_rows};
use crate::tensor::{DType, Tensor};

pub struct WeightMetrics {
    layers: Vec<(ParamId, String, usize)>,
    /// Packed signs at the start of training, per layer.
    pub init: Vec<Tensor>,
    /// Packed signs after the previous step.
    prev: Vec<Tensor>,
    /// Sign flips per layer summed over this epoch's steps (u32 [layers]).
    flips: Tensor,
    pub steps: u64,
}

fn signs(gpu: &Gpu, w: &Tensor) -> anyhow::Result<Tensor> {
    let n = w.numel();
    let PackedBits { words, .. } =
        pack_signs(gpu, &w.reshape(&[1, n]), 1, n, 1, BitLayout::RowMajor)?;
    Ok(words)
}

impl WeightMetrics {
    pub fn new(gpu: &Gpu, model: &dyn Model) -> anyhow::Result<WeightMetrics> {
        let store = model.store();
        let layers: Vec<(ParamId, String, usize)> = store
            .binary_weights()
            .into_iter()
            .map(|p| (p, store.entry(p).name.clone(), store.get(p).numel()))
            .collect();
        let init = layers
            .iter()
            .map(|(p, ..)| signs(gpu, store.get(*p)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(WeightMetrics {
            prev: init.clone(),
            init,
            flips: Tensor::zeros(gpu, &[layers.len().max(1)], DType::U32)?,
            steps: 0,
            layers,
        })
    }

    /// Restores the counters of a resumed run (the signs after its last step
    /// are those of the restored weights).
    pub fn restore(
        &mut self,
        gpu: &Gpu,
        model: &dyn Model,
        init: Vec<Tensor>,
        flips: &[u32],
        steps: u64,
    ) -> anyhow::Result<()> {
        self.prev = self
            .layers
            .iter()
            .map(|(p, ..)| signs(gpu, model.store().get(*p)))
            .collect::<anyhow::Result<_>>()?;
        self.init = init;
        self.flips = Tensor::from_u32(
            gpu,
            &[flips.len().max(1)],
            &if flips.is_empty() {
                vec![0]
            } else {
                flips.to_vec()
            },
        )?;
        self.steps = steps;
        Ok(())
    }

    /// The flip counters so far (for resume state).
    pub fn flip_counts(&self, gpu: &Gpu) -> anyhow::Result<Vec<u32>> {
        Ok(self.flips.to_u32(gpu)?)
    }

    /// Counts the sign flips of the step just taken.
    pub fn after_step(&mut self, gpu: &Gpu, model: &dyn Model) -> anyhow::Result<()> {
        for (i, (p, ..)) in self.layers.iter().enumerate() {
            let now = signs(gpu, model.store().get(*p))?;
            hamming_accumulate(gpu, &self.prev[i], &now, &self.flips, i);
            self.prev[i] = now;
        }
        self.steps += 1;
        Ok(())
    }

    /// The epoch's metrics (objects keyed by layer name); resets the flip counters.
    pub fn end_of_epoch(
        &mut self,
        gpu: &Gpu,
        model: &dyn Model,
    ) -> anyhow::Result<Map<String, Value>> {
        let mut out = Map::new();
        if self.layers.is_empty() {
            return Ok(out);
        }
        let from_init = Tensor::zeros(gpu, &[self.layers.len()], DType::U32)?;
        let mut cams = Vec::new();
        for (i, (p, ..)) in self.layers.iter().enumerate() {
            hamming_accumulate(gpu, &self.init[i], &self.prev[i], &from_init, i);
            let w = model.store().get(*p);
            let per_channel = reduce_rows(gpu, w, Reduction::MeanAbs)?;
            cams.push((
                reduce_all(gpu, &per_channel, Reduction::Mean)?,
                reduce_all(gpu, &per_channel, Reduction::Std)?,
            ));
        }
        let flips = self.flips.to_u32(gpu)?;
        let from_init = from_init.to_u32(gpu)?;
        let (mut fr, mut fi, mut cam, mut sdam) = (Map::new(), Map::new(), Map::new(), Map::new());
        for (i, (_, name, n)) in self.layers.iter().enumerate() {
            let layer = name.trim_end_matches(".weight").to_string();
            fr.insert(
                layer.clone(),
                (flips[i] as f64 / (self.steps.max(1) as f64 * *n as f64)).into(),
            );
            fi.insert(layer.clone(), (from_init[i] as f64 / *n as f64).into());
            cam.insert(layer.clone(), (cams[i].0.to_f32(gpu)?[0] as f64).into());
            sdam.insert(layer, (cams[i].1.to_f32(gpu)?[0] as f64).into());
        }
        out.insert("flip_ratio".into(), fr.into());
        out.insert("sign_change_from_init".into(), fi.into());
        out.insert("cam".into(), cam.into());
        out.insert("sdam".into(), sdam.into());
        self.flips = Tensor::zeros(gpu, &[self.layers.len()], DType::U32)?;
        self.steps = 0;
        Ok(out)
    }
}
