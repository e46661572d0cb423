//! `bitprop reproduce adambnn`: AdamBNN's comparisons (METHODS.md,
//! section 1) on `bmlp` and `reactnet-s`: Adam vs SGD, two-step vs one-step,
//! activations-first vs weights-first, and a negative step-1 weight decay.
//! Every run distils from the model's real-valued twin, trained once at
//! the start of the reproduction with the same sizes.

use std::fmt::Write;
use std::path::Path;
use std::sync::Arc;

use super::{RunResult, mean_std, plot_test_curves};
use crate::gpu::Gpu;
use crate::optim::OptimizerKind;
use crate::train::config::{FirstBinarized, MethodKind};
use crate::train::{EpochMetrics, TrainConfig};

/// Sizes of a reproduction (stated in the report).
#[derive(Clone, Debug)]
pub struct Plan {
    /// (model, training images, epochs in all, test images).
    pub models: Vec<(String, usize, usize, usize)>,
    pub seeds: u64,
    pub batch: usize,
}

impl Plan {
    pub fn new(quick: bool, seeds: u64) -> Plan {
        if quick {
            Plan {
                models: vec![
                    ("bmlp".into(), 500, 2, 500),
                    ("reactnet-s".into(), 64, 2, 100),
                ],
                seeds: seeds.min(1),
                batch: 32,
            }
        } else {
            Plan {
                models: vec![
                    // 16 runs each; reactnet-s trained at ~11 samples/s
                    // with its KD teacher (batch 100, lavapipe, 2 busy cores).
                    ("bmlp".into(), 3000, 6, 5000),
                    ("reactnet-s".into(), 600, 2, 500),
                ],
                seeds,
                batch: 100,
            }
        }
    }
}

/// One configuration the comparisons need.
struct Variant {
    key: &'static str,
    optimizer: OptimizerKind,
    lr: f64,
    two_step: bool,
    first: FirstBinarized,
    step1_weight_decay: f64,
}

const ADAM_LR: f64 = 1e-3;
const SGD_LR: f64 = 0.05;
const NEGATIVE_DECAY: f64 = -5e-4;

fn variants() -> Vec<Variant> {
    let v = |key, optimizer, lr, two_step, first, step1_weight_decay| Variant {
        key,
        optimizer,
        lr,
        two_step,
        first,
        step1_weight_decay,
    };
    use FirstBinarized::{Activations, Weights};
    use OptimizerKind::{Adam, Sgd};
    vec![
        v("adam-1step", Adam, ADAM_LR, false, Activations, 5e-6),
        v("sgd-1step", Sgd, SGD_LR, false, Activations, 5e-6),
        v("adam-2step-act", Adam, ADAM_LR, true, Activations, 5e-6),
        v("adam-2step-wts", Adam, ADAM_LR, true, Weights, 5e-6),
        v(
            "adam-2step-negwd",
            Adam,
            ADAM_LR,
            true,
            Activations,
            NEGATIVE_DECAY,
        ),
    ]
}

/// Final test accuracy under which every run of a model counts as barely
/// trained (10 classes: chance is 0.1).
const NEAR_CHANCE: f64 = 0.3;

/// The report's verdict on "a beats b" (means `ma`, `mb`, larger sd
/// `spread`), or with `collapse` on "a ends at least 5 points below b".
fn claim_verdict(ma: f64, mb: f64, spread: f64, collapse: bool, seeds: u64) -> String {
    let one_seed = if seeds == 1 { " (one seed)" } else { "" };
    if collapse {
        let v = if ma < mb - 0.05 {
            "holds"
        } else {
            "does not hold"
        };
        return format!("{v}{one_seed}");
    }
    let diff = ma - mb;
    let v = if seeds > 1 && diff.abs() <= spread {
        format!("not shown ({diff:+.4}, within the seeds' spread)")
    } else if diff > 0.0 {
        format!("holds ({diff:+.4})")
    } else {
        format!("does not hold ({diff:+.4})")
    };
    format!("{v}{one_seed}")
}

