//! `bitprop reproduce ...`: runs a paper's comparisons on Fashion-MNIST and
//! writes `report.md` with plots. Runs are sized for about an hour on
//! lavapipe; every report states its sizes.

pub mod adambnn;
pub mod binaryduo;
pub mod psample;
pub mod recu;

use std::path::Path;
use std::sync::Arc;

use crate::gpu::Gpu;
use crate::train::rerun::{DirState, run_state, train_or_continue};
use crate::train::{EpochMetrics, Summary, TrainConfig};

/// One finished run.
pub struct RunResult {
    pub label: String,
    pub seed: u64,
    pub summary: Summary,
    pub history: Vec<EpochMetrics>,
}

/// Says on stderr what runs, then trains, continues or reads `cfg` back
/// ([`train_or_continue`]).
pub fn train_logged(gpu: &Arc<Gpu>, label: &str, cfg: &TrainConfig) -> anyhow::Result<Summary> {
    let state = run_state(cfg);
    eprintln!(
        "reproduce: {label} seed {} -> {}{}",
        cfg.seed,
        cfg.out.display(),
        match state {
            DirState::Finished => " (finished before; read)",
            DirState::Interrupted => " (interrupted before; continuing)",
            DirState::Fresh => "",
        }
    );
    train_or_continue(gpu.clone(), cfg, false)
}

/// Trains `cfg` into `dir` (quietly) and reads back its metrics. A run
/// that already finished there with the same configuration is read, not
/// trained again, so an interrupted reproduction continues where it stopped.
pub fn run(gpu: &Arc<Gpu>, label: &str, cfg: &TrainConfig) -> anyhow::Result<RunResult> {
    let summary = train_logged(gpu, label, cfg)?;
    let text = std::fs::read_to_string(cfg.out.join("metrics.jsonl"))?;
    let history = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<Vec<EpochMetrics>, _>>()?;
    Ok(RunResult {
        label: label.to_string(),
        seed: cfg.seed,
        summary,
        history,
    })
}

/// Mean and sample standard deviation.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// Test accuracy per epoch of several runs, one line each, in one PNG.
pub fn plot_test_curves(path: &Path, title: &str, runs: &[&RunResult]) -> anyhow::Result<()> {
    use plotters::prelude::*;
    crate::train::files::register_font();
    let root = BitMapBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let epochs = runs
        .iter()
        .map(|r| r.history.len())
        .max()
        .unwrap_or(1)
        .max(2) as f64;
    let lo = runs
        .iter()
        .flat_map(|r| r.history.iter().map(|m| m.test_acc))
        .fold(1.0f64, f64::min);
    let mut c = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(1f64..epochs, (lo - 0.01).max(0.0)..1f64)?;
    c.configure_mesh()
        .x_desc("epoch")
        .y_desc("test accuracy")
        .draw()?;
    for (i, r) in runs.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64)> = r
            .history
            .iter()
            .map(|m| (m.epoch as f64, m.test_acc))
            .collect();
        c.draw_series(LineSeries::new(pts, color))?
            .label(format!("{} s{}", r.label, r.seed))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    c.configure_series_labels()
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
