//! `bitprop bench train`: training samples/s of a model and where a step's
//! time goes, per kernel family.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::gpu::Gpu;
use crate::nn::{Binarization, Model, build_model_sized};
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
    /// Bytes of the storage buffers its dispatches bind per step: an upper
    /// bound on the bytes it reads and writes.
    pub bytes_bound_per_step: f64,
}

/// What `bitprop bench train --json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct TrainBench {
    pub adapter: String,
    pub model: String,
    pub batch: usize,
    pub steps: usize,
    pub timing: String,
    /// Wall time per step: steps run back to back (host and device
    /// overlapped), or with `--compare-f32` the median of single steps
    /// alternated with the other model's.
    pub step_ms: f64,
    pub samples_per_s: f64,
    /// Share of the profiled device time per kernel family (fractions summing to 1).
    pub kernel_share: BTreeMap<String, f64>,
    pub dispatches_per_step: f64,
    /// Device time per step summed over dispatches (profiled run).
    pub device_ms_per_step: f64,
    /// Host time per step (timed steps): building the step's autograd tape
    /// and recording its dispatches, without waiting for the device.
    pub host_ms_per_step: f64,
    /// Bytes bound per step, summed over the dispatches (profiled run).
    pub bytes_bound_per_step: f64,
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

/// A model, its optimizer and one synthetic batch, ready to step.
struct Harness {
    name: String,
    batch: usize,
    model: Box<dyn Model>,
    opt: Optimizer,
    x: Tensor,
    labels: Tensor,
    /// Host time spent in [`Harness::step`] and the steps it covers.
    host_ms: f64,
    host_steps: usize,
}

