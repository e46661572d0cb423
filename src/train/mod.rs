//! The training loop: epochs of batches on the device, evaluation,
//! metrics, checkpoints and curves.

pub mod config;
pub mod files;
pub mod rerun;
mod resume;
pub mod weight_metrics;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::autograd::{Tape, ops};
use crate::data::{self, Batches, Dataset};
use crate::gpu::{Gpu, GpuError, Readback};
use crate::methods::psample::{PeriodicSampling, SamplingConfig};
use crate::methods::{Method, MethodCtx, Plain};
use crate::nn::saturation::ActSaturation;
use crate::nn::{Ctx, Model, ParamId, build_model_sized};
use crate::ops::optim::check_finite_tagged;
use crate::ops::reduce;
use crate::optim::{Optimizer, OptimizerConfig};
use crate::tensor::Tensor;
use weight_metrics::WeightMetrics;

pub use config::{OnNan, TrainConfig};

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub train_acc: f64,
    pub val_acc: Option<f64>,
    pub val_loss: Option<f64>,
    pub test_loss: f64,
    pub test_acc: f64,
    pub epoch_seconds: f64,
    pub samples_per_s: f64,
    /// Bytes of device buffers held by live tensors at the end of the epoch.
    pub gpu_bytes: u64,
    /// Bytes allocated from the device by the pool, free lists included.
    pub gpu_bytes_allocated: u64,
    /// Batches whose update was skipped for non-finite values (`--on-nan skip-batch`).
    pub skipped_batches: u64,
    /// Keys the training method adds (e.g. `replacement_flip_ratio`).
    #[serde(flatten)]
    pub method: serde_json::Map<String, serde_json::Value>,
}

/// `summary.json`.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Summary {
    pub model: String,
    pub adapter: String,
    pub epochs: usize,
    pub final_test_acc: f64,
    pub best_val_acc: Option<f64>,
    pub best_test_acc: f64,
    pub best_epoch: usize,
    pub total_seconds: f64,
    pub train_images: usize,
    pub val_images: usize,
    /// Mean absolute epoch-to-epoch change of the test accuracy.
    pub volatility: f64,
    /// Epochs whose test accuracy fell below the previous epoch's.
    pub drops: usize,
}

/// Loss and accuracy of a model on a dataset (eval mode).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Evaluation {
    pub loss: f64,
    pub acc: f64,
    /// The batch size used: the one asked for, or the largest whose
    /// activations fit the adapter's storage bindings.
    pub batch: usize,
}

/// Uploads one batch: images `[b, ...shape]` scaled to [-1, 1], labels u32.
pub fn upload(
    gpu: &Gpu,
    batch: &data::Batch,
    input_shape: &[usize],
) -> anyhow::Result<(Tensor, Tensor)> {
    let mut shape = vec![batch.size];
    shape.extend_from_slice(input_shape);
    let x = Tensor::from_f32(gpu, &shape, &batch.images_f32)?;
    let y = Tensor::from_u32(gpu, &[batch.size], &batch.labels)?;
    Ok((x, y))
}

/// Evaluates `model` on `ds` in batches of `batch`: mean loss and accuracy.
/// Where a batch's activations need more than one storage binding of the
/// adapter holds, smaller batches are used (batch norm evaluates with its
/// running statistics, so the result does not depend on the batch size):
/// the tensor that did not fit says by how much.
pub fn evaluate(
    gpu: &Arc<Gpu>,
    model: &dyn Model,
    ds: &Dataset,
    batch: usize,
) -> anyhow::Result<Evaluation> {
    let mut batch = batch;
    loop {
        match evaluate_in_batches(gpu, model, ds, batch) {
            Err(e) => match batch_that_fits(&e, batch) {
                Some(fits) if batch > 1 => batch = fits.clamp(1, batch - 1),
                _ => return Err(e),
            },
            r => return r,
        }
    }
}

/// Where `e` is a tensor of a batch of `batch` that did not fit one storage
/// binding: the largest batch that fits it (a tensor's size is linear in the
/// batch, so the one that failed says by how much).
fn batch_that_fits(e: &anyhow::Error, batch: usize) -> Option<usize> {
    match e.downcast_ref::<GpuError>() {
        Some(GpuError::TooLarge { bytes, limit, .. }) => {
            Some((batch as u128 * *limit as u128 / (*bytes).max(1) as u128) as usize)
        }
        _ => None,
    }
}

