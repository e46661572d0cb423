//! `bitprop reproduce recu`: ReCU on vs off on `bcnn` and `reactnet-s`
//! ("off": the same network and schedule with the plain binarization), and a
//! b* sweep {1, 2, 3, 4}; the dead-weight ratio per epoch against 2(1 - tau).

use std::fmt::Write;
use std::path::Path;
use std::sync::Arc;

use super::{RunResult, mean_std, plot_test_curves, run};
use crate::gpu::Gpu;
use crate::train::TrainConfig;
use crate::train::config::MethodKind;

/// Sizes of a reproduction (stated in the report).
#[derive(Clone, Debug)]
pub struct Plan {
    /// (model, training images, epochs) of the on-vs-off comparison.
    pub models: Vec<(String, usize, usize)>,
    /// The model the b* sweep runs on (one of `models`).
    pub sweep_model: String,
    pub b_stars: Vec<f64>,
    pub seeds: u64,
    pub batch: usize,
    /// Test images evaluated after every epoch (the first ones of the test set).
    pub test_images: usize,
}

impl Plan {
    pub fn new(quick: bool, seeds: u64) -> Plan {
        if quick {
            Plan {
                models: vec![("reactnet-s".into(), 192, 2)],
                sweep_model: "reactnet-s".into(),
                b_stars: vec![1.0, 2.0],
                seeds: seeds.min(1),
                batch: 32,
                test_images: 200,
            }
        } else {
            Plan {
                // Measured on lavapipe with other jobs on the two cores: about
                // 6-8 training samples/s for both models and 50 evaluated
                // images/s; 21 runs of this size take about an hour.
                models: vec![("bcnn".into(), 512, 2), ("reactnet-s".into(), 512, 2)],
                sweep_model: "reactnet-s".into(),
                b_stars: vec![1.0, 2.0, 3.0, 4.0],
                seeds,
                batch: 32,
                test_images: 1000,
            }
        }
    }
}

