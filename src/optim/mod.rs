//! Optimizers on the fused update kernels, and learning-rate schedules.

use std::collections::HashMap;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::gpu::{Gpu, GpuError};
use crate::nn::{ParamId, ParamKind, ParamStore};
use crate::ops::optim as kernels;
use crate::tensor::{DType, Tensor};

/// Which update rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam with L2 weight decay added to the gradient (PyTorch `Adam`).
    Adam,
    /// Adam with decoupled weight decay (PyTorch `AdamW`).
    Adamw,
    /// SGD with momentum (PyTorch `SGD`).
    Sgd,
}

impl FromStr for OptimizerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "adam" => Ok(OptimizerKind::Adam),
            "adamw" => Ok(OptimizerKind::Adamw),
            "sgd" => Ok(OptimizerKind::Sgd),
            _ => Err(format!(
                "unknown optimizer '{s}': expected adam, adamw or sgd"
            )),
        }
    }
}

/// Which parameters weight decay applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecayScope {
    /// Every trainable tensor (PyTorch's default).
    All,
    /// Hidden conv/linear kernels only: not BN, biases, activations, the classifier.
    Kernels,
}

impl FromStr for DecayScope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" => Ok(DecayScope::All),
            "kernels" => Ok(DecayScope::Kernels),
            _ => Err(format!(
                "unknown decay scope '{s}': expected all or kernels"
            )),
        }
    }
}

/// Learning rate over training.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    Constant,
    /// `lr0 * (1 - t / T)`, reaching 0 at the end (per step; per epoch the
    /// last epoch runs at `lr0 / E`).
    Linear,
    /// `lr0 * (1 + cos(pi t / T)) / 2`.
    Cosine,
}

impl FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "constant" => Ok(Schedule::Constant),
            "linear" => Ok(Schedule::Linear),
            "cosine" => Ok(Schedule::Cosine),
            _ => Err(format!(
                "unknown schedule '{s}': expected constant, linear or cosine"
            )),
        }
    }
}

impl Schedule {
    /// Learning rate at fraction `t` in [0, 1] of training.
    pub fn lr(self, lr0: f64, t: f64) -> f64 {
        let t = t.clamp(0.0, 1.0);
        match self {
            Schedule::Constant => lr0,
            Schedule::Linear => lr0 * (1.0 - t),
            Schedule::Cosine => lr0 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()),
        }
    }
}

/// What a schedule's position counts: optimizer steps (the rate changes
/// every step) or whole epochs (held for an epoch: `lr_e = lr0 * (1 - e/E)`
/// for a linear schedule, as a PyTorch `LambdaLR` stepped once per epoch
/// gives in the AdamBNN and ReActNet code).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleUnit {
    #[default]
    Step,
    Epoch,
}

impl FromStr for ScheduleUnit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "step" => Ok(ScheduleUnit::Step),
            "epoch" => Ok(ScheduleUnit::Epoch),
            _ => Err(format!(
                "unknown schedule unit '{s}': expected step or epoch"
            )),
        }
    }
}

impl ScheduleUnit {
    /// The schedule's position in [0, 1) at optimizer step `step` (from 0)
    /// of a run of `epochs` epochs of `steps_per_epoch` steps.
    pub fn position(self, step: usize, steps_per_epoch: usize, epochs: usize) -> f64 {
        let steps_per_epoch = steps_per_epoch.max(1);
        let epochs = epochs.max(1);
        match self {
            ScheduleUnit::Step => step as f64 / (steps_per_epoch * epochs) as f64,
            ScheduleUnit::Epoch => (step / steps_per_epoch) as f64 / epochs as f64,
        }
    }
}

/// Hyper-parameters of an optimizer.
#[derive(Clone, Copy, Debug)]
pub struct OptimizerConfig {
    pub kind: OptimizerKind,
    pub weight_decay: f64,
    pub decay_scope: DecayScope,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub momentum: f64,
    pub nesterov: bool,
}

impl OptimizerConfig {
    pub fn decays(&self, kind: ParamKind) -> bool {
        match self.decay_scope {
            DecayScope::All => !matches!(kind, ParamKind::Buffer | ParamKind::Scale),
            DecayScope::Kernels => kind == ParamKind::Kernel,
        }
    }
}