fn evaluate_in_batches(
    gpu: &Arc<Gpu>,
    model: &dyn Model,
    ds: &Dataset,
    batch: usize,
) -> anyhow::Result<Evaluation> {
    let mut pending: Vec<(Readback, Readback, usize)> = Vec::new();
    let mut batches = Batches::new(ds, batch, None, 0)?;
    let mut b = data::Batch::default();
    while batches.next_into(&mut b) {
        let (x, labels) = upload(gpu, &b, &model.input_shape())?;
        let mut tape = Tape::new(gpu.clone());
        let mut ctx = Ctx::for_model(&mut tape, model, false);
        let xv = ctx.tape.leaf(x, false);
        let logits = model.forward(&mut ctx, xv)?;
        let loss = ops::softmax_cross_entropy(&mut tape, logits, &labels)?;
        let correct = reduce::accuracy_count(gpu, tape.value(logits), &labels)?;
        let l = tape.value(loss);
        pending.push((
            gpu.read_async(l.buffer(), 4),
            gpu.read_async(correct.buffer(), 4),
            b.size,
        ));
    }
    gpu.flush();
    let (mut loss_sum, mut correct, mut n) = (0f64, 0u64, 0usize);
    for (l, c, size) in pending {
        let l = f32::from_le_bytes(l.wait(gpu)?[..4].try_into().unwrap());
        let c = u32::from_le_bytes(c.wait(gpu)?[..4].try_into().unwrap());
        loss_sum += l as f64 * size as f64;
        correct += c as u64;
        n += size;
    }
    Ok(Evaluation {
        loss: loss_sum / n.max(1) as f64,
        acc: correct as f64 / n.max(1) as f64,
        batch,
    })
}

/// `e`, with the batch size that fits where a tensor of a training batch of
/// `batch` did not fit one storage binding.
pub(crate) fn batch_too_large(e: anyhow::Error, batch: usize) -> anyhow::Error {
    match batch_that_fits(&e, batch) {
        Some(fits) => anyhow::anyhow!(
            "{e}: a training batch of {batch} is too large for this adapter; \
             --batch {fits} or less fits this tensor"
        ),
        None => e,
    }
}

/// The optimizer a run configures: Adam's betas (0.9, 0.999) and eps 1e-8.
pub fn optimizer_config(cfg: &TrainConfig) -> OptimizerConfig {
    OptimizerConfig {
        kind: cfg.optimizer,
        weight_decay: cfg.weight_decay,
        decay_scope: cfg.decay_scope,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        momentum: cfg.momentum,
        nesterov: cfg.nesterov,
    }
}

/// A real-valued teacher for the distillation loss: a model checkpoint run
/// in eval mode, its logits detached.
pub struct Teacher {
    pub model: Box<dyn Model>,
    pub temperature: f32,
}

impl Teacher {
    /// Loads `path` strictly into the model its metadata names (`model`,
    /// `binarization`, `width`).
    pub fn load(gpu: &Gpu, path: &std::path::Path, temperature: f32) -> anyhow::Result<Teacher> {
        let meta = crate::checkpoint::load(path)
            .map_err(|e| anyhow::anyhow!("--teacher: {e}"))?
            .metadata;
        let name = meta.get("model").ok_or_else(|| {
            anyhow::anyhow!(
                "--teacher {}: checkpoint metadata has no 'model'",
                path.display()
            )
        })?;
        let bin = crate::nn::Binarization::from_metadata(&meta)
            .map_err(|e| anyhow::anyhow!("--teacher {}: {e}", path.display()))?;
        let width = crate::nn::width_from_metadata(&meta)
            .map_err(|e| anyhow::anyhow!("--teacher {}: {e}", path.display()))?;
        let mut model = build_model_sized(gpu, name, 0, bin, width)
            .map_err(|e| anyhow::anyhow!("--teacher {}: {e}", path.display()))?;
        files::load_model(gpu, model.store_mut(), path)
            .map_err(|e| anyhow::anyhow!("--teacher: {e}"))?;
        Ok(Teacher { model, temperature })
    }