impl Harness {
    /// Builds `model_name` and takes two warm-up steps.
    fn new(gpu: &Arc<Gpu>, model_name: &str, batch: usize, width: f64) -> anyhow::Result<Harness> {
        let model = build_model_sized(gpu, model_name, 0, Binarization::default(), width)?;
        let opt = Optimizer::new(
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
        let mut h = Harness {
            name: model_name.to_string(),
            batch,
            model,
            opt,
            x,
            labels,
            host_ms: 0.0,
            host_steps: 0,
        };
        for _ in 0..2 {
            h.step(gpu)
                .map_err(|e| crate::train::batch_too_large(e, batch))?;
        }
        gpu.flush_and_wait();
        (h.host_ms, h.host_steps) = (0.0, 0);
        Ok(h)
    }

    fn step(&mut self, gpu: &Arc<Gpu>) -> anyhow::Result<()> {
        let t = Instant::now();
        train_step(
            gpu,
            self.model.as_ref(),
            &mut self.opt,
            self.x.clone(),
            &self.labels,
            1e-3,
        )?;
        self.host_ms += t.elapsed().as_secs_f64() * 1e3;
        self.host_steps += 1;
        Ok(())
    }

    /// Wall milliseconds of one step from an idle device to an idle device.
    fn timed_step(&mut self, gpu: &Arc<Gpu>) -> anyhow::Result<f64> {
        gpu.flush_and_wait();
        let t = Instant::now();
        self.step(gpu)?;
        gpu.flush_and_wait();
        Ok(t.elapsed().as_secs_f64() * 1e3)
    }

    /// Profiles `profile_steps` steps per kernel; `step_ms` and `steps`
    /// describe the timed steps taken before.
    fn profile(
        &mut self,
        gpu: &Arc<Gpu>,
        steps: usize,
        step_ms: f64,
        profile_steps: usize,
    ) -> anyhow::Result<TrainBench> {
        let host_ms_per_step = self.host_ms / self.host_steps.max(1) as f64;
        gpu.start_profiling();
        for _ in 0..profile_steps {
            self.step(gpu)?;
        }
        let (records, timestamps) = gpu.stop_profiling();
        let mut by_kernel: BTreeMap<(String, String), (usize, f64, u64)> = BTreeMap::new();
        for r in &records {
            let e = by_kernel
                .entry((r.family().to_string(), r.entry.to_string()))
                .or_default();
            e.0 += 1;
            e.1 += r.ms;
            e.2 += r.bytes;
        }
        let total: f64 = records.iter().map(|r| r.ms).sum();
        let mut share: BTreeMap<String, f64> = BTreeMap::new();
        for r in &records {
            *share.entry(r.family().to_string()).or_default() += r.ms / total;
        }
        let ps = profile_steps.max(1) as f64;
        let mut kernels: Vec<KernelTime> = by_kernel
            .into_iter()
            .map(|((family, entry), (n, ms, bytes))| KernelTime {
                family,
                entry,
                dispatches_per_step: n as f64 / ps,
                ms_per_step: ms / ps,
                bytes_bound_per_step: bytes as f64 / ps,
            })
            .collect();
        kernels.sort_by(|a, b| b.ms_per_step.total_cmp(&a.ms_per_step));
        Ok(TrainBench {
            adapter: gpu.description(),
            model: self.name.clone(),
            batch: self.batch,
            steps,
            timing: if timestamps { "timestamp" } else { "wall" }.to_string(),
            step_ms,
            samples_per_s: self.batch as f64 / (step_ms / 1e3),
            kernel_share: share,
            dispatches_per_step: records.len() as f64 / ps,
            device_ms_per_step: total / ps,
            host_ms_per_step,
            bytes_bound_per_step: records.iter().map(|r| r.bytes as f64).sum::<f64>() / ps,
            kernels,
        })
    }
}

/// Times `steps` training steps of `model_name` on synthetic data after
/// two warm-up steps, then profiles `profile_steps` more per kernel.
pub fn run(
    gpu: &Arc<Gpu>,
    model_name: &str,
    batch: usize,
    steps: usize,
    profile_steps: usize,
    width: f64,
) -> anyhow::Result<TrainBench> {
    let mut h = Harness::new(gpu, model_name, batch, width)?;
    let t = Instant::now();
    for _ in 0..steps {
        h.step(gpu)?;
        gpu.flush();
    }
    gpu.flush_and_wait();
    let step_ms = t.elapsed().as_secs_f64() * 1e3 / steps as f64;
    h.profile(gpu, steps, step_ms, profile_steps)
}

impl TrainBench {
    /// The summary and the share per kernel family; with `per_kernel`, the
    /// profile table too (`--profile`).
    pub fn report(&self, per_kernel: bool) -> String {
        let mut s = format!(
            "{} batch {} on {}: {:.1} ms/step, {:.0} samples/s ({} steps); profiled: {:.1} dispatches/step, {:.1} ms device time/step ({}), {:.1} ms host time/step\n",
            self.model,
            self.batch,
            self.adapter,
            self.step_ms,
            self.samples_per_s,
            self.steps,
            self.dispatches_per_step,
            self.device_ms_per_step,
            self.timing,
            self.host_ms_per_step
        );
        for (f, v) in &self.kernel_share {
            s += &format!("  {f:<8} {:>5.1}%\n", 100.0 * v);
        }
        if !per_kernel {
            return s;
        }
        s += &format!(
            "  per kernel: ms/step, dispatches/step, MB bound/step (buffers bound: an upper bound on bytes moved), GB/s; {:.0} MB bound/step in all\n",
            self.bytes_bound_per_step / 1e6
        );
        for k in &self.kernels {
            s += &format!(
                "    {:<8} {:<34} {:>9.2} ms {:>6.1} {:>9.1} MB {:>6.2} GB/s\n",
                k.family,
                k.entry,
                k.ms_per_step,
                k.dispatches_per_step,
                k.bytes_bound_per_step / 1e6,
                k.bytes_bound_per_step / (k.ms_per_step * 1e6).max(1e-9)
            );
        }
        s
    }
}

/// What `bitprop bench train --compare-f32 --json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct CompareF32 {
    pub adapter: String,
    pub model: String,
    pub f32_model: String,
    pub batch: usize,
    pub step_ms: f64,
    pub f32_step_ms: f64,
    /// f32 step time / binary step time.
    pub f32_vs_binary: f64,
    /// The best ratio possible if binary multiply-adds cost nothing:
    /// all multiply-adds / float multiply-adds of the binary step, with the
    /// multiply-adds on packed signs (sign GEMMs) counted as binary.
    pub f32_vs_binary_bound: f64,
    /// (t_f32 - t_binary) / (t_f32 - t_f32 / bound).
    pub savings_realized: f64,
    /// The bound when only the XNOR forward of the binary layers is free
    /// and every other multiply-add counts as float, those on packed signs
    /// included: the bound before binary-aware kernels moved it.
    pub f32_vs_binary_bound_forward_only: f64,
    /// `savings_realized` against `f32_vs_binary_bound_forward_only`.
    pub savings_realized_forward_only: f64,
    /// The binary step's f32 GEMMs (and the direct float convolutions that
    /// replace a GEMM, `f32_conv*`): achieved flops/s as % of the FMA peak.
    pub gemm_pct_of_fma_peak: f64,
    /// The f32 twin's step's f32 GEMMs, likewise.
    pub f32_model_gemm_pct_of_fma_peak: f64,
    /// The binary step's sign GEMMs and implicit sign convolutions (one add
    /// per multiply-add): multiply-adds
    /// per second as % of the FMA peak's (half its flops/s).
    pub sign_gemm_pct_of_fma_peak: f64,
    /// The binary step's XNOR-popcount kernels (the binary layers'
    /// forward): binary ops per second (2 per multiply-add) as % of the
    /// popcount microkernel's peak.
    pub xnor_pct_of_popcount_peak: f64,
    /// That rate, binary ops/s.
    pub xnor_ops_per_s: f64,
    /// The popcount microkernel's peak, binary ops/s, measured after the
    /// FMA peaks.
    pub popcount_peak_ops_per_s: f64,
    /// The mean of the three FMA peaks measured around the profiles.
    pub fma_peak_flops_per_s: f64,
    /// Before the binary profile, between the two, after the f32 one; each
    /// model's percentages use the two around its profile.
    pub fma_peaks_flops_per_s: [f64; 3],
    pub samples_per_s: f64,
    pub f32_samples_per_s: f64,
    pub macs_per_step: crate::autograd::MacCount,
    pub binary: TrainBench,
    pub f32: TrainBench,
}

