//! `bitprop reproduce binaryduo`: coupled -> decoupled -> fine-tuned
//! BinaryDuo against a plain BNN of the same cost trained for the same
//! total epochs, on `bmlp`, with the gradient-mismatch probe for ternary
//! (coupled) and binary (plain sign, decoupled {0, 1}) activations.

use std::fmt::Write;
use std::path::Path;
use std::sync::Arc;

use super::{RunResult, mean_std, plot_test_curves, run};
use crate::gpu::Gpu;
use crate::nn::duo::{duo_width, width_rule};
use crate::train::config::MethodKind;
use crate::train::{EpochMetrics, TrainConfig};

/// Sizes of a reproduction (stated in the report).
#[derive(Clone, Debug)]
pub struct Plan {
    pub images: usize,
    pub coupled_epochs: usize,
    pub finetune_epochs: usize,
    pub seeds: u64,
    pub batch: usize,
    pub probe_pairs: usize,
    pub probe_weights: usize,
}

impl Plan {
    pub fn new(quick: bool, seeds: u64) -> Plan {
        if quick {
            Plan {
                images: 2000,
                coupled_epochs: 2,
                finetune_epochs: 1,
                seeds: seeds.min(1),
                batch: 128,
                probe_pairs: 8,
                probe_weights: 32,
            }
        } else {
            Plan {
                images: 12000,
                coupled_epochs: 8,
                finetune_epochs: 2,
                seeds,
                batch: 128,
                probe_pairs: 64,
                probe_weights: 64,
            }
        }
    }
}

fn history(dir: &Path) -> anyhow::Result<Vec<EpochMetrics>> {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl"))?;
    Ok(text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<Vec<EpochMetrics>, _>>()?)
}

/// `grad_mismatch_cos` of a run's epoch `epoch` (1-based), if probed.
fn mismatch(h: &[EpochMetrics], epoch: usize) -> Option<f64> {
    h.iter()
        .find(|m| m.epoch == epoch)
        .and_then(|m| m.method.get("grad_mismatch_cos"))
        .and_then(|v| v.as_f64())
}

fn fmt_ms(v: &[f64]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let (m, s) = mean_std(v);
    format!("{m:.4} ± {s:.4}")
}

