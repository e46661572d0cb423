use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::Cli;
use crate::gpu::Gpu;

#[derive(Subcommand, Debug)]
pub enum ReproduceCommand {
    /// Periodic sampling (PSWA, PWALKS, PSWM) vs none, with SGD-momentum and Adam, on bmlp and bcnn.
    Psample(ReproduceArgs),
    /// ReCU on vs off on bcnn and reactnet-s, and a b* sweep {1, 2, 3, 4} on reactnet-s
    /// (--quick: reactnet-s only, 192 images, 2 epochs, b* {1, 2}, one seed).
    Recu(ReproduceArgs),
    /// AdamBNN: Adam vs SGD, two steps vs one, activations vs weights first, negative weight decay, on bmlp and reactnet-s.
    Adambnn(ReproduceArgs),
    /// BinaryDuo (coupled -> decoupled -> fine-tuned) vs a plain BNN of the same cost, on bmlp.
    Binaryduo(ReproduceArgs),
}

#[derive(Args, Debug)]
pub struct ReproduceArgs {
    /// A reduced run of a few minutes (bmlp only, 2000 images, 3 epochs, one seed).
    #[arg(long)]
    quick: bool,
    /// Seeds per configuration.
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Directory for the runs, report.md and the plots.
    #[arg(long)]
    out: PathBuf,
    /// Directory with the Fashion-MNIST IDX files.
    #[arg(long, default_value = crate::data::DEFAULT_FASHION_MNIST_DIR)]
    data: PathBuf,
}

pub fn run(cli: &Cli, cmd: &ReproduceCommand) -> anyhow::Result<()> {
    match cmd {
        ReproduceCommand::Psample(args) => {
            anyhow::ensure!(args.seeds > 0, "--seeds must be at least 1");
            let gpu = Gpu::new(&cli.device_options()?)?;
            let plan = crate::reproduce::psample::Plan::new(args.quick, args.seeds);
            crate::reproduce::psample::reproduce(&gpu, &plan, &args.out, &args.data)
        }
        ReproduceCommand::Recu(args) => {
            anyhow::ensure!(args.seeds > 0, "--seeds must be at least 1");
            let gpu = Gpu::new(&cli.device_options()?)?;
            let plan = crate::reproduce::recu::Plan::new(args.quick, args.seeds);
            crate::reproduce::recu::reproduce(&gpu, &plan, &args.out, &args.data)
        }
        ReproduceCommand::Adambnn(args) => {
            anyhow::ensure!(args.seeds > 0, "--seeds must be at least 1");
            let gpu = Gpu::new(&cli.device_options()?)?;
            let plan = crate::reproduce::adambnn::Plan::new(args.quick, args.seeds);
            crate::reproduce::adambnn::reproduce(&gpu, &plan, &args.out, &args.data)
        }
        ReproduceCommand::Binaryduo(args) => {
            anyhow::ensure!(args.seeds > 0, "--seeds must be at least 1");
            let gpu = Gpu::new(&cli.device_options()?)?;
            let plan = crate::reproduce::binaryduo::Plan::new(args.quick, args.seeds);
            crate::reproduce::binaryduo::reproduce(&gpu, &plan, &args.out, &args.data)
        }
    }
}
