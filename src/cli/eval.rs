use std::path::PathBuf;

use clap::Args;

use super::{Cli, print_json};
use crate::gpu::Gpu;
use crate::nn::build_model_sized;

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A model checkpoint written by `bitprop train` (the model is read from its metadata).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Directory with the Fashion-MNIST IDX files.
    #[arg(long, default_value = crate::data::DEFAULT_FASHION_MNIST_DIR)]
    data: PathBuf,
    /// Evaluation batch size (smaller batches are used where its activations
    /// do not fit the adapter's storage bindings; the result is the same).
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Print `{"test_loss": .., "test_acc": ..}` on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(cli: &Cli, args: &EvalArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.batch > 0, "--batch must be positive");
    let ck = crate::checkpoint::load(&args.checkpoint)?;
    let name = ck.metadata.get("model").ok_or_else(|| {
        anyhow::anyhow!(
            "checkpoint {}: metadata has no 'model' entry (not written by bitprop train?)",
            args.checkpoint.display()
        )
    })?;
    let gpu = Gpu::new(&cli.device_options()?)?;
    let bin = crate::nn::Binarization::from_metadata(&ck.metadata)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.checkpoint.display()))?;
    let width = crate::nn::width_from_metadata(&ck.metadata)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.checkpoint.display()))?;
    let mut model = build_model_sized(&gpu, name, 0, bin, width)?;
    crate::train::files::load_model(&gpu, model.store_mut(), &args.checkpoint)?;
    model.store_mut().recu_tau = ck.metadata.get("recu_tau").and_then(|t| t.parse().ok());
    let (_, test) = crate::data::load_fashion_mnist(&args.data)?;
    let e = crate::train::evaluate(&gpu, model.as_ref(), &test, args.batch)?;
    if e.batch < args.batch {
        eprintln!(
            "note: a batch of {} needs more than one storage binding of this adapter holds; evaluated in batches of {}",
            args.batch, e.batch
        );
    }
    eprintln!(
        "{}: test loss {:.4}, test accuracy {:.4} ({} images)",
        args.checkpoint.display(),
        e.loss,
        e.acc,
        test.n
    );
    if args.json {
        print_json(&serde_json::json!({ "test_loss": e.loss, "test_acc": e.acc }))?;
    }
    Ok(())
}