/// Multiply-adds of one training step of `model` at `batch`, from a recorded forward.
pub fn step_macs(
    gpu: &Arc<Gpu>,
    model: &dyn Model,
    batch: usize,
) -> anyhow::Result<crate::autograd::MacCount> {
    let (x, _) = step_inputs(gpu, model, batch)?;
    let mut tape = crate::autograd::Tape::new(gpu.clone());
    let mut ctx = crate::nn::Ctx::for_model(&mut tape, model, true);
    let xv = ctx.tape.leaf(x, false);
    model.forward(&mut ctx, xv)?;
    gpu.flush_and_wait();
    Ok(tape.macs)
}

/// The binary model and its `-f32` twin side by side in one run.
pub fn compare_f32(
    gpu: &Arc<Gpu>,
    model_name: &str,
    batch: usize,
    steps: usize,
    profile_steps: usize,
    width: f64,
) -> anyhow::Result<CompareF32> {
    anyhow::ensure!(
        !model_name.ends_with("-f32"),
        "--compare-f32 takes the binary model's name, not {model_name}"
    );
    let f32_name = format!("{model_name}-f32");
    // Steps of the two models alternate and each reports its median, so a
    // change in the machine's speed during the run (other tenants, clock)
    // reaches both alike.
    let mut hb = Harness::new(gpu, model_name, batch, width)?;
    let mut hf = Harness::new(gpu, &f32_name, batch, width)?;
    let (mut tb, mut tf) = (Vec::new(), Vec::new());
    for _ in 0..steps {
        tb.push(hb.timed_step(gpu)?);
        tf.push(hf.timed_step(gpu)?);
    }
    // The machine's speed drifts (shared cores): each profile's kernel
    // rates are taken against FMA peaks measured right before and after it.
    let peak_before = crate::bench::gemm::fma_peak_flops(gpu, 3)?;
    let binary = hb.profile(gpu, steps, crate::ops::tune::median(&mut tb), profile_steps)?;
    let peak_between = crate::bench::gemm::fma_peak_flops(gpu, 3)?;
    let real = hf.profile(gpu, steps, crate::ops::tune::median(&mut tf), profile_steps)?;
    let peak_after = crate::bench::gemm::fma_peak_flops(gpu, 3)?;
    let popcount_peak = crate::bench::gemm::popcount_peak_ops(gpu, 3)?;
    let (peak_binary, peak_f32) = (
        (peak_before + peak_between) / 2.0,
        (peak_between + peak_after) / 2.0,
    );
    let macs = step_macs(gpu, hb.model.as_ref(), batch)?;
    let signs = macs.forward_signs + macs.backward_signs;
    let all = (macs.forward_binary + macs.forward_float + macs.backward_float + signs) as f64;
    let float = (macs.forward_float + macs.backward_float) as f64;
    let bound = all / float;
    let bound_forward_only = all / (float + signs as f64);
    let (t_bin, t_f32) = (binary.step_ms, real.step_ms);
    let ms_of = |b: &TrainBench, prefixes: &[&str]| -> f64 {
        b.kernels
            .iter()
            .filter(|k| prefixes.iter().any(|p| k.entry.starts_with(p)))
            .map(|k| k.ms_per_step)
            .sum()
    };
    // The float multiply-adds run in f32 GEMMs, or in a direct convolution
    // where that replaces one (a one-channel first layer).
    const FLOAT: &[&str] = &["f32_gemm", "f32_conv"];
    // The multiply-adds on packed signs: the sign GEMMs, and the binary
    // convolutions' data gradient as an implicit GEMM.
    const SIGNS: &[&str] = &["sign_gemm", "sign_conv"];
    // The forward multiply-adds on two packed operands.
    const XNOR: &[&str] = &["xnor_gemm", "binary_conv"];
    let gemm_rate = 2.0 * float / (ms_of(&binary, FLOAT) / 1e3);
    let twin = step_macs(gpu, hf.model.as_ref(), batch)?;
    let twin_float = (twin.forward_float + twin.backward_float) as f64;
    let twin_gemm_rate = 2.0 * twin_float / (ms_of(&real, FLOAT) / 1e3);
    let sign_rate = signs as f64 / (ms_of(&binary, SIGNS) / 1e3);
    let xnor_rate = 2.0 * macs.forward_binary as f64 / (ms_of(&binary, XNOR) / 1e3);
    Ok(CompareF32 {
        adapter: gpu.description(),
        model: model_name.to_string(),
        f32_model: f32_name,
        batch,
        step_ms: t_bin,
        f32_step_ms: t_f32,
        f32_vs_binary: t_f32 / t_bin,
        f32_vs_binary_bound: bound,
        savings_realized: (t_f32 - t_bin) / (t_f32 - t_f32 / bound),
        f32_vs_binary_bound_forward_only: bound_forward_only,
        savings_realized_forward_only: (t_f32 - t_bin) / (t_f32 - t_f32 / bound_forward_only),
        gemm_pct_of_fma_peak: 100.0 * gemm_rate / peak_binary,
        f32_model_gemm_pct_of_fma_peak: 100.0 * twin_gemm_rate / peak_f32,
        sign_gemm_pct_of_fma_peak: 100.0 * sign_rate / (peak_binary / 2.0),
        xnor_pct_of_popcount_peak: 100.0 * xnor_rate / popcount_peak,
        xnor_ops_per_s: xnor_rate,
        popcount_peak_ops_per_s: popcount_peak,
        fma_peak_flops_per_s: (peak_before + peak_between + peak_after) / 3.0,
        fma_peaks_flops_per_s: [peak_before, peak_between, peak_after],
        samples_per_s: binary.samples_per_s,
        f32_samples_per_s: real.samples_per_s,
        macs_per_step: macs,
        binary,
        f32: real,
    })
}