    /// The teacher's logits for images `x` (reshaped to its input shape).
    pub fn logits(&self, gpu: &Arc<Gpu>, x: &Tensor) -> anyhow::Result<Tensor> {
        let mut shape = vec![x.shape()[0]];
        shape.extend(self.model.input_shape());
        anyhow::ensure!(
            shape.iter().product::<usize>() == x.numel(),
            "teacher {} takes inputs {:?}, the batch is {:?}",
            self.model.name(),
            &shape[1..],
            x.shape()
        );
        let mut tape = Tape::new(gpu.clone());
        let mut ctx = Ctx::for_model(&mut tape, self.model.as_ref(), false);
        let xv = ctx.tape.leaf(x.reshape(&shape), false);
        let logits = self.model.forward(&mut ctx, xv)?;
        Ok(tape.value(logits).clone())
    }
}

/// What a training step may add to the plain one.
#[derive(Clone, Copy, Default)]
pub struct StepExtras<'a> {
    /// Counts `act_saturation` during the forward.
    pub saturation: Option<&'a ActSaturation>,
    /// Distils from this teacher instead of cross-entropy.
    pub teacher: Option<&'a Teacher>,
}

/// One training step: forward, loss, backward, update. Returns the loss
/// and the number of correct predictions as device tensors (not read back).
pub fn train_step(
    gpu: &Arc<Gpu>,
    model: &dyn Model,
    opt: &mut Optimizer,
    x: Tensor,
    labels: &Tensor,
    lr: f64,
) -> anyhow::Result<(Tensor, Tensor)> {
    train_step_with(gpu, model, opt, x, labels, lr, StepExtras::default())
}

/// [`train_step`] with a saturation recorder and/or a teacher.
pub fn train_step_with(
    gpu: &Arc<Gpu>,
    model: &dyn Model,
    opt: &mut Optimizer,
    x: Tensor,
    labels: &Tensor,
    lr: f64,
    extras: StepExtras,
) -> anyhow::Result<(Tensor, Tensor)> {
    let teacher_logits = match extras.teacher {
        Some(t) => Some(t.logits(gpu, &x)?),
        None => None,
    };
    let mut tape = Tape::new(gpu.clone());
    let mut ctx = Ctx::for_model(&mut tape, model, true);
    ctx.saturation = extras.saturation;
    let xv = ctx.tape.leaf(x, false);
    let logits = model.forward(&mut ctx, xv)?;
    let leaves = ctx.leaves();
    let loss = match (&teacher_logits, extras.teacher) {
        (Some(tl), Some(t)) => ops::kd_loss(&mut tape, logits, tl, t.temperature)?,
        _ => ops::softmax_cross_entropy(&mut tape, logits, labels)?,
    };
    let count = reduce::accuracy_count(gpu, tape.value(logits), labels)?;
    let loss_value = tape.value(loss).clone();
    let seed = ops::loss_seed(&tape)?;
    let mut grads = tape.backward(loss, seed)?;
    let mut leaves = leaves;
    leaves.sort_by_key(|(p, _)| p.0);
    let updates: Vec<(ParamId, Tensor)> = leaves
        .into_iter()
        .filter_map(|(p, v)| grads.take(v).map(|g| (p, g)))
        .collect();
    // Non-finite loss or gradients veto this step's updates on the device
    // (bit 0: the loss, bit i + 1: the i-th gradient), without a host round trip.
    let flag = Tensor::zeros(gpu, &[1], crate::tensor::DType::U32)?;
    check_finite_tagged(gpu, &loss_value, &flag, 1);
    for (i, (_, g)) in updates.iter().enumerate() {
        check_finite_tagged(gpu, g, &flag, 1 << (i + 1).min(31));
    }
    opt.skip = flag;
    opt.checked = updates.iter().map(|(p, _)| *p).collect();
    opt.update(gpu, model.store(), &updates, lr)?;
    Ok((loss_value, count))
}

/// Steps in flight before the host waits for the oldest one's loss: the
/// device is never waited on inside a step, and the host cannot run ahead
/// without bound.
const IN_FLIGHT: usize = 2;

