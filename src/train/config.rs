//! The resolved training configuration: defaults, then a flat TOML file,
//! then command-line flags. TOML keys are the long flag names with `_`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::optim::{DecayScope, OptimizerKind, Schedule};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub model: String,
    pub epochs: usize,
    pub batch: usize,
    pub optimizer: OptimizerKind,
    pub lr: f64,
    pub weight_decay: f64,
    pub decay_scope: DecayScope,
    pub schedule: Schedule,
    pub momentum: f64,
    pub nesterov: bool,
    pub seed: u64,
    pub out: PathBuf,
    pub data: PathBuf,
    /// Use only the first N training images (0: all).
    pub limit_train: usize,
    /// Hold out the last N training images for validation (unset: the default rule).
    pub val: Option<usize>,
    /// Batch size of evaluation passes.
    pub eval_batch: usize,
    /// What a non-finite loss or gradient does: stop the run, or skip the batch.
    pub on_nan: OnNan,
    /// Also write resume state every this many steps within an epoch (0: at epoch ends only).
    pub checkpoint_every: usize,
    /// Periodic sampling over weights: pswa, pwalks or pswm (unset: none).
    pub sampling: Option<crate::methods::psample::Sampling>,
    /// Steps per sampling period (0: one epoch).
    pub sample_period: usize,
    /// Steps between samples (0: a tenth of the period).
    pub sample_every: usize,
    /// PWALKS averages the last K samples.
    pub pwalks_k: usize,
    /// PSWM's extrapolation factor mu.
    pub pswm_mu: f64,
    /// First epoch (1-based) in which sampling runs.
    pub sampling_start: usize,
    /// Last epoch in which sampling runs (0: the last epoch).
    pub sampling_stop: usize,
    /// Training batches of the batch-norm re-estimation after each replacement.
    pub bn_reestimate_batches: usize,
}

/// What a non-finite loss or gradient does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnNan {
    /// Stop with a message naming the epoch, step and tensor (the update is skipped).
    Stop,
    /// Skip that batch's update and go on.
    SkipBatch,
}

impl std::str::FromStr for OnNan {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "stop" => Ok(OnNan::Stop),
            "skip-batch" => Ok(OnNan::SkipBatch),
            _ => Err(format!(
                "unknown --on-nan '{s}': expected stop or skip-batch"
            )),
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            model: "bmlp".into(),
            epochs: 10,
            batch: 256,
            optimizer: OptimizerKind::Adam,
            lr: 1e-3,
            weight_decay: 0.0,
            decay_scope: DecayScope::All,
            schedule: Schedule::Linear,
            momentum: 0.9,
            nesterov: false,
            seed: 0,
            out: PathBuf::from("runs/latest"),
            data: PathBuf::from(crate::data::DEFAULT_FASHION_MNIST_DIR),
            limit_train: 0,
            val: None,
            eval_batch: 1000,
            on_nan: OnNan::Stop,
            checkpoint_every: 0,
            sampling: None,
            sample_period: 0,
            sample_every: 0,
            pwalks_k: 5,
            pswm_mu: 0.5,
            sampling_start: 1,
            sampling_stop: 0,
            bn_reestimate_batches: 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config field '{field}': {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

impl TrainConfig {
    /// Reads a flat TOML file over the defaults; unknown keys are errors.
    pub fn from_toml_file(path: &Path) -> Result<TrainConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// The resolved configuration as TOML (what `config.toml` in a run holds).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("config serializes")
    }

    /// Rejects values no run can use, naming the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, message: String| Err(ConfigError::Invalid { field, message });
        if !crate::nn::MODEL_NAMES.contains(&self.model.as_str()) {
            return bad(
                "model",
                format!(
                    "unknown model '{}': expected one of {}",
                    self.model,
                    crate::nn::MODEL_NAMES.join(", ")
                ),
            );
        }
        if self.epochs == 0 {
            return bad("epochs", "must be at least 1".into());
        }
        if self.batch == 0 {
            return bad("batch", "must be at least 1".into());
        }
        if self.eval_batch == 0 {
            return bad("eval_batch", "must be at least 1".into());
        }
        if !self.lr.is_finite() || self.lr < 0.0 {
            return bad(
                "lr",
                format!("must be a finite number >= 0, got {}", self.lr),
            );
        }
        if !self.weight_decay.is_finite() {
            return bad(
                "weight_decay",
                format!("must be finite, got {}", self.weight_decay),
            );
        }
        if !self.momentum.is_finite() || !(0.0..1.0).contains(&self.momentum) {
            return bad(
                "momentum",
                format!("must be in [0, 1), got {}", self.momentum),
            );
        }
        if self.pwalks_k == 0 {
            return bad("pwalks_k", "must be at least 1".into());
        }
        if !self.pswm_mu.is_finite() {
            return bad("pswm_mu", format!("must be finite, got {}", self.pswm_mu));
        }
        if self.sampling_start == 0 {
            return bad("sampling_start", "epochs count from 1".into());
        }
        Ok(())
    }
}
