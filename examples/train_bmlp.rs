//! Trains the binary MLP on Fashion-MNIST with the library API:
//! `cargo run --release --example train_bmlp [EPOCHS]`.

use bitprop::Gpu;
use bitprop::data::{Batch, Batches, DEFAULT_FASHION_MNIST_DIR, load_fashion_mnist};
use bitprop::nn::build_model;
use bitprop::optim::{DecayScope, Optimizer, OptimizerConfig, OptimizerKind, Schedule};
use bitprop::train::{evaluate, train_step, upload};

fn main() -> anyhow::Result<()> {
    let epochs: usize = std::env::args().nth(1).map_or(Ok(2), |s| s.parse())?;
    let gpu = Gpu::from_env()?;
    eprintln!("device: {}", gpu.description());
    let (train, test) = load_fashion_mnist(DEFAULT_FASHION_MNIST_DIR.as_ref())?;
    let model = build_model(&gpu, "bmlp", 0)?;
    let mut opt = Optimizer::new(
        &gpu,
        OptimizerConfig {
            kind: OptimizerKind::Adam,
            weight_decay: 0.0,
            decay_scope: DecayScope::All,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            momentum: 0.0,
            nesterov: false,
        },
    )?;
    let (batch, lr0) = (256, 1e-3);
    let total = (train.n.div_ceil(batch) * epochs) as f64;
    let mut step = 0;
    for epoch in 0..epochs {
        let mut batches = Batches::new(&train, batch, Some(0), epoch as u64)?;
        let mut b = Batch::default();
        while batches.next_into(&mut b) {
            let (x, labels) = upload(&gpu, &b, &model.input_shape())?;
            let lr = Schedule::Linear.lr(lr0, step as f64 / total);
            // Forward on XNOR-popcount kernels, backward on the tape, fused Adam.
            train_step(&gpu, model.as_ref(), &mut opt, x, &labels, lr)?;
            gpu.flush();
            step += 1;
        }
        let e = evaluate(&gpu, model.as_ref(), &test, 1000)?;
        println!(
            "epoch {}: test loss {:.4}, test accuracy {:.4}",
            epoch + 1,
            e.loss,
            e.acc
        );
    }
    Ok(())
}
