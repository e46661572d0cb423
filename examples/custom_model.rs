//! A model of your own: implement `Model` with the layers and ops bitprop
//! provides, then train it with `train_step`. Here a binary MLP with a
//! real-valued shortcut around its hidden layer:
//! `cargo run --release --example custom_model`.

use bitprop::autograd::{Var, ops};
use bitprop::data::rng::SplitMix64;
use bitprop::data::{Batch, Batches, DEFAULT_FASHION_MNIST_DIR, load_fashion_mnist};
use bitprop::gpu::{Gpu, GpuError};
use bitprop::nn::layers::{BatchNorm, Linear};
use bitprop::nn::{Ctx, Model, ParamKind, ParamStore};
use bitprop::optim::{DecayScope, Optimizer, OptimizerConfig, OptimizerKind};
use bitprop::train::{evaluate, train_step, upload};

/// 784 -> 512 (binary weights) -> BN -> sign -> 512 -> 512 (binary) -> BN,
/// plus the block's input, -> sign -> 10 (binary) -> BN.
struct ResidualBmlp {
    store: ParamStore,
    fc1: Linear,
    bn1: BatchNorm,
    fc2: Linear,
    bn2: BatchNorm,
    fc3: Linear,
    bn3: BatchNorm,
}

impl ResidualBmlp {
    fn new(gpu: &Gpu) -> Result<Self, GpuError> {
        let mut s = ParamStore::default();
        let mut rng = SplitMix64::new(7);
        Ok(ResidualBmlp {
            fc1: Linear::new(
                gpu,
                &mut s,
                &mut rng,
                "fc1",
                784,
                512,
                true,
                ParamKind::Kernel,
            )?,
            bn1: BatchNorm::new(gpu, &mut s, "bn1", 512)?,
            fc2: Linear::new(
                gpu,
                &mut s,
                &mut rng,
                "fc2",
                512,
                512,
                true,
                ParamKind::Kernel,
            )?,
            bn2: BatchNorm::new(gpu, &mut s, "bn2", 512)?,
            fc3: Linear::new(
                gpu,
                &mut s,
                &mut rng,
                "fc3",
                512,
                10,
                true,
                ParamKind::Classifier,
            )?,
            bn3: BatchNorm::new(gpu, &mut s, "bn3", 10)?,
            store: s,
        })
    }
}

impl Model for ResidualBmlp {
    fn name(&self) -> &str {
        "residual-bmlp"
    }
    fn store(&self) -> &ParamStore {
        &self.store
    }
    fn store_mut(&mut self) -> &mut ParamStore {
        &mut self.store
    }
    fn input_shape(&self) -> Vec<usize> {
        vec![784]
    }
    fn forward(&self, ctx: &mut Ctx, x: Var) -> Result<Var, GpuError> {
        let h = self.fc1.forward(ctx, x)?;
        let h = self.bn1.forward(ctx, h)?;
        let s = ops::sign_ste(ctx.tape, h)?;
        let r = self.fc2.forward(ctx, s)?;
        let r = self.bn2.forward(ctx, r)?;
        let h = ops::add(ctx.tape, r, h)?;
        let s = ops::sign_ste(ctx.tape, h)?;
        let y = self.fc3.forward(ctx, s)?;
        self.bn3.forward(ctx, y)
    }
}

fn main() -> anyhow::Result<()> {
    let gpu = Gpu::from_env()?;
    let (train, test) = load_fashion_mnist(DEFAULT_FASHION_MNIST_DIR.as_ref())?;
    let train = train.limit(10_000);
    let model = ResidualBmlp::new(&gpu)?;
    let config = OptimizerConfig {
        kind: OptimizerKind::Adam,
        weight_decay: 0.0,
        decay_scope: DecayScope::Kernels,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        momentum: 0.0,
        nesterov: false,
    };
    let mut opt = Optimizer::new(&gpu, config)?;
    let mut b = Batch::default();
    let mut batches = Batches::new(&train, 128, Some(1), 0)?;
    while batches.next_into(&mut b) {
        let (x, labels) = upload(&gpu, &b, &model.input_shape())?;
        train_step(&gpu, &model, &mut opt, x, &labels, 1e-3)?;
        gpu.flush();
    }
    let e = evaluate(&gpu, &model, &test, 1000)?;
    println!(
        "{} after one epoch on 10,000 images: test accuracy {:.4}",
        model.name(),
        e.acc
    );
    Ok(())
}
