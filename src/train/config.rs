//! The resolved training configuration: defaults, then a flat TOML file,
//! then command-line flags. TOML keys are the long flag names with `_`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::optim::{DecayScope, OptimizerKind, Schedule, ScheduleUnit};

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
    /// What the schedule counts: steps (the rate changes every step) or epochs.
    pub schedule_unit: ScheduleUnit,
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
    /// The training method: plain, adambnn, binaryduo or recu.
    pub method: MethodKind,
    /// Start from this checkpoint's tensors (strict load: every tensor by name and shape).
    pub init: Option<PathBuf>,
    /// Distil from this real-valued model checkpoint (eval mode, detached)
    /// instead of cross-entropy; its model name comes from its metadata.
    pub teacher: Option<PathBuf>,
    /// Temperature of the distillation loss.
    pub kd_temperature: f64,
    /// AdamBNN: epochs of step 1 (unset: half of `epochs`, rounded down).
    pub step1_epochs: Option<usize>,
    /// AdamBNN: two steps (true) or binary weights and activations from the start.
    pub two_step: bool,
    /// AdamBNN: what step 1 binarizes: activations (the paper's) or weights.
    pub first: FirstBinarized,
    /// AdamBNN: weight decay of step 1 on conv/linear kernels.
    pub step1_weight_decay: f64,
    /// AdamBNN: weight decay of step 2 (and of a one-step run) on conv/linear kernels.
    pub step2_weight_decay: f64,
    /// AdamBNN: which step this run is: 0 the whole recipe (what a user
    /// gives), 1 or 2 one step (what bitprop writes into each step's config.toml).
    pub adambnn_step: usize,
    /// Multiplier of every hidden layer's width (1: the models as listed).
    pub width: f64,
    /// Evaluate on the first N test images only (0: all 10,000).
    pub limit_test: usize,
    /// BinaryDuo: stage 2's fine-tuning epochs (0: a quarter of `epochs`, at least 1).
    pub duo_finetune_epochs: usize,
    /// BinaryDuo stage 2: fine-tune the decoupling of this coupled checkpoint
    /// (set by the two-stage run; unset: train the coupled network).
    pub duo_decoupled_from: Option<PathBuf>,
    /// Gradient-mismatch probe every N epochs and at the last (0: off).
    pub probe_every: usize,
    /// The probe's noise standard deviation (0: half the probed layer's mean |W|).
    pub probe_sigma: f64,
    /// The probe's antithetic Monte Carlo pairs.
    pub probe_samples: usize,
    /// Weights of the probed layer the probe samples.
    pub probe_weights: usize,
    /// ReCU's b* in the standardization (`--method recu`).
    pub recu_b_star: f64,
    /// ReCU's tau at the first epoch.
    pub recu_tau_start: f64,
    /// ReCU's tau at the last epoch.
    pub recu_tau_end: f64,
    /// ReCU's per-output-channel scale: learnable or the analytic mean |w2|.
    pub recu_scale: RecuScale,
}

/// `--recu-scale`: how a ReCU binary layer scales its output channels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecuScale {
    /// A learnable `<layer>.scale` (ReCU's code).
    #[default]
    Learnable,
    /// The detached mean |w2| per output channel (the paper's analytic alternative).
    MeanAbs,
}

impl std::str::FromStr for RecuScale {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "learnable" => Ok(RecuScale::Learnable),
            "mean-abs" => Ok(RecuScale::MeanAbs),
            _ => Err(format!(
                "unknown --recu-scale '{s}': expected learnable or mean-abs"
            )),
        }
    }
}

/// `--first`: what AdamBNN's step 1 binarizes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FirstBinarized {
    /// Binary activations, real weights (the paper's recipe).
    #[default]
    Activations,
    /// Binary weights, real (HardTanh) activations.
    Weights,
}

impl std::str::FromStr for FirstBinarized {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "activations" => Ok(FirstBinarized::Activations),
            "weights" => Ok(FirstBinarized::Weights),
            _ => Err(format!(
                "unknown --first '{s}': expected activations or weights"
            )),
        }
    }
}