/// Reads a run's metrics.jsonl.
fn history(dir: &Path) -> anyhow::Result<Vec<EpochMetrics>> {
    let path = dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    Ok(text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<Vec<EpochMetrics>, _>>()?)
}

/// Trains `cfg` and returns its whole history: for a two-step run, step 1's
/// epochs then step 2's, numbered on.
fn run(gpu: &Arc<Gpu>, label: &str, cfg: &TrainConfig) -> anyhow::Result<RunResult> {
    let summary = super::train_logged(gpu, label, cfg)?;
    let mut all = Vec::new();
    if cfg.method == MethodKind::Adambnn && cfg.two_step {
        all = history(&cfg.out.join("step1"))?;
    }
    let offset = all.len();
    for mut m in history(&cfg.out)? {
        m.epoch += offset;
        all.push(m);
    }
    Ok(RunResult {
        label: label.to_string(),
        seed: cfg.seed,
        summary,
        history: all,
    })
}

/// The mean over layers of a per-layer metric of one epoch.
fn layer_mean(m: &EpochMetrics, key: &str) -> Option<f64> {
    let obj = m.method.get(key)?.as_object()?;
    let v: Vec<f64> = obj.values().filter_map(|v| v.as_f64()).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Lines of (epoch, value) in one PNG.
fn plot_lines(
    path: &Path,
    title: &str,
    y_desc: &str,
    lines: &[(String, Vec<(f64, f64)>)],
) -> anyhow::Result<()> {
    use plotters::prelude::*;
    crate::train::files::register_font();
    let root = BitMapBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let pts = lines.iter().flat_map(|l| l.1.iter());
    let x_max = pts.clone().map(|p| p.0).fold(2.0, f64::max);
    let y_max = pts.map(|p| p.1).fold(1e-6, f64::max);
    let mut c = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(1f64..x_max, 0f64..y_max * 1.1)?;
    c.configure_mesh().x_desc("epoch").y_desc(y_desc).draw()?;
    for (i, (label, p)) in lines.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        c.draw_series(LineSeries::new(p.clone(), color))?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
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
    let variants = variants();
    let mut md = String::new();
    writeln!(md, "# AdamBNN's claims on Fashion-MNIST\n")?;
    writeln!(
        md,
        "Written by `bitprop reproduce adambnn`. Adapter: {}.\n",
        gpu.description()
    )?;
    writeln!(
        md,
        "Sizes: batch {}, {} seed(s), no validation split (each run's final epoch is reported). \
         Adam lr {ADAM_LR} (betas 0.9/0.999, eps 1e-8, L2 decay as PyTorch's Adam), SGD lr {SGD_LR} momentum 0.9; linear lr decay to 0 within each step. \
         Two-step runs give half the epochs (rounded down) to step 1; step 1 decays conv/linear kernels by 5e-6 (or {NEGATIVE_DECAY}), step 2 and one-step runs by 0. \
         Every run distils (KD, temperature 1) from the model's real-valued twin, trained first for the same epochs and images with Adam and cross-entropy.",
        plan.batch, plan.seeds
    )?;
    for (model, images, epochs, tests) in &plan.models {
        writeln!(
            md,
            "- `{model}`: first {images} training images, {epochs} epochs in all, tested on the first {tests} test images."
        )?;
    }
    writeln!(md)?;
    let mut near_chance = String::new();
    let mut table = String::new();
    writeln!(
        table,
        "| model | claim | paper (ImageNet ResNet-18) | bitprop final test acc, mean ± sd | holds? |"
    )?;
    writeln!(table, "| --- | --- | --- | --- | --- |")?;
    let mut details = String::new();
    for (model, images, epochs, tests) in &plan.models {
        let base = TrainConfig {
            limit_test: *tests,
            model: model.clone(),
            epochs: *epochs,
            batch: plan.batch,
            limit_train: *images,
            val: Some(0),
            data: data.to_path_buf(),
            ..TrainConfig::default()
        };
        // The teacher: the real-valued twin, once per model.
        let teacher_cfg = TrainConfig {
            model: format!("{model}-f32"),
            seed: 100,
            out: out.join(format!("teacher-{model}")),
            ..base.clone()
        };
        let teacher = run(gpu, &format!("{model}-f32 teacher"), &teacher_cfg)?;
        writeln!(
            details,
            "- `{model}-f32` teacher: final test acc {:.4}.",
            teacher.summary.final_test_acc
        )?;
        let mut results: Vec<(&Variant, Vec<RunResult>)> = Vec::new();
        for v in &variants {
            let mut runs = Vec::new();
            for seed in 1..=plan.seeds {
                let cfg = TrainConfig {
                    method: MethodKind::Adambnn,
                    optimizer: v.optimizer,
                    lr: v.lr,
                    momentum: 0.9,
                    two_step: v.two_step,
                    first: v.first,
                    step1_weight_decay: v.step1_weight_decay,
                    step2_weight_decay: 0.0,
                    teacher: Some(teacher_cfg.out.join("best.safetensors")),
                    seed,
                    out: out.join(format!("{model}-{}-s{seed}", v.key)),
                    ..base.clone()
                };
                runs.push(run(gpu, &format!("{model} {}", v.key), &cfg)?);
            }
            results.push((v, runs));
        }
        let all_runs: Vec<&RunResult> = results.iter().flat_map(|r| r.1.iter()).collect();
        let speeds: Vec<f64> = all_runs
            .iter()
            .flat_map(|r| r.history.iter().map(|m| m.samples_per_s))
            .collect();
        writeln!(
            details,
            "- `{model}`: {} runs took {:.0} s in all; training ran at {:.0} samples/s on average (KD teacher included).",
            all_runs.len(),
            all_runs
                .iter()
                .map(|r| r.summary.total_seconds)
                .sum::<f64>()
                + teacher.summary.total_seconds,
            mean_std(&speeds).0
        )?;
        let finals = |key: &str| -> Vec<f64> {
            results
                .iter()
                .find(|r| r.0.key == key)
                .expect("variant")
                .1
                .iter()
                .map(|r| r.summary.final_test_acc)
                .collect()
        };
        let fmt = |v: &[f64]| {
            let (m, s) = mean_std(v);
            format!("{m:.4} ± {s:.4}")
        };
        let claims: [(&str, &str, &str, &str, bool); 4] = [
            (
                "Adam beats SGD (one step)",
                "61.49 vs 58.98",
                "adam-1step",
                "sgd-1step",
                false,
            ),
            (
                "two steps beat one step (Adam)",
                "63.23 vs 61.89",
                "adam-2step-act",
                "adam-1step",
                false,
            ),
            (
                "activations first beats weights first",
                "+2.93 points",
                "adam-2step-act",
                "adam-2step-wts",
                false,
            ),
            (
                "negative step-1 weight decay (-5e-4) collapses training (vs 5e-6)",
                "collapses",
                "adam-2step-negwd",
                "adam-2step-act",
                true,
            ),
        ];
        for (claim, paper, a, b, collapse) in claims {
            let (fa, fb) = (finals(a), finals(b));
            let (ma, mb) = (mean_std(&fa).0, mean_std(&fb).0);
            let spread = mean_std(&fa).1.max(mean_std(&fb).1);
            let verdict = claim_verdict(ma, mb, spread, collapse, plan.seeds);
            writeln!(
                table,
                "| {model} | {claim} | {paper} | {a}: {} vs {b}: {} | {verdict} |",
                fmt(&fa),
                fmt(&fb),
            )?;
        }
        // A model that ends near chance says little about any claim.
        let best = all_runs
            .iter()
            .map(|r| r.summary.final_test_acc)
            .fold(0.0, f64::max);
        if best < NEAR_CHANCE {
            writeln!(
                near_chance,
                "- `{model}` ends near chance in every run (best final test accuracy {best:.4}, 10 classes): \
                 it is barely trained at these sizes, so its rows say little about the claims."
            )?;
        }
        // Plots: Adam vs SGD test accuracy; flip ratio and saturation (seed 1).
        let pick = |key: &str| -> Vec<&RunResult> {
            results
                .iter()
                .filter(|r| r.0.key == key)
                .flat_map(|r| r.1.iter())
                .collect()
        };
        let png = format!("adam-vs-sgd-{model}.png");
        let mut both = pick("adam-1step");
        both.extend(pick("sgd-1step"));
        plot_test_curves(
            &out.join(&png),
            &format!("{model}: test accuracy per epoch, Adam vs SGD (one step)"),
            &both,
        )?;
        writeln!(details, "\n![{model} Adam vs SGD]({png})\n")?;
        for (key, what) in [
            ("flip_ratio", "flip ratio (mean over binary layers)"),
            ("act_saturation", "activation saturation (mean over sites)"),
        ] {
            let lines: Vec<(String, Vec<(f64, f64)>)> = results
                .iter()
                .map(|(v, runs)| {
                    let pts = runs[0]
                        .history
                        .iter()
                        .filter_map(|m| layer_mean(m, key).map(|y| (m.epoch as f64, y)))
                        .collect();
                    (v.key.to_string(), pts)
                })
                .collect();
            let png = format!("{key}-{model}.png");
            plot_lines(
                &out.join(&png),
                &format!("{model}: {what} per epoch, seed 1"),
                key,
                &lines,
            )?;
            writeln!(details, "![{model} {key}]({png})\n")?;
            writeln!(details, "{model} {what}, seed 1, per epoch:\n")?;
            for (label, pts) in &lines {
                let v: Vec<String> = pts.iter().map(|p| format!("{:.4}", p.1)).collect();
                writeln!(details, "- {label}: {}", v.join(", "))?;
            }
            writeln!(details)?;
        }
    }
    writeln!(
        md,
        "The full run's sizes (bmlp 3000 images x 6 epochs, reactnet-s 600 x 2, 16 runs each with the teacher) are meant for about an hour on lavapipe with 2 cores; the measured speeds below say what this run saw.\n"
    )?;
    writeln!(md, "{table}")?;
    writeln!(
        md,
        "\"holds\": the means over seeds differ in the claimed direction by more than the larger of the two \
         spreads (sd); \"not shown\": they differ by less; \"does not hold\": the other direction by more. \
         The collapse claim holds when the run ends at least 5 points below the 5e-6 run. \
         The paper's figures are ImageNet top-1 (%) with ResNet-18; no tuning was done here.\n\n{near_chance}"
    )?;
    writeln!(md, "## Runs and curves\n\n{details}")?;
    crate::train::files::write_atomic(&out.join("report.md"), md.as_bytes())?;
    eprintln!("report: {}", out.join("report.md").display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::claim_verdict;

    #[test]
    fn verdicts_separate_a_gap_beyond_the_spread_from_one_within_it() {
        assert_eq!(
            claim_verdict(0.83, 0.81, 0.004, false, 3),
            "holds (+0.0200)"
        );
        assert_eq!(
            claim_verdict(0.8266, 0.8263, 0.002, false, 3),
            "not shown (+0.0003, within the seeds' spread)"
        );
        assert_eq!(
            claim_verdict(0.80, 0.83, 0.004, false, 3),
            "does not hold (-0.0300)"
        );
        // One seed has no spread to compare with.
        assert_eq!(
            claim_verdict(0.8266, 0.8263, 0.0, false, 1),
            "holds (+0.0003) (one seed)"
        );
        assert_eq!(claim_verdict(0.70, 0.83, 0.01, true, 3), "holds");
        assert_eq!(claim_verdict(0.82, 0.83, 0.01, true, 3), "does not hold");
    }
}
