//! Deployable 1-bit models: a per-layer summary, export of a float
//! checkpoint to the packed `.bpm` format (`docs/bpm-format.md`), and
//! runtimes that run the packed model on the CPU (integer XNOR-popcount) and
//! on the GPU (the training kernels), agreeing bit for bit.
//!
//! The packed model computes in integers wherever its inputs allow: the
//! first layer takes pixels as the integers `2p - 255` (the float model's
//! `x = p / 127.5 - 1` is `(2p - 255) / 255`), binary layers produce
//! XNOR-popcount integers, max pooling compares integers, and batch norm +
//! sign becomes an integer threshold per channel. Only the last layer's
//! logits are real, computed by one fixed f32 expression.

pub mod cpu;
pub mod fold;
pub mod format;
pub mod gpu;
pub mod plan;
pub mod summary;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

pub use cpu::{CpuModel, Outputs};
pub use format::{BpmError, BpmModel};
pub use gpu::GpuModel;
pub use plan::{Description, describe};

use crate::autograd::Tape;
use crate::data::Dataset;
use crate::gpu::Gpu;
use crate::nn::{Ctx, Model};

/// A checkpoint's model name and tensors, checked strictly against the
/// model's description (every tensor with its shape, nothing else).
pub fn read_checkpoint(path: &Path) -> anyhow::Result<(Description, BTreeMap<String, Vec<f32>>)> {
    let mut ck = crate::checkpoint::load(path)?;
    let name = ck.metadata.get("model").cloned().ok_or_else(|| {
        anyhow::anyhow!(
            "checkpoint {}: metadata has no 'model' entry (not written by bitprop train?)",
            path.display()
        )
    })?;
    let bin = crate::nn::Binarization::from_metadata(&ck.metadata)
        .map_err(|e| anyhow::anyhow!("checkpoint {}: {e}", path.display()))?;
    anyhow::ensure!(
        bin.is_default(),
        "checkpoint {}: export supports the plain binarization rules only; this model was trained with {bin:?}",
        path.display()
    );
    let width = crate::nn::width_from_metadata(&ck.metadata)
        .map_err(|e| anyhow::anyhow!("checkpoint {}: {e}", path.display()))?;
    anyhow::ensure!(
        width == 1.0,
        "checkpoint {}: export supports the models at their listed widths only; this one has width {width}",
        path.display()
    );
    let desc =
        describe(&name).map_err(|e| anyhow::anyhow!("checkpoint {}: {e}", path.display()))?;
    let expected = desc.tensors();
    let values = ck.take_strict(&expected)?;
    let tensors = expected.into_iter().map(|(n, _)| n).zip(values).collect();
    Ok((desc, tensors))
}

/// Exports the checkpoint at `path` as a packed model.
pub fn export_checkpoint(path: &Path) -> anyhow::Result<BpmModel> {
    let (desc, tensors) = read_checkpoint(path)?;
    let model = fold::export_model(&desc, &tensors)
        .with_context(|| format!("cannot export {}", path.display()))?;
    debug_assert_eq!(Some(model.to_bytes().len() as u64), desc.file_bytes());
    Ok(model)
}

/// Reads and validates a `.bpm` file; errors name the file and the problem.
pub fn read_bpm(path: &Path) -> anyhow::Result<BpmModel> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    BpmModel::from_bytes(&bytes).with_context(|| format!("{}", path.display()))
}

/// The float model's eval-mode predictions (first maximum logit) on `ds`,
/// in batches of `batch`: what `bitprop eval` scores.
pub fn float_predictions(
    gpu: &Arc<Gpu>,
    model: &dyn Model,
    ds: &Dataset,
    batch: usize,
) -> anyhow::Result<Vec<u32>> {
    let mut pending = Vec::new();
    let mut batches = crate::data::batch::Batches::new(ds, batch, None, 0)?;
    let mut b = crate::data::batch::Batch::default();
    while batches.next_into(&mut b) {
        let (x, _) = crate::train::upload(gpu, &b, &model.input_shape())?;
        let mut tape = Tape::new(gpu.clone());
        let mut ctx = Ctx::for_model(&mut tape, model, false);
        let xv = ctx.tape.leaf(x, false);
        let logits = model.forward(&mut ctx, xv)?;
        let preds = crate::ops::reduce::argmax_rows(gpu, tape.value(logits))?;
        pending.push((gpu.read_async(preds.buffer(), (b.size * 4) as u64), b.size));
    }
    gpu.flush();
    let mut out = Vec::with_capacity(ds.n);
    for (r, size) in pending {
        let bytes = r.wait(gpu)?;
        out.extend_from_slice(&bytemuck::pod_collect_to_vec::<u8, u32>(&bytes[..size * 4]));
    }
    Ok(out)
}
