use std::path::PathBuf;

use clap::Args;

use super::{Cli, print_json};
use crate::export::{export_checkpoint, summary::summarize};

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A checkpoint of bmlp or bcnn written by `bitprop train`.
    #[arg(long)]
    checkpoint: PathBuf,
    /// The packed model to write (see docs/bpm-format.md).
    #[arg(long)]
    out: PathBuf,
    /// Print `{"out", "bytes", "checkpoint_bytes", "checkpoint_ratio", ...}` on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(_cli: &Cli, args: &ExportArgs) -> anyhow::Result<()> {
    let model = export_checkpoint(&args.checkpoint)?;
    let bytes = model.to_bytes();
    crate::train::files::write_atomic(&args.out, &bytes)?;
    let checkpoint_bytes = std::fs::metadata(&args.checkpoint)?.len();
    let desc = crate::export::describe(&model.name).map_err(anyhow::Error::msg)?;
    let s = summarize(&desc, Some(checkpoint_bytes));
    let flips = model
        .layers
        .iter()
        .map(|l| match l {
            crate::export::format::Layer::Threshold { flip, .. } => {
                flip.iter().filter(|&&f| f).count()
            }
            _ => 0,
        })
        .sum::<usize>();
    eprintln!(
        "wrote {} ({}): {} bytes; the checkpoint {} is {} bytes ({:.2}x), its f32 tensors {} bytes ({:.2}x); {} thresholds flipped (gamma < 0)",
        args.out.display(),
        model.name,
        bytes.len(),
        args.checkpoint.display(),
        checkpoint_bytes,
        checkpoint_bytes as f64 / bytes.len() as f64,
        s.bytes_f32,
        s.bytes_f32 as f64 / bytes.len() as f64,
        flips,
    );
    if args.json {
        print_json(&serde_json::json!({
            "out": args.out,
            "model": model.name,
            "bytes": bytes.len(),
            "checkpoint_bytes": checkpoint_bytes,
            "checkpoint_ratio": checkpoint_bytes as f64 / bytes.len() as f64,
            "f32_bytes": s.bytes_f32,
            "compression_ratio": s.bytes_f32 as f64 / bytes.len() as f64,
            "flipped_thresholds": flips,
        }))?;
    }
    Ok(())
}
