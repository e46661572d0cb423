use std::path::PathBuf;

use clap::Args;

use super::{Cli, print_json};
use crate::gpu::Gpu;
use crate::optim::{DecayScope, OptimizerKind, Schedule};
use crate::train::TrainConfig;

/// Flags of `bitprop train`; each overrides the same key of `--config`.
/// Numeric flags accept a leading `-` so that `--lr -1` is reported as a bad
/// value of `--lr`, not as an unknown flag `-1`.
#[derive(Args, Debug, Default)]
pub struct TrainArgs {
    /// A flat TOML file whose keys are these flags' long names with `_` for `-`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Model: bmlp, bcnn, reactnet-s, or their real-valued twins bmlp-f32, bcnn-f32, reactnet-s-f32.
    #[arg(long)]
    model: Option<String>,
    /// Epochs to train [default: 10].
    #[arg(long, allow_negative_numbers = true, value_parser = count)]
    epochs: Option<usize>,
    /// Training batch size [default: 256].
    #[arg(long, allow_negative_numbers = true, value_parser = count)]
    batch: Option<usize>,
    /// adam (L2 weight decay), adamw (decoupled) or sgd (momentum) [default: adam].
    #[arg(long)]
    optimizer: Option<OptimizerKind>,
    /// Initial learning rate [default: 0.001].
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// Weight decay [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    weight_decay: Option<f64>,
    /// Where weight decay applies: all, or kernels (conv/linear kernels only) [default: all].
    #[arg(long)]
    decay_scope: Option<DecayScope>,
    /// Learning rate schedule: linear (to 0), cosine or constant [default: linear].
    #[arg(long)]
    schedule: Option<Schedule>,
    /// What the schedule counts: step (the rate changes every optimizer step) or
    /// epoch (held for each epoch: linear is lr0 * (1 - e/E) for epoch e from 0, as
    /// in the AdamBNN and ReActNet code, a PyTorch LambdaLR stepped per epoch) [default: step].
    #[arg(long)]
    schedule_unit: Option<crate::optim::ScheduleUnit>,
    /// SGD momentum [default: 0.9].
    #[arg(long, allow_negative_numbers = true)]
    momentum: Option<f64>,
    /// Nesterov momentum for SGD.
    #[arg(long)]
    nesterov: bool,
    /// Seed of weight init and shuffling [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    seed: Option<u64>,
    /// Output directory for metrics.jsonl, checkpoints, summary.json, curves.png [default: runs/latest].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Directory with the Fashion-MNIST IDX files [default: /usr/share/datasets/fashion-mnist].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Train on the first N training images only.
    #[arg(long, allow_negative_numbers = true, value_parser = count)]
    limit_train: Option<usize>,
    /// Hold out the last N training images for validation (0: none; default 5000, or a
    /// tenth of the training images when fewer than 50,000 are used).
    #[arg(long, allow_negative_numbers = true, value_parser = count)]
    val: Option<usize>,
    /// Batch size for evaluation passes [default: 200; conv models need activations under the 128 MiB binding limit of some adapters].
    #[arg(long, allow_negative_numbers = true, value_parser = count)]
    eval_batch: Option<usize>,
    /// What a non-finite loss or gradient does: stop (naming epoch, step and
    /// tensor; the update is skipped and the last checkpoints stay) or skip-batch [default: stop].
    #[arg(long)]
    on_nan: Option<crate::train::OnNan>,
    /// Also write resume state every STEPS steps within an epoch [default: 0, epoch ends only].
    #[arg(long, allow_negative_numbers = true, value_parser = count, value_name = "STEPS")]
    checkpoint_every: Option<usize>,
    /// Continue the killed run in DIR from DIR/resume.safetensors, with DIR/config.toml
    /// (other flags are ignored).
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// Periodic sampling over weights: pswa, pwalks or pswm [default: none].
    #[arg(long)]
    sampling: Option<crate::methods::psample::Sampling>,
    /// Steps per sampling period [default: 0, one epoch].
    #[arg(long, allow_negative_numbers = true, value_parser = count)]
    sample_period: Option<usize>,
    /// Steps between samples [default: 0, a tenth of the period].
    #[arg(long, allow_negative_numbers = true, value_parser = count)]
    sample_every: Option<usize>,
    /// PWALKS averages the last K samples [default: 5].
    #[arg(long, allow_negative_numbers = true, value_parser = count)]
    pwalks_k: Option<usize>,
    /// PSWM extrapolation factor mu [default: 0.5].
    #[arg(long, allow_negative_numbers = true)]
    pswm_mu: Option<f64>,
    /// First epoch of sampling [default: 1].
    #[arg(long, allow_negative_numbers = true, value_parser = count)]
    sampling_start: Option<usize>,
    /// Last epoch of sampling [default: 0, the last].
    #[arg(long, allow_negative_numbers = true, value_parser = count)]
    sampling_stop: Option<usize>,
    /// Training batches that re-estimate batch-norm statistics after each replacement [default: 20].
    #[arg(long, allow_negative_numbers = true, value_parser = count)]
    bn_reestimate_batches: Option<usize>,
    /// Training method: plain, adambnn, binaryduo or recu [default: plain].
    #[arg(long)]
    method: Option<crate::train::config::MethodKind>,
    /// ReCU's b* of the weight standardization [default: 2].
    #[arg(long, allow_negative_numbers = true)]
    recu_b_star: Option<f64>,
    /// ReCU's tau at the first epoch [default: 0.85].
    #[arg(long, allow_negative_numbers = true)]
    recu_tau_start: Option<f64>,
    /// ReCU's tau at the last epoch [default: 0.99].
    #[arg(long, allow_negative_numbers = true)]
    recu_tau_end: Option<f64>,
    /// ReCU's per-output-channel scale: learnable (a `<layer>.scale` tensor) or mean-abs
    /// (the detached mean |w2|) [default: learnable].
    #[arg(long)]
    recu_scale: Option<crate::train::config::RecuScale>,
    /// Start from this checkpoint's tensors (strict load by name and shape).
    #[arg(long, value_name = "CHECKPOINT")]
    init: Option<PathBuf>,
    /// Distil from this real-valued model checkpoint (e.g. a bmlp-f32 run's
    /// best.safetensors) instead of cross-entropy [default: none].
    #[arg(long, value_name = "CHECKPOINT")]
    teacher: Option<PathBuf>,
    /// Temperature of the distillation loss [default: 1].
    #[arg(long, allow_negative_numbers = true)]
    kd_temperature: Option<f64>,
    /// AdamBNN: epochs of step 1 [default: half of --epochs, rounded down].
    #[arg(long, allow_negative_numbers = true, value_parser = count)]
    step1_epochs: Option<usize>,
    /// AdamBNN: true for two steps, false for binary weights and activations from the start [default: true].
    #[arg(long, value_name = "BOOL")]
    two_step: Option<bool>,
    /// AdamBNN: what step 1 binarizes: activations (real weights; the paper's) or weights (real activations) [default: activations].
    #[arg(long)]
    first: Option<crate::train::config::FirstBinarized>,
    /// AdamBNN: weight decay of step 1 on conv/linear kernels (negative allowed) [default: 5e-6].
    #[arg(long, allow_negative_numbers = true)]
    step1_weight_decay: Option<f64>,
    /// AdamBNN: weight decay of step 2 and of a one-step run, on conv/linear kernels [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    step2_weight_decay: Option<f64>,
    /// AdamBNN: which step this run is: 0 the whole recipe, 1 or 2 one step only (bitprop writes it into each step's config.toml) [default: 0].
    #[arg(long, allow_negative_numbers = true, value_parser = count)]
    adambnn_step: Option<usize>,
    /// Multiply every hidden layer's width by X (e.g. 0.25 for quick experiments) [default: 1].
    #[arg(long, allow_negative_numbers = true, value_name = "X")]
    width: Option<f64>,
    /// Evaluate on the first N test images only [default: 0, all].
    #[arg(long, allow_negative_numbers = true, value_parser = count)]
    limit_test: Option<usize>,
    /// BinaryDuo: fine-tuning epochs of the decoupled network [default: 0, a quarter of --epochs, at least 1].
    #[arg(long, allow_negative_numbers = true, value_parser = count)]
    duo_finetune_epochs: Option<usize>,
    /// BinaryDuo stage 2 only: fine-tune the decoupling of this coupled checkpoint.
    #[arg(long, value_name = "CHECKPOINT")]
    duo_decoupled_from: Option<PathBuf>,
    /// Gradient-mismatch probe every N epochs and at the last [default: 0, off].
    #[arg(long, allow_negative_numbers = true, value_parser = count)]
    probe_every: Option<usize>,
    /// Probe noise standard deviation [default: 0, half the probed layer's mean |W|].
    #[arg(long, allow_negative_numbers = true)]
    probe_sigma: Option<f64>,
    /// Probe antithetic Monte Carlo pairs [default: 64].
    #[arg(long, allow_negative_numbers = true, value_parser = count)]
    probe_samples: Option<usize>,
    /// Probe sampled weights of the layer [default: 64].
    #[arg(long, allow_negative_numbers = true, value_parser = count)]
    probe_weights: Option<usize>,
    /// Print summary.json's object on stdout.
    #[arg(long)]
    json: bool,
}