/// `--method`: the training method whose recipe the run follows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MethodKind {
    /// The training issue's loop and binarization rules.
    #[default]
    Plain,
    /// AdamBNN's two-step training (METHODS.md section 1).
    Adambnn,
    /// BinaryDuo's coupled ternary training then decoupling (section 2).
    Binaryduo,
    /// ReCU's rectified clamp (section 3).
    Recu,
}

impl std::str::FromStr for MethodKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "plain" => Ok(MethodKind::Plain),
            "adambnn" => Ok(MethodKind::Adambnn),
            "binaryduo" => Ok(MethodKind::Binaryduo),
            "recu" => Ok(MethodKind::Recu),
            _ => Err(format!(
                "unknown --method '{s}': expected plain, adambnn, binaryduo or recu"
            )),
        }
    }
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
            schedule_unit: ScheduleUnit::Step,
            momentum: 0.9,
            nesterov: false,
            seed: 0,
            out: PathBuf::from("runs/latest"),
            data: PathBuf::from(crate::data::DEFAULT_FASHION_MNIST_DIR),
            limit_train: 0,
            val: None,
            eval_batch: 200,
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
            method: MethodKind::Plain,
            recu_b_star: 2.0,
            recu_tau_start: crate::nn::layers::RECU_TAU_START as f64,
            recu_tau_end: 0.99,
            recu_scale: RecuScale::Learnable,
            init: None,
            teacher: None,
            kd_temperature: 1.0,
            step1_epochs: None,
            two_step: true,
            first: FirstBinarized::Activations,
            step1_weight_decay: 5e-6,
            step2_weight_decay: 0.0,
            adambnn_step: 0,
            width: 1.0,
            limit_test: 0,
            duo_finetune_epochs: 0,
            duo_decoupled_from: None,
            probe_every: 0,
            probe_sigma: 0.0,
            probe_samples: 64,
            probe_weights: 64,
        }
    }
}

/// Errors from reading and checking a configuration; each names the file,
/// and the line and field where there is one.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read. (The I/O error is part of the message and
    /// deliberately not a `source()`, so the error chain does not repeat it.)
    #[error("cannot read config file {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The TOML is malformed, has an unknown key, or a value of the wrong
    /// type; `message` gives the line and the field.
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A value no run can use; `field` is the TOML key (the flag is the same
    /// name with `-`).
    #[error("config field '{field}' (--{}): {message}", field.replace('_', "-"))]
    Invalid {
        field: &'static str,
        message: String,
    },
}

impl TrainConfig {
    /// The binarization rules the configured method trains with.
    pub fn binarization(&self) -> crate::nn::Binarization {
        use crate::nn::{ActRule, Binarization, WeightRule};
        if self.method == MethodKind::Adambnn && self.adambnn_step == 1 {
            return match self.first {
                FirstBinarized::Activations => Binarization {
                    weights: WeightRule::Real,
                    acts: ActRule::default(),
                },
                FirstBinarized::Weights => Binarization {
                    weights: WeightRule::default(),
                    acts: ActRule::HardTanh,
                },
            };
        }
        match self.method {
            MethodKind::Recu => Binarization {
                weights: WeightRule::Recu {
                    b_star: self.recu_b_star as f32,
                    learnable_scale: self.recu_scale == RecuScale::Learnable,
                },
                acts: ActRule::RecuStd,
            },
            MethodKind::Binaryduo if self.duo_decoupled_from.is_some() => crate::nn::duo::DECOUPLED,
            MethodKind::Binaryduo => crate::nn::duo::COUPLED,
            _ => Binarization::default(),
        }
    }

    /// AdamBNN's epochs of step 1: `--step1-epochs`, or half of `--epochs`.
    pub fn adambnn_step1_epochs(&self) -> usize {
        self.step1_epochs.unwrap_or(self.epochs / 2)
    }

