//! The command line: each command parses its flags and calls the library.

mod bench;
mod devices;
mod eval;
mod export;
mod infer;
mod reproduce;
mod summary;
mod train;

use clap::{Parser, Subcommand};

use crate::gpu::{BackendChoice, DeviceOptions};

#[derive(Parser, Debug)]
#[command(
    name = "bitprop",
    version,
    about = "Train binary neural networks (1-bit weights and activations) on any GPU through wgpu",
    long_about = "bitprop trains binary neural networks with packed-bit XNOR-popcount kernels \
                  written in WGSL, on any adapter wgpu reaches (Vulkan, Metal, DX12, GL), \
                  including Mesa's software Vulkan driver lavapipe when there is no GPU.\n\n\
                  With --json a command prints one JSON object on stdout and nothing else there; \
                  human output goes to stderr."
)]
pub struct Cli {
    /// Backend to use: auto, vulkan, metal, dx12 or gl (auto prefers a discrete GPU,
    /// then integrated, then a CPU adapter such as lavapipe).
    #[arg(long, global = true, env = "BITPROP_BACKEND", default_value = "auto")]
    pub backend: String,
    /// Use the adapter whose name contains this (case-insensitive).
    #[arg(long, global = true, env = "BITPROP_ADAPTER")]
    pub adapter: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List every adapter wgpu finds, with the limits that matter for compute.
    Devices(devices::DevicesArgs),
    /// Train a model on Fashion-MNIST; writes metrics, checkpoints, summary and curves.
    Train(Box<train::TrainArgs>),
    /// Test loss and accuracy of a checkpoint.
    Eval(eval::EvalArgs),
    /// Per-layer parameters, memory (f32 vs deployed .bpm) and MACs of a model.
    Summary(summary::SummaryArgs),
    /// Pack a bmlp or bcnn checkpoint into a .bpm file (docs/bpm-format.md).
    Export(export::ExportArgs),
    /// Run a .bpm model on the test set (CPU or GPU): accuracy, images/s, latency.
    Infer(infer::InferArgs),
    /// Run a paper's comparisons on Fashion-MNIST; writes report.md and plots.
    #[command(subcommand)]
    Reproduce(reproduce::ReproduceCommand),
    /// Benchmarks that print ratios measured side by side in one run.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

impl Cli {
    pub fn device_options(&self) -> anyhow::Result<DeviceOptions> {
        let backend: BackendChoice = self.backend.parse()?;
        // Say so up front rather than "no adapter found" plus driver advice
        // that cannot help: these APIs do not exist on this platform.
        let missing_api = match backend {
            BackendChoice::Metal => !cfg!(target_vendor = "apple"),
            BackendChoice::Dx12 => !cfg!(windows),
            _ => false,
        };
        anyhow::ensure!(
            !missing_api,
            "--backend {}: {} is not available on {} (use auto, vulkan or gl)",
            backend.name(),
            if backend == BackendChoice::Metal {
                "Metal (macOS and iOS only)"
            } else {
                "DirectX 12 (Windows only)"
            },
            std::env::consts::OS
        );
        Ok(DeviceOptions {
            backend,
            adapter: self.adapter.clone().filter(|s| !s.is_empty()),
        })
    }
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Devices(args) => devices::run(&cli, args),
        Command::Bench(cmd) => bench::run(&cli, cmd),
        Command::Train(args) => train::run(&cli, args),
        Command::Eval(args) => eval::run(&cli, args),
        Command::Summary(args) => summary::run(&cli, args),
        Command::Export(args) => export::run(&cli, args),
        Command::Infer(args) => infer::run(&cli, args),
        Command::Reproduce(cmd) => reproduce::run(&cli, cmd),
    }
}

/// Prints `value` as the one JSON object on stdout.
pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
