use clap::{Args, Subcommand};

use super::{Cli, print_json};
use crate::gpu::Gpu;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// XNOR-popcount GEMM vs f32 GEMM vs CPU, with the device's popcount and FMA peaks.
    Gemm(GemmArgs),
    /// Training samples/s of a model on synthetic batches, and the share of step time per kernel family.
    Train(TrainArgs),
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Model to train (see `bitprop train --help`).
    #[arg(long, default_value = "bmlp")]
    model: String,
    /// Batch size.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Timed steps after two warm-up steps.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Steps profiled per kernel after the timed ones.
    #[arg(long, default_value_t = 2)]
    profile_steps: usize,
    /// Print the profile of a step per kernel: device time (timestamp
    /// queries where the adapter has them, else wall time per dispatch),
    /// dispatches, bytes of the buffers bound (an upper bound on the bytes
    /// moved) and the rate that makes; the host time per step is always
    /// printed. `--json` always holds the whole profile.
    #[arg(long)]
    profile: bool,
    /// Multiply every hidden layer's width by X (as `bitprop train --width`).
    #[arg(long, default_value_t = 1.0, value_name = "X")]
    width: f64,
    /// Also run the model's real-valued twin (`-f32`) and report the step-time
    /// ratio against the bound its multiply-adds allow.
    #[arg(long)]
    compare_f32: bool,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct GemmArgs {
    /// Rows of A and C.
    #[arg(long, default_value_t = 1024)]
    m: usize,
    /// Rows of B (columns of C).
    #[arg(long, default_value_t = 1024)]
    n: usize,
    /// Shared dimension, in bits for the XNOR GEMM.
    #[arg(long, default_value_t = 1024)]
    k: usize,
    /// Timed repetitions after a warm-up; medians are reported.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(cli: &Cli, cmd: &BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Gemm(args) => {
            anyhow::ensure!(
                args.m > 0 && args.n > 0 && args.k > 0,
                "--m, --n and --k must be positive"
            );
            anyhow::ensure!(args.reps > 0, "--reps must be positive");
            let gpu = Gpu::new(&cli.device_options()?)?;
            // Checked before any host or device allocation: the shapes come
            // straight from the command line and their products may overflow.
            let (m, n, k) = (args.m, args.n, args.k);
            let flags = format!("--m {m} --n {n} --k {k}");
            check_fits(&gpu, &flags, "A", &[m, k])?;
            check_fits(&gpu, &flags, "B", &[n, k])?;
            check_fits(&gpu, &flags, "the output C", &[m, n])?;
            let result = crate::bench::gemm::run(&gpu, args.m, args.n, args.k, args.reps)?;
            eprint!("{}", result.report());
            if args.json {
                print_json(&result)?;
            }
            Ok(())
        }
        BenchCommand::Train(args) => {
            anyhow::ensure!(
                args.batch > 0 && args.steps > 0,
                "--batch and --steps must be positive"
            );
            anyhow::ensure!(
                args.width.is_finite() && args.width > 0.0 && args.width <= 16.0,
                "--width must be in (0, 16], got {}",
                args.width
            );
            let gpu = Gpu::new(&cli.device_options()?)?;
            // The synthetic input batch, the first thing allocated (host and
            // device); every bitprop model takes 1-channel Fashion-MNIST images.
            let (rows, cols) = crate::data::IMAGE_SIZE;
            check_fits(
                &gpu,
                &format!("--batch {}", args.batch),
                "the input batch",
                &[args.batch, 1, rows, cols],
            )?;
            if args.compare_f32 {
                let result = crate::bench::train::compare_f32(
                    &gpu,
                    &args.model,
                    args.batch,
                    args.steps,
                    args.profile_steps,
                    args.width,
                )?;
                eprint!("{}", result.report(args.profile));
                if args.json {
                    print_json(&result)?;
                }
                return Ok(());
            }
            let result = crate::bench::train::run(
                &gpu,
                &args.model,
                args.batch,
                args.steps,
                args.profile_steps,
                args.width,
            )?;
            eprint!("{}", result.report(args.profile));
            if args.json {
                print_json(&result)?;
            }
            Ok(())
        }
    }
}

/// Fails, naming the flags, the tensor, its shape and the adapter's limit,
/// when an f32 tensor of `shape` cannot be one storage buffer on `gpu`.
fn check_fits(gpu: &Gpu, flags: &str, what: &str, shape: &[usize]) -> anyhow::Result<()> {
    let limit = gpu.max_binding_bytes();
    let bytes = shape
        .iter()
        .try_fold(4u64, |acc, &d| acc.checked_mul(d as u64));
    match bytes {
        Some(b) if b <= limit => Ok(()),
        _ => anyhow::bail!(
            "{flags}: {what} of shape {shape:?} (f32) needs {} bytes, more than adapter '{}' allows in one storage buffer ({limit} bytes)",
            bytes.map_or_else(|| "over 2^64".to_string(), |b| b.to_string()),
            gpu.info.name
        ),
    }
}
