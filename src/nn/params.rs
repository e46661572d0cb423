//! Named model tensors: trainable parameters and running statistics.

use crate::gpu::{Gpu, GpuError};
use crate::tensor::Tensor;

/// What a parameter is, which decides e.g. where weight decay applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// Convolution or linear kernel (hidden layers).
    Kernel,
    /// The last linear layer's kernel.
    Classifier,
    /// Batch norm scale and shift.
    Norm,
    /// Linear or conv bias.
    Bias,
    /// Activation parameters (RSign thresholds, RPReLU).
    Activation,
    /// A binary layer's learnable per-output-channel scale (ReCU's alpha);
    /// never weight-decayed.
    Scale,
    /// Not trained: running statistics.
    Buffer,
}

/// Index of a tensor in a [`ParamStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ParamId(pub usize);

pub struct Entry {
    /// PyTorch-style name: `fc1.weight`, `bn1.running_mean`.
    pub name: String,
    pub kind: ParamKind,
    pub value: Tensor,
    /// Whether the forward uses `sign` of this tensor (a binary layer's latent weights).
    pub binary: bool,
}

/// Every tensor a model owns, in checkpoint order.
#[derive(Default)]
pub struct ParamStore {
    pub entries: Vec<Entry>,
    /// The rules the model is built with: layers read them to create the
    /// tensors a rule needs (ReCU's `<layer>.scale`).
    pub bin: crate::nn::quant::Binarization,
    /// ReCU's tau for the next forward passes, set by the method each epoch
    /// (a function of the epoch, so not saved); unset: the schedule's start.
    pub recu_tau: Option<f32>,
}

impl ParamStore {
    pub fn add(
        &mut self,
        gpu: &Gpu,
        name: &str,
        kind: ParamKind,
        shape: &[usize],
        data: &[f32],
    ) -> Result<ParamId, GpuError> {
        assert!(
            self.entries.iter().all(|e| e.name != name),
            "duplicate tensor name {name}"
        );
        self.entries.push(Entry {
            name: name.to_string(),
            kind,
            value: Tensor::from_f32(gpu, shape, data)?,
            binary: false,
        });
        Ok(ParamId(self.entries.len() - 1))
    }

    /// Marks a tensor as a binary layer's latent weights.
    pub fn mark_binary(&mut self, id: ParamId) {
        self.entries[id.0].binary = true;
    }

    /// The binary layers' latent weights, in checkpoint order.
    pub fn binary_weights(&self) -> Vec<ParamId> {
        (0..self.entries.len())
            .map(ParamId)
            .filter(|p| self.entries[p.0].binary)
            .collect()
    }

    pub fn get(&self, id: ParamId) -> &Tensor {
        &self.entries[id.0].value
    }

    pub fn entry(&self, id: ParamId) -> &Entry {
        &self.entries[id.0]
    }

    /// Trainable parameters (everything but buffers).
    pub fn trainable(&self) -> impl Iterator<Item = (ParamId, &Entry)> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.kind != ParamKind::Buffer)
            .map(|(i, e)| (ParamId(i), e))
    }

    pub fn find(&self, name: &str) -> Option<ParamId> {
        self.entries
            .iter()
            .position(|e| e.name == name)
            .map(ParamId)
    }

    /// Number of scalars in trainable parameters.
    pub fn count(&self) -> usize {
        self.trainable().map(|(_, e)| e.value.numel()).sum()
    }
}