    /// Reads a flat TOML file over the defaults; unknown keys are errors.
    /// Does not [`validate`](Self::validate).
    pub fn from_toml_file(path: &Path) -> Result<TrainConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        TrainConfig::from_toml_str(&text, path)
    }

    /// Parses flat TOML `text` over the defaults; unknown keys are errors,
    /// and `origin` is the file errors name. The parser behind
    /// [`from_toml_file`](Self::from_toml_file), and the entry point the fuzz
    /// target drives. Does not [`validate`](Self::validate).
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<TrainConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_path_buf(),
            message: describe_toml_error(text, &e),
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
                    // Debug quoting keeps a name with a newline on one line.
                    "unknown model {:?}: expected one of {}",
                    self.model,
                    crate::nn::MODEL_NAMES.join(", ")
                ),
            );
        }
        if self.epochs == 0 {
            return bad("epochs", "must be at least 1, got 0".into());
        }
        if self.batch == 0 {
            return bad("batch", "must be at least 1, got 0".into());
        }
        if self.eval_batch == 0 {
            return bad("eval_batch", "must be at least 1, got 0".into());
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
            return bad("pwalks_k", "must be at least 1, got 0".into());
        }
        if !self.pswm_mu.is_finite() {
            return bad("pswm_mu", format!("must be finite, got {}", self.pswm_mu));
        }
        if self.sampling_start == 0 {
            return bad("sampling_start", "epochs count from 1, got 0".into());
        }
        if !self.kd_temperature.is_finite() || self.kd_temperature <= 0.0 {
            return bad(
                "kd_temperature",
                format!("must be a finite number > 0, got {}", self.kd_temperature),
            );
        }
        for (field, v) in [
            ("step1_weight_decay", self.step1_weight_decay),
            ("step2_weight_decay", self.step2_weight_decay),
        ] {
            if !v.is_finite() {
                return bad(field, format!("must be finite, got {v}"));
            }
        }
        if self.adambnn_step > 2 {
            return bad(
                "adambnn_step",
                format!("must be 0, 1 or 2, got {}", self.adambnn_step),
            );
        }
        if self.method == MethodKind::Adambnn && self.adambnn_step == 0 && self.weight_decay != 0.0
        {
            return bad(
                "weight_decay",
                "--method adambnn sets each step's decay: use --step1-weight-decay and --step2-weight-decay".into(),
            );
        }
        if self.method == MethodKind::Adambnn && self.two_step && self.adambnn_step == 0 {
            let s1 = self.adambnn_step1_epochs();
            if s1 == 0 || s1 >= self.epochs {
                return bad(
                    "step1_epochs",
                    format!(
                        "two-step training needs 1 <= step 1 epochs < --epochs ({}), got {s1}",
                        self.epochs
                    ),
                );
            }
        }
        if !(self.width.is_finite() && self.width > 0.0 && self.width <= 16.0) {
            return bad("width", format!("must be in (0, 16], got {}", self.width));
        }
        if self.method == MethodKind::Binaryduo && !["bmlp", "bcnn"].contains(&self.model.as_str())
        {
            return bad(
                "method",
                format!(
                    "binaryduo supports --model bmlp and bcnn, not '{}'",
                    self.model
                ),
            );
        }
        if self.method == MethodKind::Binaryduo && self.width != 1.0 {
            return bad(
                "width",
                "binaryduo sets its own widths (1/sqrt(2) of each binary layer); --width must be 1"
                    .into(),
            );
        }
        if self.duo_decoupled_from.is_some() && self.method != MethodKind::Binaryduo {
            return bad("duo_decoupled_from", "needs --method binaryduo".into());
        }
        if !self.probe_sigma.is_finite() || self.probe_sigma < 0.0 {
            return bad(
                "probe_sigma",
                format!("must be a finite number >= 0, got {}", self.probe_sigma),
            );
        }
        if self.probe_every > 0 && (self.probe_samples == 0 || self.probe_weights == 0) {
            return bad(
                "probe_samples",
                "the probe needs --probe-samples and --probe-weights of at least 1".into(),
            );
        }
        if !self.recu_b_star.is_finite() || self.recu_b_star <= 0.0 {
            return bad(
                "recu_b_star",
                format!("must be a finite number > 0, got {}", self.recu_b_star),
            );
        }
        // Q = -b_hat ln(2 - 2 tau) is positive and finite only for tau in (0.5, 1).
        for (field, tau) in [
            ("recu_tau_start", self.recu_tau_start),
            ("recu_tau_end", self.recu_tau_end),
        ] {
            if !(tau > 0.5 && tau < 1.0) {
                return bad(field, format!("must be in (0.5, 1), got {tau}"));
            }
        }
        if self.method == MethodKind::Recu {
            if self.model.ends_with("-f32") {
                return bad(
                    "method",
                    format!(
                        "recu needs a binary model, and {} has no binary layers",
                        self.model
                    ),
                );
            }
            if self.sampling.is_some() {
                return bad("sampling", "cannot be combined with --method recu".into());
            }
        }
        if !matches!(
            self.method,
            MethodKind::Plain | MethodKind::Binaryduo | MethodKind::Recu | MethodKind::Adambnn
        ) {
            return bad(
                "method",
                format!("{:?} is not implemented yet", self.method).to_lowercase(),
            );
        }
        Ok(())
    }
}

