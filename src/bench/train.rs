//! `bitprop bench train`: training samples/s of a model and where a step's
//! time goes, per kernel family.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::gpu::Gpu;
use crate::nn::{Model, build_model};
use crate::ops::tune::pattern;
use crate::optim::{DecayScope, Optimizer, OptimizerConfig, OptimizerKind};
use crate::tensor::Tensor;
use crate::train::train_step;

/// One kernel's share of a profiled step.
#[derive(Clone, Debug, Serialize)]
pub struct KernelTime {
    pub family: String,
    pub entry: String,
    pub dispatches_per_step: f64,
    pub ms_per_step: f64,
}

/// What `bitprop bench train --json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct TrainBench {
    pub adapter: String,
    pub model: String,
    pub batch: usize,
    pub steps: usize,
    pub timing: String,
    /// Wall time per step, steps run back to back (host and device overlapped).
    pub step_ms: f64,
    pub samples_per_s: f64,
    /// Share of the profiled device time per kernel family (fractions summing to 1).
    pub kernel_share: BTreeMap<String, f64>,
    pub dispatches_per_step: f64,
    /// Device time per step summed over dispatches (profiled run).
    pub device_ms_per_step: f64,
    /// Host time per step spent recording (profiled run, device time excluded when timestamps exist).
    pub kernels: Vec<KernelTime>,
}

fn step_inputs(gpu: &Gpu, model: &dyn Model, batch: usize) -> anyhow::Result<(Tensor, Tensor)> {
    let mut shape = vec![batch];
    shape.extend(model.input_shape());
    let numel: usize = shape.iter().product();
    let x = Tensor::from_f32(gpu, &shape, &pattern(numel, 3))?;
    let labels: Vec<u32> = (0..batch as u32).map(|i| i % 10).collect();
    Ok((x, Tensor::from_u32(gpu, &[batch], &labels)?))
}

/// Times `steps` training steps of `model_name` on synthetic data after
/// two warm-up steps, then profiles `profile_steps` more per kernel.
pub fn run(
    gpu: &Arc<Gpu>,
    model_name: &str,
    batch: usize,
    steps: usize,
    profile_steps: usize,
) -> anyhow::Result<TrainBench> {
    let model = build_model(gpu, model_name, 0)?;
    let mut opt = Optimizer::new(
        gpu,
        OptimizerConfig {
            kind: OptimizerKind::Adam,
            weight_decay: 0.0,
            decay_scope: DecayScope::All,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            momentum: 0.9,
            nesterov: false,
        },
    )?;
    let (x, labels) = step_inputs(gpu, model.as_ref(), batch)?;
    for _ in 0..2 {
        train_step(gpu, model.as_ref(), &mut opt, x.clone(), &labels, 1e-3)?;
    }
    gpu.flush_and_wait();
    let t = Instant::now();
    for _ in 0..steps {
        train_step(gpu, model.as_ref(), &mut opt, x.clone(), &labels, 1e-3)?;
        gpu.flush();
    }
    gpu.flush_and_wait();
    let step_ms = t.elapsed().as_secs_f64() * 1e3 / steps as f64;

    gpu.start_profiling();
    for _ in 0..profile_steps {
        train_step(gpu, model.as_ref(), &mut opt, x.clone(), &labels, 1e-3)?;
    }
    let (records, timestamps) = gpu.stop_profiling();
    let mut by_kernel: BTreeMap<(String, String), (usize, f64)> = BTreeMap::new();
    for r in &records {
        let e = by_kernel
            .entry((r.family().to_string(), r.entry.to_string()))
            .or_default();
        e.0 += 1;
        e.1 += r.ms;
    }
    let total: f64 = records.iter().map(|r| r.ms).sum();
    let mut share: BTreeMap<String, f64> = BTreeMap::new();
    for r in &records {
        *share.entry(r.family().to_string()).or_default() += r.ms / total;
    }
    let ps = profile_steps.max(1) as f64;
    let mut kernels: Vec<KernelTime> = by_kernel
        .into_iter()
        .map(|((family, entry), (n, ms))| KernelTime {
            family,
            entry,
            dispatches_per_step: n as f64 / ps,
            ms_per_step: ms / ps,
        })
        .collect();
    kernels.sort_by(|a, b| b.ms_per_step.total_cmp(&a.ms_per_step));
    Ok(TrainBench {
        adapter: gpu.description(),
        model: model_name.to_string(),
        batch,
        steps,
        timing: if timestamps { "timestamp" } else { "wall" }.to_string(),
        step_ms,
        samples_per_s: batch as f64 / (step_ms / 1e3),
        kernel_share: share,
        dispatches_per_step: records.len() as f64 / ps,
        device_ms_per_step: total / ps,
        kernels,
    })
}

impl TrainBench {
    pub fn report(&self) -> String {
        let mut s = format!(
            "{} batch {} on {}: {:.1} ms/step, {:.0} samples/s ({} steps); profiled: {:.1} dispatches/step, {:.1} ms device time/step ({})\n",
            self.model,
            self.batch,
            self.adapter,
            self.step_ms,
            self.samples_per_s,
            self.steps,
            self.dispatches_per_step,
            self.device_ms_per_step,
            self.timing
        );
        for (f, v) in &self.kernel_share {
            s += &format!("  {f:<8} {:>5.1}%\n", 100.0 * v);
        }
        s += "  per kernel (ms/step, dispatches/step):\n";
        for k in &self.kernels {
            s += &format!(
                "    {:<8} {:<34} {:>9.2} ms {:>6.1}\n",
                k.family, k.entry, k.ms_per_step, k.dispatches_per_step
            );
        }
        s
    }
}