impl CompareF32 {
    pub fn report(&self, per_kernel: bool) -> String {
        let mut s = self.binary.report(per_kernel);
        s += &self.f32.report(per_kernel);
        s += &format!(
            "{} vs {} at batch {}: f32 step {:.1} ms / binary step {:.1} ms = {:.3}x (bound {:.3}x from multiply-adds, sign GEMMs counted as binary); savings realized {:.2} ({:.2} against the forward-only bound {:.3}x); f32 GEMMs at {:.1}% of the FMA peak ({:.1} GFLOP/s; the f32 twin's at {:.1}%), sign GEMMs at {:.1}%; XNOR kernels {:.1} G binary ops/s, {:.1}% of the popcount peak ({:.1} G ops/s)\n",
            self.f32_model,
            self.model,
            self.batch,
            self.f32_step_ms,
            self.step_ms,
            self.f32_vs_binary,
            self.f32_vs_binary_bound,
            self.savings_realized,
            self.savings_realized_forward_only,
            self.f32_vs_binary_bound_forward_only,
            self.gemm_pct_of_fma_peak,
            self.fma_peak_flops_per_s / 1e9,
            self.f32_model_gemm_pct_of_fma_peak,
            self.sign_gemm_pct_of_fma_peak,
            self.xnor_ops_per_s / 1e9,
            self.xnor_pct_of_popcount_peak,
            self.popcount_peak_ops_per_s / 1e9,
        );
        s
    }
}