/// One line for a TOML error: the line number, the field (the key on that
/// line, when the message does not already name it) and what is wrong, with
/// Rust type names said in words (`-1` for a count reads "expected an
/// integer >= 0", not "expected usize").
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e
        .message()
        .trim()
        .replace("expected usize", "expected an integer >= 0")
        .replace("expected u64", "expected an integer >= 0")
        .replace("expected f64", "expected a number")
        .replace('\n', "; ");
    let Some(span) = e.span() else {
        return message;
    };
    // Byte positions: the span need not fall on a char boundary of `text`.
    let bytes = text.as_bytes();
    let start = span.start.min(bytes.len());
    let line_start = bytes[..start]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line_end = bytes[start..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |i| start + i);
    let line_no = bytes[..line_start].iter().filter(|&&b| b == b'\n').count() + 1;
    let line = String::from_utf8_lossy(&bytes[line_start..line_end]);
    let key = line.split_once('=').map(|(k, _)| k.trim()).filter(|k| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    });
    match key {
        Some(k) if !message.contains(&format!("`{k}`")) => {
            format!("line {line_no}, field `{k}`: {message}")
        }
        _ => format!("line {line_no}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_unit_reads_from_toml_and_defaults_to_step() {
        let origin = Path::new("s.toml");
        let c = TrainConfig::from_toml_str("schedule_unit = \"epoch\"\n", origin).unwrap();
        assert_eq!(c.schedule_unit, ScheduleUnit::Epoch);
        let c = TrainConfig::from_toml_str("epochs = 3\n", origin).unwrap();
        assert_eq!(c.schedule_unit, ScheduleUnit::Step);
        assert!(parse_err("schedule_unit = \"batch\"\n").contains("schedule_unit"));
    }

    fn parse_err(text: &str) -> String {
        TrainConfig::from_toml_str(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn toml_errors_name_line_and_field_on_one_line() {
        let e = parse_err("epochs = 3\nbatch = -1\n");
        assert_eq!(
            e,
            "config file c.toml: line 2, field `batch`: invalid value: integer `-1`, expected an integer >= 0"
        );
        let e = parse_err("bogus = 1");
        assert!(
            e.starts_with("config file c.toml: line 1: unknown field `bogus`, expected one of"),
            "{e}"
        );
        let e = parse_err("lr = \"fast\"");
        assert!(e.contains("line 1, field `lr`:"), "{e}");
        // Syntax errors, multi-byte text and a span at the very end stay one line.
        for text in [
            "epochs = ",
            "é = 1",
            "model = \"bmlp",
            "[table]\nx = 1",
            "\u{1F600}",
        ] {
            let e = parse_err(text);
            assert!(e.starts_with("config file c.toml: line "), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn unknown_model_name_stays_on_one_line() {
        let c = TrainConfig::from_toml_str("model = \"a\\nb\"", Path::new("c.toml")).unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains(r#"unknown model "a\nb""#) && !e.contains('\n'),
            "{e}"
        );
    }

    #[test]
    fn invalid_values_name_field_and_flag() {
        let c = TrainConfig {
            eval_batch: 0,
            ..TrainConfig::default()
        };
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "config field 'eval_batch' (--eval-batch): must be at least 1, got 0"
        );
    }
}
