//! Training methods plug into the loop through [`Method`]'s hooks, rather
//! than branches in the loop.

pub mod adambnn;
pub mod duo;
pub mod probe;
pub mod psample;
pub mod recu;

use crate::data::Dataset;
use crate::gpu::Gpu;
use crate::nn::Model;
use crate::optim::Optimizer;

/// What a hook may touch.
pub struct MethodCtx<'a> {
    pub gpu: &'a std::sync::Arc<Gpu>,
    pub model: &'a mut dyn Model,
    pub opt: &'a mut Optimizer,
    pub train_set: &'a Dataset,
    pub batch: usize,
    /// The epoch being trained (1-based).
    pub epoch: usize,
    pub steps_per_epoch: usize,
}

/// What a method carries across a resume: f32 tensors and integers, each
/// named (the names are the method's own).
#[derive(Default)]
pub struct MethodState {
    pub tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
    pub ints: Vec<(String, i64)>,
}

/// A training strategy's hooks; every hook defaults to doing nothing.
pub trait Method {
    fn name(&self) -> &str;
    /// At the start of every epoch (also of a resumed one), before its first step.
    fn before_epoch(&mut self, _ctx: &mut MethodCtx) -> anyhow::Result<()> {
        Ok(())
    }
    /// After every optimizer update (`step` counts the run's steps from 1).
    fn after_step(&mut self, _ctx: &mut MethodCtx, _step: usize) -> anyhow::Result<()> {
        Ok(())
    }
    /// At the end of every epoch, before evaluation.
    fn end_of_epoch(&mut self, _ctx: &mut MethodCtx) -> anyhow::Result<()> {
        Ok(())
    }
    /// Keys this method adds to the epoch's line of metrics.jsonl.
    fn epoch_metrics(&mut self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::Map::new()
    }
    /// Its state at a step boundary, for `resume.safetensors`.
    fn save_state(&self, _gpu: &crate::gpu::Gpu) -> anyhow::Result<MethodState> {
        Ok(MethodState::default())
    }
    /// Takes back what [`save_state`](Self::save_state) wrote.
    fn restore_state(
        &mut self,
        _gpu: &crate::gpu::Gpu,
        _model: &dyn Model,
        _state: MethodState,
    ) -> anyhow::Result<()> {
        Ok(())
    }
}

/// The plain loop: no hooks.
pub struct Plain;

impl Method for Plain {
    fn name(&self) -> &str {
        "plain"
    }
}
