//! AdamBNN's two-step training (METHODS.md section 1).
//!
//! Step 1 trains with one side binary: binary activations and real weights
//! (`--first activations`, the paper's), or binary weights and real
//! HardTanh activations (`--first weights`), weight decay
//! `--step1-weight-decay` (5e-6) on conv/linear kernels only. Step 2 starts
//! from step 1's best checkpoint with a strict load and trains binary
//! weights and activations with `--step2-weight-decay` (0). Each step is
//! an ordinary run with its own linear lr decay, optimizer (`--optimizer`,
//! Adam by default: betas 0.9/0.999, eps 1e-8, L2 decay as PyTorch's `Adam`)
//! and, with `--teacher`, the distillation loss.
//!
//! Layout of `--out DIR`: `DIR/step1/` holds step 1's run (config.toml,
//! metrics.jsonl, checkpoints, summary.json); `DIR` holds step 2's files
//! and the final summary.json. `DIR/config.toml` is the whole recipe until
//! step 2 starts, then step 2's own configuration (`adambnn_step = 2`), so
//! `--resume DIR` continues in the right step. A one-step run
//! (`--two-step false`) trains binary weights and activations for all
//! epochs straight into `DIR`, with step 2's weight decay.

use std::sync::Arc;

use crate::gpu::Gpu;
use crate::optim::DecayScope;
use crate::train::{Summary, TrainConfig, files, train_with};

/// The configuration of step `step` (1 or 2) of the recipe `cfg`.
pub fn step_config(cfg: &TrainConfig, step: usize) -> TrainConfig {
    let s1 = cfg.adambnn_step1_epochs();
    let mut c = cfg.clone();
    c.adambnn_step = step;
    c.decay_scope = DecayScope::Kernels;
    if step == 1 {
        c.out = cfg.out.join("step1");
        c.epochs = s1;
        c.weight_decay = cfg.step1_weight_decay;
    } else {
        c.weight_decay = cfg.step2_weight_decay;
        if cfg.two_step {
            c.epochs = cfg.epochs - s1;
            c.init = Some(cfg.out.join("step1").join("best.safetensors"));
        }
    }
    c
}

/// Runs the recipe `cfg` (`adambnn_step = 0`), or continues it with `resume`.
pub fn train(
    gpu: Arc<Gpu>,
    cfg: &TrainConfig,
    show_progress: bool,
    resume: bool,
) -> anyhow::Result<Summary> {
    let has_state = |c: &TrainConfig| resume && c.out.join("resume.safetensors").exists();
    if !cfg.two_step {
        let c = step_config(cfg, 2);
        return train_with(gpu, &c, show_progress, has_state(&c));
    }
    std::fs::create_dir_all(&cfg.out).map_err(|e| {
        anyhow::anyhow!("cannot create output directory {}: {e}", cfg.out.display())
    })?;
    if !resume {
        files::write_atomic(&cfg.out.join("config.toml"), cfg.to_toml().as_bytes())?;
    }
    let s1 = step_config(cfg, 1);
    // A resumed recipe skips a step 1 that finished (it wrote summary.json last).
    if !(resume && s1.out.join("summary.json").exists()) {
        eprintln!("adambnn step 1 of 2 -> {}", s1.out.display());
        train_with(gpu.clone(), &s1, show_progress, has_state(&s1))?;
    }
    let s2 = step_config(cfg, 2);
    eprintln!(
        "adambnn step 2 of 2 from {} -> {}",
        s2.init.as_ref().expect("step 2 has an init").display(),
        s2.out.display()
    );
    train_with(gpu, &s2, show_progress, has_state(&s2))
}