/// Optimizer state: moments per parameter, and the step count.
pub struct Optimizer {
    pub config: OptimizerConfig,
    pub step: u64,
    pub state: HashMap<ParamId, Vec<Tensor>>,
    /// Set by a non-finite check on the device; every update reads it and
    /// skips when it is non-zero.
    pub skip: Tensor,
    /// The parameters whose gradients were checked into `skip`, bit i + 1 each.
    pub checked: Vec<ParamId>,
}

impl Optimizer {
    pub fn new(gpu: &Gpu, config: OptimizerConfig) -> Result<Optimizer, GpuError> {
        Ok(Optimizer {
            config,
            step: 0,
            state: HashMap::new(),
            skip: Tensor::zeros(gpu, &[1], DType::U32)?,
            checked: Vec::new(),
        })
    }

    /// One update of every parameter that has a gradient, at learning rate `lr`.
    pub fn update(
        &mut self,
        gpu: &Gpu,
        store: &ParamStore,
        grads: &[(ParamId, Tensor)],
        lr: f64,
    ) -> Result<(), GpuError> {
        self.step += 1;
        let c = self.config;
        for (id, grad) in grads {
            let entry = store.entry(*id);
            let param = &entry.value;
            let wd = if c.decays(entry.kind) {
                c.weight_decay
            } else {
                0.0
            };
            let n_state = match c.kind {
                OptimizerKind::Sgd => 1,
                _ => 2,
            };
            let state = match self.state.get(id) {
                Some(s) => s.clone(),
                None => {
                    let s: Vec<Tensor> = (0..n_state)
                        .map(|_| Tensor::zeros(gpu, param.shape(), DType::F32))
                        .collect::<Result<_, _>>()?;
                    self.state.insert(*id, s.clone());
                    s
                }
            };
            let step = self.step as u32;
            match c.kind {
                OptimizerKind::Adam | OptimizerKind::Adamw => {
                    let cfg = kernels::AdamConfig {
                        lr,
                        beta1: c.beta1,
                        beta2: c.beta2,
                        eps: c.eps,
                        weight_decay: wd,
                    };
                    if c.kind == OptimizerKind::Adam {
                        kernels::adam_step(
                            gpu, param, grad, &state[0], &state[1], &self.skip, &cfg, step,
                        );
                    } else {
                        kernels::adamw_step(
                            gpu, param, grad, &state[0], &state[1], &self.skip, &cfg, step,
                        );
                    }
                }
                OptimizerKind::Sgd => {
                    let cfg = kernels::SgdConfig {
                        lr,
                        momentum: c.momentum,
                        dampening: 0.0,
                        weight_decay: wd,
                        nesterov: c.nesterov,
                    };
                    let buf = (c.momentum != 0.0).then_some(&state[0]);
                    kernels::sgd_step(gpu, param, grad, buf, &self.skip, &cfg, step)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Schedule, ScheduleUnit};

    #[test]
    fn linear_schedule_per_step_and_per_epoch() {
        // 3 epochs of 4 steps.
        let lr = |unit: ScheduleUnit, step| Schedule::Linear.lr(1.0, unit.position(step, 4, 3));
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        // Per step: 1 - step / 12, changing every step.
        assert!(close(lr(ScheduleUnit::Step, 0), 1.0));
        assert!(close(lr(ScheduleUnit::Step, 5), 1.0 - 5.0 / 12.0));
        assert!(close(lr(ScheduleUnit::Step, 11), 1.0 / 12.0));
        // Per epoch: lr0 * (1 - e / E), held through epoch e.
        for step in 0..4 {
            assert!(close(lr(ScheduleUnit::Epoch, step), 1.0));
        }
        for step in 4..8 {
            assert!(close(lr(ScheduleUnit::Epoch, step), 2.0 / 3.0));
        }
        assert!(close(lr(ScheduleUnit::Epoch, 11), 1.0 / 3.0));
        assert_eq!("epoch".parse::<ScheduleUnit>(), Ok(ScheduleUnit::Epoch));
        assert!("epochs".parse::<ScheduleUnit>().is_err());
    }
}