/// Sums over the steps of an epoch so far.
#[derive(Clone, Copy, Debug, Default)]
struct EpochSums {
    loss_sum: f64,
    correct: u64,
    seen: usize,
    skipped: u64,
}

/// Everything a run needs to continue where it stopped.
struct RunState {
    /// The epoch being trained (1-based).
    epoch: usize,
    /// Batches of this epoch already applied.
    batch: usize,
    /// Steps taken in the whole run (drives the schedule).
    step: usize,
    sums: EpochSums,
    /// Seconds of this epoch spent before a resume.
    epoch_seconds_before: f64,
    /// (selection score, test acc, epoch) of the best checkpoint so far.
    best: Option<(f64, f64, usize)>,
    history: Vec<EpochMetrics>,
    /// Seconds the run spent before this process (resumed runs).
    seconds_before: f64,
}

/// Loss, correct count and non-finite flag of one step, read back later.
struct PendingStep {
    loss: Readback,
    correct: Readback,
    flag: Readback,
    size: usize,
    step: usize,
    checked: Vec<ParamId>,
}

fn read_u32(r: &Readback, gpu: &Gpu) -> anyhow::Result<u32> {
    Ok(u32::from_le_bytes(r.wait(gpu)?[..4].try_into().unwrap()))
}

/// Names what a non-finite flag says was bad.
fn describe_flag(flag: u32, checked: &[ParamId], model: &dyn Model) -> String {
    let mut bad = Vec::new();
    if flag & 1 != 0 {
        bad.push("the loss".to_string());
    }
    for (i, p) in checked.iter().enumerate() {
        if flag & (1 << (i + 1).min(31)) != 0 {
            bad.push(format!("the gradient of {}", model.store().entry(*p).name));
        }
    }
    bad.join(", ")
}

/// Trains a model as `cfg` says and writes the run directory. With
/// `resume`, continues the run whose `resume.safetensors` is in `cfg.out`.
pub fn train(gpu: Arc<Gpu>, cfg: &TrainConfig, show_progress: bool) -> anyhow::Result<Summary> {
    train_with(gpu, cfg, show_progress, false)
}

