use std::path::PathBuf;

use clap::{ArgGroup, Args};

use super::{Cli, print_json};
use crate::export::{describe, read_checkpoint, summary::summarize};

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("source").required(true).args(["model", "checkpoint"])))]
pub struct SummaryArgs {
    /// A model name (bmlp, bcnn, reactnet-s or a -f32 twin).
    #[arg(long)]
    model: Option<String>,
    /// A checkpoint written by `bitprop train` (its tensors are checked against the model).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(_cli: &Cli, args: &SummaryArgs) -> anyhow::Result<()> {
    let (desc, checkpoint_bytes) = match (&args.model, &args.checkpoint) {
        (Some(name), None) => (describe(name).map_err(anyhow::Error::msg)?, None),
        (None, Some(path)) => {
            let (desc, _) = read_checkpoint(path)?;
            (desc, Some(std::fs::metadata(path)?.len()))
        }
        _ => anyhow::bail!("give exactly one of --model and --checkpoint"),
    };
    let s = summarize(&desc, checkpoint_bytes);
    eprint!("{}: per-layer summary\n{}", s.model, s.table());
    if args.json {
        print_json(&s)?;
    }
    Ok(())
}