/// Parses a count flag, saying what is expected in words (clap's default
/// for `usize` says "invalid digit found in string" for `-1`).
fn count(s: &str) -> Result<usize, String> {
    let t = s.trim();
    t.parse().map_err(|_| {
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            format!("{t} is too large (at most {})", usize::MAX)
        } else {
            format!("expected an integer >= 0, got '{s}'")
        }
    })
}

impl TrainArgs {
    /// Defaults, then the TOML file, then the flags given.
    pub fn resolve(&self) -> anyhow::Result<TrainConfig> {
        let mut c = match &self.config {
            Some(p) => TrainConfig::from_toml_file(p)?,
            None => TrainConfig::default(),
        };
        macro_rules! over {
            ($($f:ident),*) => { $( if let Some(v) = &self.$f { c.$f = v.clone(); } )* };
        }
        over!(
            model,
            epochs,
            batch,
            optimizer,
            lr,
            weight_decay,
            decay_scope,
            schedule,
            schedule_unit,
            momentum,
            seed,
            out,
            data,
            limit_train,
            eval_batch,
            on_nan,
            checkpoint_every,
            sample_period,
            sample_every,
            pwalks_k,
            pswm_mu,
            sampling_start,
            sampling_stop,
            bn_reestimate_batches,
            method,
            recu_b_star,
            recu_tau_start,
            recu_tau_end,
            recu_scale,
            kd_temperature,
            two_step,
            first,
            step1_weight_decay,
            step2_weight_decay,
            adambnn_step,
            width,
            limit_test,
            duo_finetune_epochs,
            probe_every,
            probe_sigma,
            probe_samples,
            probe_weights
        );
        if let Some(v) = &self.init {
            c.init = Some(v.clone());
        }
        if let Some(v) = &self.teacher {
            c.teacher = Some(v.clone());
        }
        if let Some(v) = self.step1_epochs {
            c.step1_epochs = Some(v);
        }
        if let Some(v) = &self.duo_decoupled_from {
            c.duo_decoupled_from = Some(v.clone());
        }
        if let Some(v) = self.sampling {
            c.sampling = Some(v);
        }
        if self.nesterov {
            c.nesterov = true;
        }
        if let Some(v) = self.val {
            c.val = Some(v);
        }
        c.validate()?;
        Ok(c)
    }
}