/// [`train`], continuing from `cfg.out/resume.safetensors` when `resume` is set.
pub fn train_with(
    gpu: Arc<Gpu>,
    cfg: &TrainConfig,
    show_progress: bool,
    resume: bool,
) -> anyhow::Result<Summary> {
    cfg.validate()?;
    if cfg.method == config::MethodKind::Adambnn && cfg.adambnn_step == 0 {
        return crate::methods::adambnn::train(gpu, cfg, show_progress, resume);
    }
    let started = Instant::now();
    std::fs::create_dir_all(&cfg.out).map_err(|e| {
        anyhow::anyhow!("cannot create output directory {}: {e}", cfg.out.display())
    })?;

    let (train_all, test) = data::load_fashion_mnist(&cfg.data)?;
    let test = if cfg.limit_test > 0 {
        test.limit(cfg.limit_test)
    } else {
        test
    };
    let train_all = if cfg.limit_train > 0 {
        train_all.limit(cfg.limit_train)
    } else {
        train_all
    };
    let val_n = cfg
        .val
        .unwrap_or_else(|| data::default_val_count(train_all.n));
    anyhow::ensure!(
        val_n < train_all.n,
        "--val {val_n} leaves no training images out of {}",
        train_all.n
    );
    let (train_set, val_set) = data::split_validation(train_all, val_n)?;

    let mut model = match &cfg.duo_decoupled_from {
        Some(p) => crate::methods::duo::decoupled_from_checkpoint(&gpu, &cfg.model, p)?,
        None => build_model_sized(&gpu, &cfg.model, cfg.seed, cfg.binarization(), cfg.width)?,
    };
    if let (Some(init), false) = (&cfg.init, resume) {
        files::load_model(&gpu, model.store_mut(), init)
            .map_err(|e| anyhow::anyhow!("--init: {e}"))?;
    }
    let teacher = match &cfg.teacher {
        Some(p) => Some(Teacher::load(&gpu, p, cfg.kd_temperature as f32)?),
        None => None,
    };
    let saturation = ActSaturation::new(&gpu)?;
    let mut opt = Optimizer::new(&gpu, optimizer_config(cfg))?;
    let metrics_path = cfg.out.join("metrics.jsonl");
    let steps_per_epoch = train_set.n.div_ceil(cfg.batch);
    let mut method: Box<dyn Method> = match cfg.sampling {
        Some(kind) => {
            let period = if cfg.sample_period > 0 {
                cfg.sample_period
            } else {
                steps_per_epoch
            };
            Box::new(PeriodicSampling::new(SamplingConfig {
                kind,
                period,
                every: if cfg.sample_every > 0 {
                    cfg.sample_every
                } else {
                    (period / 10).max(1)
                },
                pwalks_k: cfg.pwalks_k,
                pswm_mu: cfg.pswm_mu,
                start: cfg.sampling_start,
                stop: cfg.sampling_stop,
                bn_batches: cfg.bn_reestimate_batches,
            }))
        }
        None if cfg.method == crate::train::config::MethodKind::Recu => Box::new(
            crate::methods::recu::Recu::new(cfg.epochs, cfg.recu_tau_start, cfg.recu_tau_end),
        ),
        None => Box::new(Plain),
    };
    if cfg.probe_every > 0 {
        let probe = crate::methods::probe::ProbeConfig {
            every: cfg.probe_every,
            sigma: cfg.probe_sigma,
            pairs: cfg.probe_samples,
            weights: cfg.probe_weights,
            batch: cfg.batch.min(256),
            seed: cfg.seed,
        };
        method = Box::new(crate::methods::probe::WithProbe::new(
            method, probe, cfg.epochs,
        ));
    }
    let mut weights = WeightMetrics::new(&gpu, model.as_ref())?;
    let mut state = if resume {
        resume::load(
            &gpu,
            cfg,
            model.as_mut(),
            &mut opt,
            &mut weights,
            &saturation,
            method.as_mut(),
        )?
    } else {
        // A fresh run in a used directory: the old run's summary must not
        // stand beside the new run's files.
        let _ = std::fs::remove_file(cfg.out.join("summary.json"));
        files::write_atomic(&cfg.out.join("config.toml"), cfg.to_toml().as_bytes())?;
        RunState {
            epoch: 1,
            batch: 0,
            step: 0,
            sums: EpochSums::default(),
            epoch_seconds_before: 0.0,
            best: None,
            history: Vec::new(),
            seconds_before: 0.0,
        }
    };
    // The learning rate of optimizer step `step` (from 0).
    let rate_at = |step: usize| {
        let t = cfg
            .schedule_unit
            .position(step, steps_per_epoch, cfg.epochs);
        cfg.schedule.lr(cfg.lr, t)
    };
    // Fault injection for tests of --on-nan: a NaN pixel in the batch of this step.
    let inject_nan_at: Option<usize> = std::env::var("BITPROP_INJECT_NAN_AT_STEP")
        .ok()
        .and_then(|s| s.parse().ok());
    eprintln!(
        "{} {} on {} ({} train, {} val, {} test images; {} parameters){}",
        if resume { "resuming" } else { "training" },
        cfg.model,
        gpu.description(),
        train_set.n,
        val_set.n,
        test.n,
        model.store().count(),
        if resume {
            format!(" at epoch {} batch {}", state.epoch, state.batch)
        } else {
            String::new()
        }
    );

    // The evaluation batch that fits, once the first evaluation has found it
    // (an evaluation retries a batch that does not fit).
    let mut eval_batch = cfg.eval_batch;
    while state.epoch <= cfg.epochs {
        let epoch = state.epoch;
        method.before_epoch(&mut MethodCtx {
            gpu: &gpu,
            model: model.as_mut(),
            opt: &mut opt,
            train_set: &train_set,
            batch: cfg.batch,
            epoch,
            steps_per_epoch,
        })?;
        let t0 = Instant::now();
        let bar = files::progress_bar(
            show_progress,
            steps_per_epoch as u64,
            &format!("epoch {epoch}/{}", cfg.epochs),
        );
        bar.set_position(state.batch as u64);
        let mut pending: VecDeque<PendingStep> = VecDeque::new();
        let mut lr = rate_at(state.step);
        let mut batches = Batches::new(&train_set, cfg.batch, Some(cfg.seed), epoch as u64)?;
        batches.seek(state.batch);
        let mut b = data::Batch::default();
        // Reads one finished step back; a non-finite one stops the run or is skipped.
        let settle = |p: PendingStep,
                      sums: &mut EpochSums,
                      model: &dyn Model|
         -> anyhow::Result<f32> {
            let flag = read_u32(&p.flag, &gpu)?;
            let l = f32::from_le_bytes(p.loss.wait(&gpu)?[..4].try_into().unwrap());
            let c = read_u32(&p.correct, &gpu)?;
            if flag != 0 {
                let what = describe_flag(flag, &p.checked, model);
                match cfg.on_nan {
                    OnNan::Stop => anyhow::bail!(
                        "non-finite values in {what} at epoch {epoch}, step {} (batch {} of the epoch); \
                         the update was skipped and training stopped; the checkpoints in {} are from the last completed epoch",
                        p.step,
                        p.step - (epoch - 1) * steps_per_epoch + 1,
                        cfg.out.display()
                    ),
                    OnNan::SkipBatch => {
                        eprintln!(
                            "skipped a batch at epoch {epoch}, step {}: non-finite values in {what}",
                            p.step
                        );
                        sums.skipped += 1;
                        return Ok(l);
                    }
                }
            }
            sums.loss_sum += l as f64 * p.size as f64;
            sums.correct += c as u64;
            sums.seen += p.size;
            Ok(l)
        };
        while batches.next_into(&mut b) {
            lr = rate_at(state.step);
            if inject_nan_at == Some(state.step) {
                b.images_f32[0] = f32::NAN;
            }
            let (x, labels) = upload(&gpu, &b, &model.input_shape())?;
            let extras = StepExtras {
                saturation: Some(&saturation),
                teacher: teacher.as_ref(),
            };
            let (loss, count) =
                train_step_with(&gpu, model.as_ref(), &mut opt, x, &labels, lr, extras)
                    .map_err(|e| batch_too_large(e, b.size))?;
            pending.push_back(PendingStep {
                loss: gpu.read_async(loss.buffer(), 4),
                correct: gpu.read_async(count.buffer(), 4),
                flag: gpu.read_async(opt.skip.buffer(), 4),
                size: b.size,
                step: state.step,
                checked: opt.checked.clone(),
            });
            gpu.flush();
            state.step += 1;
            state.batch += 1;
            weights.after_step(&gpu, model.as_ref())?;
            method.after_step(
                &mut MethodCtx {
                    gpu: &gpu,
                    model: model.as_mut(),
                    opt: &mut opt,
                    train_set: &train_set,
                    batch: cfg.batch,
                    epoch,
                    steps_per_epoch,
                },
                state.step,
            )?;
            if pending.len() > IN_FLIGHT {
                let l = settle(
                    pending.pop_front().unwrap(),
                    &mut state.sums,
                    model.as_ref(),
                )?;
                let rate = state.sums.seen as f64 / t0.elapsed().as_secs_f64().max(1e-9);
                bar.set_message(format!("loss {l:.4}  {rate:.0} samples/s"));
            }
            bar.inc(1);
            if cfg.checkpoint_every > 0
                && state.step % cfg.checkpoint_every == 0
                && state.batch < steps_per_epoch
            {
                while let Some(p) = pending.pop_front() {
                    settle(p, &mut state.sums, model.as_ref())?;
                }
                let elapsed = state.epoch_seconds_before + t0.elapsed().as_secs_f64();
                resume::save(
                    &gpu,
                    cfg,
                    model.as_ref(),
                    &opt,
                    &weights,
                    &saturation,
                    method.as_ref(),
                    &state,
                    elapsed,
                    state.seconds_before + started.elapsed().as_secs_f64(),
                )?;
            }
        }
        while let Some(p) = pending.pop_front() {
            settle(p, &mut state.sums, model.as_ref())?;
        }
        method.end_of_epoch(&mut MethodCtx {
            gpu: &gpu,
            model: model.as_mut(),
            opt: &mut opt,
            train_set: &train_set,
            batch: cfg.batch,
            epoch,
            steps_per_epoch,
        })?;
        gpu.flush_and_wait();
        let epoch_seconds = state.epoch_seconds_before + t0.elapsed().as_secs_f64();
        bar.finish_and_clear();

        let val = if val_set.n > 0 {
            let e = evaluate(&gpu, model.as_ref(), &val_set, eval_batch)?;
            eval_batch = e.batch;
            Some(e)
        } else {
            None
        };
        let test_eval = evaluate(&gpu, model.as_ref(), &test, eval_batch)?;
        eval_batch = test_eval.batch;
        let sums = state.sums;
        // Before the memory figures, so its temporaries count in every epoch alike.
        let mut extra = weights.end_of_epoch(&gpu, model.as_ref())?;
        extra.insert(
            "act_saturation".into(),
            saturation.end_of_epoch(&gpu)?.into(),
        );
        extra.extend(method.epoch_metrics());
        let m = EpochMetrics {
            epoch,
            lr,
            train_loss: sums.loss_sum / sums.seen.max(1) as f64,
            train_acc: sums.correct as f64 / sums.seen.max(1) as f64,
            val_acc: val.map(|v| v.acc),
            val_loss: val.map(|v| v.loss),
            test_loss: test_eval.loss,
            test_acc: test_eval.acc,
            epoch_seconds,
            samples_per_s: sums.seen as f64 / epoch_seconds.max(1e-9),
            gpu_bytes: gpu.pool().bytes_in_use(),
            gpu_bytes_allocated: gpu.pool().bytes_allocated(),
            skipped_batches: sums.skipped,
            method: extra,
        };
        eprintln!(
            "epoch {epoch}: train loss {:.4} acc {:.4} | val acc {} | test loss {:.4} acc {:.4} | {:.1} s, {:.0} samples/s",
            m.train_loss,
            m.train_acc,
            m.val_acc.map_or("-".into(), |a| format!("{a:.4}")),
            m.test_loss,
            m.test_acc,
            m.epoch_seconds,
            m.samples_per_s
        );
        state.history.push(m.clone());
        let mut lines = String::new();
        for h in &state.history {
            lines.push_str(&serde_json::to_string(h)?);
            lines.push('\n');
        }
        files::write_atomic(&metrics_path, lines.as_bytes())?;

        let meta = files::checkpoint_metadata(cfg, model.as_ref());
        files::save_model(
            &gpu,
            model.store(),
            &cfg.out.join("last.safetensors"),
            &meta,
        )?;
        // Validation chooses the best checkpoint; without validation, the last one.
        let score = m.val_acc.unwrap_or(epoch as f64);
        if state.best.is_none_or(|b| score > b.0) {
            state.best = Some((score, m.test_acc, epoch));
            files::save_model(
                &gpu,
                model.store(),
                &cfg.out.join("best.safetensors"),
                &meta,
            )?;
        }
        files::plot_curves(&cfg.out.join("curves.png"), &state.history)?;
        state.epoch += 1;
        state.batch = 0;
        state.sums = EpochSums::default();
        state.epoch_seconds_before = 0.0;
        resume::save(
            &gpu,
            cfg,
            model.as_ref(),
            &opt,
            &weights,
            &saturation,
            method.as_ref(),
            &state,
            0.0,
            state.seconds_before + started.elapsed().as_secs_f64(),
        )?;
    }
    let (best_score, best_test, best_epoch) = state.best.expect("at least one epoch");
    let history = &state.history;
    let summary = Summary {
        model: cfg.model.clone(),
        adapter: gpu.description(),
        epochs: cfg.epochs,
        final_test_acc: history.last().map_or(0.0, |m| m.test_acc),
        best_val_acc: if val_set.n > 0 {
            Some(best_score)
        } else {
            None
        },
        best_test_acc: best_test,
        best_epoch,
        total_seconds: state.seconds_before + started.elapsed().as_secs_f64(),
        train_images: train_set.n,
        val_images: val_set.n,
        volatility: history
            .windows(2)
            .map(|w| (w[1].test_acc - w[0].test_acc).abs())
            .sum::<f64>()
            / (history.len().max(2) - 1) as f64,
        drops: history
            .windows(2)
            .filter(|w| w[1].test_acc < w[0].test_acc)
            .count(),
    };
    files::write_atomic(
        &cfg.out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    Ok(summary)
}
