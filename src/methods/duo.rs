//! BinaryDuo's two stages (`--method binaryduo`, METHODS.md section 2).
//!
//! Stage 1 trains the coupled network (ternary activations, layer-mean-abs
//! weights, `round(C / sqrt 2)` widths; see [`crate::nn::duo`]) for
//! `--epochs` into `DIR/coupled/`. Its best checkpoint (validation-chosen;
//! the last without validation) is decoupled exactly into the binary
//! network, whose test accuracy before fine-tuning is written to
//! `DIR/decoupling.json`. Stage 2 fine-tunes the decoupled network for
//! `--duo-finetune-epochs` (default a quarter of `--epochs`, at least 1)
//! into `DIR`, as a run whose config has `duo_decoupled_from` =
//! `DIR/coupled/best.safetensors` (so `--resume DIR` resumes stage 2, and
//! `--resume DIR/coupled` finishes stage 1 only).

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::gpu::Gpu;
use crate::nn::duo::{self, COUPLED};
use crate::nn::{Binarization, Model, build_model_with};
use crate::train::rerun::train_or_continue;
use crate::train::{Evaluation, Summary, TrainConfig, evaluate, files, train_with};

/// Stage 2's epochs: `--duo-finetune-epochs`, or a quarter of stage 1's (at least 1).
pub fn finetune_epochs(cfg: &TrainConfig) -> usize {
    if cfg.duo_finetune_epochs > 0 {
        cfg.duo_finetune_epochs
    } else {
        (cfg.epochs / 4).max(1)
    }
}

/// The decoupled network of a coupled BinaryDuo checkpoint.
pub fn decoupled_from_checkpoint(
    gpu: &Gpu,
    model: &str,
    path: &Path,
) -> anyhow::Result<Box<dyn Model>> {
    let mut coupled = build_model_with(gpu, model, 0, COUPLED)?;
    let meta = files::load_model(gpu, coupled.store_mut(), path)?;
    let bin = Binarization::from_metadata(&meta)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    anyhow::ensure!(
        bin == COUPLED,
        "--duo-decoupled-from {}: not a coupled BinaryDuo checkpoint (binarization {bin:?})",
        path.display()
    );
    duo::decouple(gpu, coupled.as_ref())
}

/// `DIR/decoupling.json`: the decoupled network before fine-tuning.
#[derive(Clone, Debug, Serialize)]
pub struct Decoupling {
    pub coupled_checkpoint: String,
    pub coupled_test_acc: f64,
    pub decoupled_test_acc: f64,
    pub decoupled_test_loss: f64,
    pub coupled_test_loss: f64,
}

/// Both stages' summaries and the decoupling check between them.
pub struct DuoRun {
    pub coupled: Summary,
    pub decoupling: Decoupling,
    pub finetuned: Summary,
}

/// Runs both stages of `--method binaryduo` (see the module docs). With
/// `rerun`, a stage that finished in its directory before is read back and
/// one killed part-way continues ([`train_or_continue`]), as reproductions do.
pub fn train_binaryduo(
    gpu: Arc<Gpu>,
    cfg: &TrainConfig,
    show: bool,
    rerun: bool,
) -> anyhow::Result<DuoRun> {
    let stage = |c: &TrainConfig| {
        if rerun {
            train_or_continue(gpu.clone(), c, show)
        } else {
            train_with(gpu.clone(), c, show, false)
        }
    };
    cfg.validate()?;
    eprintln!("{}", duo::width_rule(&cfg.model));
    let mut c1 = cfg.clone();
    c1.out = cfg.out.join("coupled");
    eprintln!(
        "BinaryDuo stage 1: coupled network, {} epochs, into {}",
        c1.epochs,
        c1.out.display()
    );
    let coupled = stage(&c1)?;
    let best = c1.out.join("best.safetensors");
    let (_, test) = crate::data::load_fashion_mnist(&cfg.data)?;
    let mut cm = build_model_with(&gpu, &cfg.model, 0, COUPLED)?;
    files::load_model(&gpu, cm.store_mut(), &best)?;
    let before: Evaluation = evaluate(&gpu, cm.as_ref(), &test, cfg.eval_batch)?;
    let dm = duo::decouple(&gpu, cm.as_ref())?;
    let after = evaluate(&gpu, dm.as_ref(), &test, cfg.eval_batch)?;
    let decoupling = Decoupling {
        coupled_checkpoint: best.display().to_string(),
        coupled_test_acc: before.acc,
        coupled_test_loss: before.loss,
        decoupled_test_acc: after.acc,
        decoupled_test_loss: after.loss,
    };
    eprintln!(
        "decoupled {}: test acc {:.4} before fine-tuning (coupled {:.4})",
        cfg.model, after.acc, before.acc
    );
    std::fs::create_dir_all(&cfg.out)?;
    files::write_atomic(
        &cfg.out.join("decoupling.json"),
        serde_json::to_string_pretty(&decoupling)?.as_bytes(),
    )?;
    let mut c2 = cfg.clone();
    c2.epochs = finetune_epochs(cfg);
    c2.duo_decoupled_from = Some(best);
    eprintln!(
        "BinaryDuo stage 2: fine-tuning the decoupled network, {} epochs, into {}",
        c2.epochs,
        c2.out.display()
    );
    let finetuned = stage(&c2)?;
    Ok(DuoRun {
        coupled,
        decoupling,
        finetuned,
    })
}
