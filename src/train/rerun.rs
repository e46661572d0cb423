//! Running a configuration again into the directory it ran in before: a
//! finished run is read back, a killed one continues from its resume
//! state. Reproductions use this so an interrupted one picks up where it
//! stopped; `bitprop train` always starts over (or `--resume`s on request).

use std::sync::Arc;

use super::config::MethodKind;
use super::{Summary, TrainConfig, train_with};
use crate::gpu::Gpu;

/// What `cfg.out` holds for the configuration `cfg`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirState {
    /// Nothing of this configuration: train from the start.
    Fresh,
    /// Started with this configuration and killed after writing resume state.
    Interrupted,
    /// Finished with this configuration: every epoch's metrics and the summary.
    Finished,
}

/// Whether `cfg.out/config.toml` holds `cfg`: parsed, so keys added to
/// bitprop since (at their defaults) do not count as a difference.
pub fn same_config(cfg: &TrainConfig) -> bool {
    let path = cfg.out.join("config.toml");
    std::fs::read_to_string(&path)
        .ok()
        .and_then(|c| TrainConfig::from_toml_str(&c, &path).ok())
        .is_some_and(|c| &c == cfg)
}

/// The state of one ordinary run (one directory, one config.toml).
fn single_run_state(cfg: &TrainConfig) -> DirState {
    if !same_config(cfg) {
        return DirState::Fresh;
    }
    let all_epochs = std::fs::read_to_string(cfg.out.join("metrics.jsonl"))
        .is_ok_and(|m| m.lines().count() == cfg.epochs);
    if all_epochs && cfg.out.join("summary.json").exists() {
        DirState::Finished
    } else if cfg.out.join("resume.safetensors").exists() {
        DirState::Interrupted
    } else {
        DirState::Fresh
    }
}

/// The state of `cfg` in `cfg.out`. An AdamBNN recipe (`adambnn_step` 0)
/// is judged by its steps' directories (see `methods::adambnn`).
pub fn run_state(cfg: &TrainConfig) -> DirState {
    if cfg.method != MethodKind::Adambnn || cfg.adambnn_step != 0 {
        return single_run_state(cfg);
    }
    let step2 = crate::methods::adambnn::step_config(cfg, 2);
    if !cfg.two_step {
        return single_run_state(&step2);
    }
    let step1 = crate::methods::adambnn::step_config(cfg, 1);
    match (single_run_state(&step1), single_run_state(&step2)) {
        (DirState::Finished, DirState::Finished) => DirState::Finished,
        // The recipe continues in whichever step it stopped.
        _ if same_config(&step1) => DirState::Interrupted,
        _ => DirState::Fresh,
    }
}

/// Trains `cfg` (quietly unless `show_progress`), continues it, or reads
/// it back, as [`run_state`] finds `cfg.out`.
pub fn train_or_continue(
    gpu: Arc<Gpu>,
    cfg: &TrainConfig,
    show_progress: bool,
) -> anyhow::Result<Summary> {
    match run_state(cfg) {
        DirState::Finished => {
            let path = cfg.out.join("summary.json");
            let text = std::fs::read_to_string(&path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
        }
        DirState::Interrupted => train_with(gpu, cfg, show_progress, true),
        DirState::Fresh => train_with(gpu, cfg, show_progress, false),
    }
}
