//! `bitprop reproduce psample`: each periodic-sampling variant against none,
//! with SGD-momentum and with Adam, on `bmlp` and `bcnn`.

use std::fmt::Write;
use std::sync::Arc;

use super::{RunResult, mean_std, plot_test_curves, run};
use crate::gpu::Gpu;
use crate::methods::psample::Sampling;
use crate::optim::OptimizerKind;
use crate::train::TrainConfig;

/// Sizes of a reproduction (stated in the report).
#[derive(Clone, Debug)]
pub struct Plan {
    pub models: Vec<ModelPlan>,
    pub seeds: u64,
    pub batch: usize,
}

/// One model's share of a reproduction.
#[derive(Clone, Debug)]
pub struct ModelPlan {
    pub model: String,
    /// Hidden-width multiplier (`--width`).
    pub width: f64,
    pub train_images: usize,
    pub epochs: usize,
    /// Test images evaluated each epoch (0: all 10,000).
    pub test_images: usize,
}

fn model_plan(
    model: &str,
    width: f64,
    train_images: usize,
    epochs: usize,
    test_images: usize,
) -> ModelPlan {
    ModelPlan {
        model: model.into(),
        width,
        train_images,
        epochs,
        test_images,
    }
}

impl Plan {
    pub fn new(quick: bool, seeds: u64) -> Plan {
        if quick {
            Plan {
                models: vec![model_plan("bmlp", 1.0, 2000, 3, 0)],
                seeds: seeds.min(1),
                batch: 128,
            }
        } else {
            Plan {
                // bcnn trains at ~8 images/s on lavapipe at full width:
                // a quarter of its width, a small slice and 1,000 test
                // images keep its 24 runs within half an hour.
                models: vec![
                    model_plan("bmlp", 1.0, 4000, 6, 0),
                    model_plan("bcnn", 0.25, 1000, 3, 1000),
                ],
                seeds,
                batch: 128,
            }
        }
    }
}

pub fn reproduce(
    gpu: &Arc<Gpu>,
    plan: &Plan,
    out: &std::path::Path,
    data: &std::path::Path,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    let variants: [(&str, Option<Sampling>); 4] = [
        ("none", None),
        ("pswa", Some(Sampling::Pswa)),
        ("pwalks", Some(Sampling::Pwalks)),
        ("pswm", Some(Sampling::Pswm)),
    ];
    let optimizers = [
        ("sgd", OptimizerKind::Sgd, 0.05),
        ("adam", OptimizerKind::Adam, 1e-3),
    ];
    let mut results: Vec<(String, String, &str, Vec<RunResult>)> = Vec::new();
    for mp in &plan.models {
        let model = &mp.model;
        for (opt_name, opt, lr) in optimizers {
            for (variant, sampling) in variants {
                let mut runs = Vec::new();
                for seed in 1..=plan.seeds {
                    let cfg = TrainConfig {
                        model: model.clone(),
                        width: mp.width,
                        limit_test: mp.test_images,
                        epochs: mp.epochs,
                        batch: plan.batch,
                        optimizer: opt,
                        lr,
                        momentum: 0.9,
                        seed,
                        limit_train: mp.train_images,
                        val: Some(0),
                        data: data.to_path_buf(),
                        sampling,
                        out: out.join(format!("{model}-{opt_name}-{variant}-s{seed}")),
                        ..TrainConfig::default()
                    };
                    runs.push(run(gpu, &format!("{model} {opt_name} {variant}"), &cfg)?);
                }
                results.push((model.clone(), opt_name.to_string(), variant, runs));
            }
        }
    }
    let mut md = String::new();
    writeln!(
        md,
        "# Periodic sampling over weights (PSWA, PWALKS, PSWM) on Fashion-MNIST\n"
    )?;
    writeln!(
        md,
        "Written by `bitprop reproduce psample`. Adapter: {}.\n",
        gpu.description()
    )?;
    writeln!(
        md,
        "Sizes: batch {}, {} seed(s); SGD momentum 0.9 lr 0.05, Adam lr 1e-3, linear decay; sampling every tenth of an epoch, replacement each epoch, BN re-estimated on 20 batches.",
        plan.batch, plan.seeds
    )?;
    for mp in &plan.models {
        let test = if mp.test_images == 0 {
            "all 10,000 test images".to_string()
        } else {
            format!("the first {} test images", mp.test_images)
        };
        writeln!(
            md,
            "- `{}` at width x{}: first {} training images, {} epochs, evaluated on {test}.",
            mp.model, mp.width, mp.train_images, mp.epochs
        )?;
    }
    writeln!(
        md,
        "\n| model | optimizer | variant | final test acc (mean ± sd) | volatility (mean abs epoch-to-epoch change) | drops |"
    )?;
    writeln!(md, "| --- | --- | --- | --- | --- | --- |")?;
    for (model, opt, variant, runs) in &results {
        let finals: Vec<f64> = runs.iter().map(|r| r.summary.final_test_acc).collect();
        let vols: Vec<f64> = runs.iter().map(|r| r.summary.volatility).collect();
        let drops: Vec<f64> = runs.iter().map(|r| r.summary.drops as f64).collect();
        let (fm, fs) = mean_std(&finals);
        writeln!(
            md,
            "| {model} | {opt} | {variant} | {fm:.4} ± {fs:.4} | {:.4} | {:.1} |",
            mean_std(&vols).0,
            mean_std(&drops).0
        )?;
    }
    writeln!(
        md,
        "\n## Verdict on \"less volatile, same or better final accuracy\"\n"
    )?;
    for mp in &plan.models {
        let model = &mp.model;
        for (opt_name, _, _) in optimizers {
            let base = results
                .iter()
                .find(|r| &r.0 == model && r.1 == opt_name && r.2 == "none")
                .unwrap();
            let (bf, _) = mean_std(
                &base
                    .3
                    .iter()
                    .map(|r| r.summary.final_test_acc)
                    .collect::<Vec<_>>(),
            );
            let (bv, _) = mean_std(
                &base
                    .3
                    .iter()
                    .map(|r| r.summary.volatility)
                    .collect::<Vec<_>>(),
            );
            for r in results
                .iter()
                .filter(|r| &r.0 == model && r.1 == opt_name && r.2 != "none")
            {
                let (f, _) = mean_std(
                    &r.3.iter()
                        .map(|x| x.summary.final_test_acc)
                        .collect::<Vec<_>>(),
                );
                let (v, _) =
                    mean_std(&r.3.iter().map(|x| x.summary.volatility).collect::<Vec<_>>());
                let holds = v < bv && f >= bf - 0.002;
                writeln!(
                    md,
                    "- {model} / {opt_name} / {}: volatility {v:.4} vs {bv:.4}, final {f:.4} vs {bf:.4}: {}",
                    r.2,
                    if holds { "holds" } else { "does not hold" }
                )?;
            }
            let png = format!("curves-{model}-{opt_name}.png");
            let runs: Vec<&RunResult> = results
                .iter()
                .filter(|r| &r.0 == model && r.1 == opt_name)
                .flat_map(|r| r.3.iter())
                .collect();
            plot_test_curves(
                &out.join(&png),
                &format!("{model}, {opt_name}: test accuracy per epoch"),
                &runs,
            )?;
            writeln!(md, "\n![{model} {opt_name}]({png})\n")?;
        }
    }
    crate::train::files::write_atomic(&out.join("report.md"), md.as_bytes())?;
    eprintln!("report: {}", out.join("report.md").display());
    Ok(())
}