pub fn reproduce(gpu: &Arc<Gpu>, plan: &Plan, out: &Path, data: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    let (e1, e2) = (plan.coupled_epochs, plan.finetune_epochs);
    let base = |seed: u64, dir: String| TrainConfig {
        model: "bmlp".into(),
        batch: plan.batch,
        seed,
        limit_train: plan.images,
        val: Some(0),
        data: data.to_path_buf(),
        probe_every: e1,
        probe_samples: plan.probe_pairs,
        probe_weights: plan.probe_weights,
        out: out.join(dir),
        ..TrainConfig::default()
    };
    let mut duo_runs = Vec::new();
    let mut plain_runs = Vec::new();
    // Per seed: (coupled final, decoupled before fine-tuning, fine-tuned final)
    let mut accs: Vec<(f64, f64, f64)> = Vec::new();
    let (mut mm_ternary, mut mm_dec, mut mm_plain_e1, mut mm_plain_end) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for seed in 1..=plan.seeds {
        let cfg = TrainConfig {
            method: MethodKind::Binaryduo,
            epochs: e1,
            duo_finetune_epochs: e2,
            ..base(seed, format!("binaryduo-s{seed}"))
        };
        eprintln!("reproduce: binaryduo seed {seed} -> {}", cfg.out.display());
        let r = crate::methods::duo::train_binaryduo(gpu.clone(), &cfg, false, true)?;
        let hc = history(&cfg.out.join("coupled"))?;
        let hf = history(&cfg.out)?;
        mm_ternary.extend(mismatch(&hc, e1));
        mm_dec.extend(mismatch(&hf, e2));
        accs.push((
            r.coupled.final_test_acc,
            r.decoupling.decoupled_test_acc,
            r.finetuned.final_test_acc,
        ));
        // One curve: the coupled epochs, then the fine-tuning epochs.
        let mut h = hc.clone();
        h.extend(hf.iter().cloned().map(|mut m| {
            m.epoch += e1;
            m
        }));
        duo_runs.push(RunResult {
            label: "binaryduo".into(),
            seed,
            summary: r.finetuned,
            history: h,
        });
        let cfg = TrainConfig {
            epochs: e1 + e2,
            ..base(seed, format!("plain-s{seed}"))
        };
        let p = run(gpu, "plain bmlp", &cfg)?;
        mm_plain_e1.extend(mismatch(&p.history, e1));
        mm_plain_end.extend(mismatch(&p.history, e1 + e2));
        plain_runs.push(p);
    }

    let col = |f: fn(&(f64, f64, f64)) -> f64| accs.iter().map(f).collect::<Vec<f64>>();
    let fine = col(|a| a.2);
    let plain: Vec<f64> = plain_runs
        .iter()
        .map(|r| r.summary.final_test_acc)
        .collect();
    let (fm, fs) = mean_std(&fine);
    let (pm, ps) = mean_std(&plain);
    let h = duo_width(1024);
    let mut md = String::new();
    writeln!(md, "# BinaryDuo on Fashion-MNIST (bmlp)\n")?;
    writeln!(
        md,
        "Written by `bitprop reproduce binaryduo`. Adapter: {}.\n",
        gpu.description()
    )?;
    writeln!(
        md,
        "Sizes: first {} training images, no validation split (the last epoch's model is used), test on all 10,000; batch {}, Adam lr 1e-3 with linear decay (restarted for fine-tuning); {} seed(s).",
        plan.images, plan.batch, plan.seeds
    )?;
    writeln!(
        md,
        "- BinaryDuo, {}. Stage 1 trains the coupled network (HardTanh(0,1) + ternary activations, one mean |W| per layer times sign(W)) for {e1} epochs; it is decoupled exactly (hidden activations 2 x {h} = {} binary {{0,1}} units, AND-popcount layers) and fine-tuned for {e2} epoch(s).",
        width_rule("bmlp").replace("BinaryDuo width rule", "width rule"),
        2 * h
    )?;
    writeln!(
        md,
        "- Plain BNN of the same cost: `bmlp` (784-1024-1024-10, sign activations, per-channel mean |W| weights) trained for {} epochs. Binary multiply-adds per image: fc2 {} (decoupled 2x{h}x{h}) vs {} (1024x1024); fc1 (real input) {} vs {}; classifier {} vs {}.",
        e1 + e2,
        2 * h * h,
        1024 * 1024,
        784 * h,
        784 * 1024,
        2 * h * 10,
        1024 * 10
    )?;
    writeln!(
        md,
        "- Gradient mismatch: cosine between the STE gradient and the Gaussian-smoothed quantized-loss gradient ({} antithetic pairs, {} sampled weights of fc1, sigma = half fc1's mean |W|, on the first {} training images in training mode).\n",
        plan.probe_pairs, plan.probe_weights, plan.batch
    )?;
    writeln!(md, "| network | epochs | final test acc (mean ± sd) |")?;
    writeln!(md, "| --- | --- | --- |")?;
    writeln!(
        md,
        "| coupled (ternary), end of stage 1 | {e1} | {} |",
        fmt_ms(&col(|a| a.0))
    )?;
    writeln!(
        md,
        "| decoupled, before fine-tuning | {e1} | {} |",
        fmt_ms(&col(|a| a.1))
    )?;
    writeln!(
        md,
        "| decoupled + fine-tuned (BinaryDuo) | {} | {} |",
        e1 + e2,
        fmt_ms(&fine)
    )?;
    writeln!(
        md,
        "| plain BNN, same cost | {} | {} |\n",
        e1 + e2,
        fmt_ms(&plain)
    )?;
    writeln!(
        md,
        "| activations (network, when) | grad_mismatch_cos (mean ± sd) |"
    )?;
    writeln!(md, "| --- | --- |")?;
    writeln!(
        md,
        "| ternary (coupled, epoch {e1}) | {} |",
        fmt_ms(&mm_ternary)
    )?;
    writeln!(
        md,
        "| sign binary (plain BNN, epoch {e1}) | {} |",
        fmt_ms(&mm_plain_e1)
    )?;
    writeln!(
        md,
        "| sign binary (plain BNN, epoch {}) | {} |",
        e1 + e2,
        fmt_ms(&mm_plain_end)
    )?;
    writeln!(
        md,
        "| {{0,1}} binary (decoupled, end of fine-tuning) | {} |\n",
        fmt_ms(&mm_dec)
    )?;
    writeln!(md, "## Verdict\n")?;
    let diff = fm - pm;
    let spread = fs.max(ps);
    let verdict = if plan.seeds < 2 {
        format!(
            "One seed only: BinaryDuo {fm:.4} vs plain {pm:.4} ({diff:+.4}); no claim can be judged from one seed."
        )
    } else if diff > spread {
        format!(
            "The claim holds at these sizes: BinaryDuo {fm:.4} ± {fs:.4} vs plain {pm:.4} ± {ps:.4}, a gain of {diff:+.4}, larger than the seed spread."
        )
    } else if diff > 0.0 {
        format!(
            "Not shown at these sizes: BinaryDuo {fm:.4} ± {fs:.4} vs plain {pm:.4} ± {ps:.4} ({diff:+.4}), within the seed spread."
        )
    } else {
        format!(
            "The claim does not hold at these sizes: BinaryDuo {fm:.4} ± {fs:.4} vs plain {pm:.4} ± {ps:.4} ({diff:+.4})."
        )
    };
    writeln!(md, "{verdict}")?;
    if !mm_ternary.is_empty() && !mm_plain_e1.is_empty() {
        let (t, ts) = mean_std(&mm_ternary);
        let (b, bs) = mean_std(&mm_plain_e1);
        let judged = if mm_ternary.len() < 2 {
            "one seed: no conclusion"
        } else if t - b > ts.max(bs) {
            "ternary is better aligned, beyond the seed spread, as BinaryDuo argues"
        } else if b - t > ts.max(bs) {
            "sign is better aligned, beyond the seed spread: BinaryDuo's argument is not borne out here"
        } else {
            "no difference beyond the seed spread"
        };
        writeln!(
            md,
            "\nGradient mismatch at epoch {e1}: cosine {t:.4} ± {ts:.4} with ternary activations vs {b:.4} ± {bs:.4} with sign activations ({judged}). Each estimate uses {} pairs, so it is noisy; the fc1 gradients of the two networks also differ in width and weight rule.",
            plan.probe_pairs
        )?;
    }
    let runs: Vec<&RunResult> = duo_runs.iter().chain(plain_runs.iter()).collect();
    plot_test_curves(
        &out.join("curves.png"),
        "bmlp: BinaryDuo (coupled, then decoupled) vs plain BNN",
        &runs,
    )?;
    writeln!(md, "\n![test accuracy per epoch](curves.png)\n")?;
    writeln!(
        md,
        "Test accuracy per epoch; BinaryDuo's curve is the coupled network for epochs 1-{e1} and the decoupled one after."
    )?;
    crate::train::files::write_atomic(&out.join("report.md"), md.as_bytes())?;
    eprintln!("report: {}", out.join("report.md").display());
    Ok(())
}