pub fn run(cli: &Cli, args: &TrainArgs) -> anyhow::Result<()> {
    let cfg = match &args.resume {
        Some(dir) => {
            let mut c = TrainConfig::from_toml_file(&dir.join("config.toml"))?;
            c.out = dir.clone();
            c.validate()?;
            c
        }
        None => args.resolve()?,
    };
    let gpu = Gpu::new(&cli.device_options()?)?;
    let show_progress = !args.json || std::io::IsTerminal::is_terminal(&std::io::stderr());
    let two_stage = cfg.method == crate::train::config::MethodKind::Binaryduo
        && cfg.duo_decoupled_from.is_none()
        && args.resume.is_none();
    let summary = if two_stage {
        crate::methods::duo::train_binaryduo(gpu, &cfg, show_progress, false)?.finetuned
    } else {
        crate::train::train_with(gpu, &cfg, show_progress, args.resume.is_some())?
    };
    eprintln!(
        "done: final test acc {:.4}, best {} test acc {:.4} (epoch {}), {:.0} s; run in {}",
        summary.final_test_acc,
        if summary.best_val_acc.is_some() {
            "validation-chosen"
        } else {
            "(last)"
        },
        summary.best_test_acc,
        summary.best_epoch,
        summary.total_seconds,
        cfg.out.display()
    );
    if args.json {
        print_json(&summary)?;
    }
    Ok(())
}