/// Mean over layers of a per-layer metric object in one epoch's line.
fn layer_mean(m: &crate::train::EpochMetrics, key: &str) -> Option<f64> {
    let obj = m.method.get(key)?.as_object()?;
    let v: Vec<f64> = obj.values().filter_map(|v| v.as_f64()).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

fn finals(runs: &[RunResult]) -> (f64, f64) {
    mean_std(
        &runs
            .iter()
            .map(|r| r.summary.final_test_acc)
            .collect::<Vec<_>>(),
    )
}

/// Dead-weight ratio per epoch (mean over layers) of ReCU runs, against 2(1 - tau).
fn plot_dead_weights(path: &Path, title: &str, runs: &[&RunResult]) -> anyhow::Result<()> {
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
    let hi = runs
        .iter()
        .flat_map(|r| r.history.iter())
        .flat_map(|m| {
            [
                layer_mean(m, "dead_weight_ratio"),
                layer_mean(m, "dead_weight_expected"),
            ]
        })
        .flatten()
        .fold(0.05f64, f64::max);
    let mut c = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(1f64..epochs, 0f64..hi * 1.1)?;
    c.configure_mesh()
        .x_desc("epoch")
        .y_desc("dead-weight ratio (mean over binary layers)")
        .draw()?;
    for (i, r) in runs.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64)> = r
            .history
            .iter()
            .filter_map(|m| Some((m.epoch as f64, layer_mean(m, "dead_weight_ratio")?)))
            .collect();
        c.draw_series(LineSeries::new(pts, color))?
            .label(format!("{} s{}", r.label, r.seed))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    if let Some(r) = runs.first() {
        let pts: Vec<(f64, f64)> = r
            .history
            .iter()
            .filter_map(|m| Some((m.epoch as f64, layer_mean(m, "dead_weight_expected")?)))
            .collect();
        c.draw_series(LineSeries::new(pts, BLACK.stroke_width(2)))?
            .label("2(1 - tau)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    }
    c.configure_series_labels()
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

pub fn reproduce(gpu: &Arc<Gpu>, plan: &Plan, out: &Path, data: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    let config = |model: &str, images: usize, epochs: usize, recu: Option<f64>, seed: u64| {
        let tag = recu.map_or("off".to_string(), |b| format!("recu-b{b}"));
        TrainConfig {
            model: model.into(),
            epochs,
            batch: plan.batch,
            seed,
            // SGD, not Adam: b* only rescales the latent weights' gradient
            // (sign(w2) and the clamp mask do not depend on it), which Adam
            // normalizes away, so under Adam every b* trains the same network.
            optimizer: crate::optim::OptimizerKind::Sgd,
            lr: 0.05,
            momentum: 0.9,
            limit_train: images,
            // Evaluating all 10,000 test images every epoch would cost more
            // than the training on lavapipe.
            limit_test: plan.test_images,
            val: Some(0),
            data: data.to_path_buf(),
            method: if recu.is_some() {
                MethodKind::Recu
            } else {
                MethodKind::Plain
            },
            recu_b_star: recu.unwrap_or(2.0),
            out: out.join(format!("{model}-{tag}-s{seed}")),
            ..TrainConfig::default()
        }
    };
    // (model, label, b*, runs); label "off" or "on" (b* = 2) or "b*=B".
    let mut results: Vec<(String, String, Option<f64>, Vec<RunResult>)> = Vec::new();
    for (model, images, epochs) in &plan.models {
        let mut variants: Vec<(String, Option<f64>)> =
            vec![("off".into(), None), ("on".into(), Some(2.0))];
        if *model == plan.sweep_model {
            variants.extend(
                plan.b_stars
                    .iter()
                    .filter(|b| **b != 2.0)
                    .map(|b| (format!("on, b*={b}"), Some(*b))),
            );
        }
        for (label, recu) in variants {
            let mut runs = Vec::new();
            for seed in 1..=plan.seeds {
                let cfg = config(model, *images, *epochs, recu, seed);
                runs.push(run(gpu, &format!("{model} {label}"), &cfg)?);
            }
            results.push((model.clone(), label, recu, runs));
        }
    }

    let mut md = String::new();
    writeln!(md, "# ReCU on vs off on Fashion-MNIST\n")?;
    writeln!(
        md,
        "Written by `bitprop reproduce recu`. Adapter: {}.\n",
        gpu.description()
    )?;
    writeln!(
        md,
        "Sizes: batch {}, {} seed(s) per row, SGD momentum 0.9, lr 0.05 with linear decay, no weight decay, no validation split; the final epoch's test accuracy on the first {} test images is reported (all 10,000 would take longer than the training). \
         \"on\": `--method recu` (b* = 2 unless stated, tau 0.85 -> 0.99 by ReCU's exponential schedule, learnable per-channel scale, activations divided by the per-sample std in training); \
         \"off\": the same network and schedule with the plain rules (mean-abs scale, clipped STE).",
        plan.batch, plan.seeds, plan.test_images
    )?;
    for (model, images, epochs) in &plan.models {
        writeln!(
            md,
            "- `{model}`: first {images} training images, {epochs} epochs."
        )?;
    }
    let e = plan.models.iter().map(|m| m.2).max().unwrap_or(1);
    let last_tau = crate::methods::recu::recu_tau(e - 1, e, 0.85, 0.99);
    writeln!(
        md,
        "\nThese runs are far shorter than the paper's (CIFAR-10, hundreds of epochs): in {e} epochs tau goes from 0.85 only to {last_tau:.3}, so they test ReCU's early-training effect on small data, not its final accuracy.\n"
    )?;
    writeln!(
        md,
        "Why SGD: b* scales w1 and Q alike, so sign(w2) and the clamp mask do not depend on it; it only multiplies the latent weights' gradient by b*. Adam normalizes that away (b* = 1 and 2 gave identical runs under Adam), so the sweep can only show an effect under SGD, whose effective step size b* changes.\n"
    )?;
    writeln!(
        md,
        "| model | variant | final test acc (mean ± sd) | seeds | last-epoch dead-weight ratio (mean over layers) | 2(1 - tau) |"
    )?;
    writeln!(md, "| --- | --- | --- | --- | --- | --- |")?;
    for (model, label, _, runs) in &results {
        let (m, s) = finals(runs);
        let last = |key| {
            let v: Vec<f64> = runs
                .iter()
                .filter_map(|r| r.history.last().and_then(|h| layer_mean(h, key)))
                .collect();
            if v.is_empty() {
                "-".into()
            } else {
                format!("{:.4}", mean_std(&v).0)
            }
        };
        writeln!(
            md,
            "| {model} | {label} | {m:.4} ± {s:.4} | {} | {} | {} |",
            runs.len(),
            last("dead_weight_ratio"),
            last("dead_weight_expected")
        )?;
    }

    writeln!(md, "\n## Verdicts\n")?;
    for (model, ..) in &plan.models {
        let get = |label: &str| {
            results
                .iter()
                .find(|r| &r.0 == model && r.1 == label)
                .map(|r| finals(&r.3))
        };
        let (Some((on, on_sd)), Some((off, off_sd))) = (get("on"), get("off")) else {
            continue;
        };
        let diff = on - off;
        let noise = on_sd.max(off_sd);
        let verdict = if plan.seeds < 2 {
            "one seed: no spread to judge against"
        } else if diff > noise {
            "on beats off by more than the seed spread"
        } else if diff < -noise {
            "off beats on by more than the seed spread"
        } else {
            "the difference is within the seed spread: not shown"
        };
        writeln!(
            md,
            "- \"ReCU on beats off\" on {model}: {on:.4} vs {off:.4} ({:+.2} points; largest sd {:.2} points): {verdict}.",
            100.0 * diff,
            100.0 * noise
        )?;
    }
    let sweep: Vec<(f64, f64, f64)> = results
        .iter()
        .filter(|r| r.0 == plan.sweep_model && r.2.is_some())
        .map(|r| {
            let (m, s) = finals(&r.3);
            (r.2.unwrap(), m, s)
        })
        .collect();
    if let Some(best) = sweep
        .iter()
        .cloned()
        .reduce(|a, b| if b.1 > a.1 { b } else { a })
    {
        let two = sweep.iter().find(|s| s.0 == 2.0);
        let line = sweep
            .iter()
            .map(|(b, m, s)| format!("b*={b}: {m:.4} ± {s:.4}"))
            .collect::<Vec<_>>()
            .join(", ");
        let tied = sweep.iter().all(|s| (s.1 - best.1).abs() < 1e-9);
        let verdict = match two {
            _ if tied => "every b* gave the same accuracy: no b* is best here".to_string(),
            Some(t) if best.0 == 2.0 => {
                let runner = sweep
                    .iter()
                    .filter(|s| s.0 != 2.0)
                    .map(|s| s.1)
                    .fold(f64::MIN, f64::max);
                if plan.seeds >= 2 && t.1 - runner > t.2 {
                    "b* = 2 is best by more than its seed spread".to_string()
                } else {
                    "b* = 2 has the highest mean, but within the seed spread of the next"
                        .to_string()
                }
            }
            _ => format!(
                "b* = {} has the highest mean; b* = 2 is not best here",
                best.0
            ),
        };
        writeln!(
            md,
            "- \"b* = 2 is best\" on {}: {line}: {verdict}.",
            plan.sweep_model
        )?;
    }

    writeln!(md, "\n## Plots\n")?;
    for (model, ..) in &plan.models {
        let png = format!("accuracy-{model}.png");
        let runs: Vec<&RunResult> = results
            .iter()
            .filter(|r| &r.0 == model && (r.1 == "on" || r.1 == "off"))
            .flat_map(|r| r.3.iter())
            .collect();
        plot_test_curves(
            &out.join(&png),
            &format!("{model}: test accuracy per epoch, ReCU on vs off"),
            &runs,
        )?;
        writeln!(md, "![{model} accuracy]({png})\n")?;
        let png = format!("dead-weights-{model}.png");
        let runs: Vec<&RunResult> = results
            .iter()
            .filter(|r| &r.0 == model && r.2.is_some())
            .flat_map(|r| r.3.iter())
            .collect();
        plot_dead_weights(
            &out.join(&png),
            &format!("{model}: dead-weight ratio per epoch vs 2(1 - tau)"),
            &runs,
        )?;
        writeln!(md, "![{model} dead weights]({png})\n")?;
    }
    crate::train::files::write_atomic(&out.join("report.md"), md.as_bytes())?;
    eprintln!("report: {}", out.join("report.md").display());
    Ok(())
}
