//! Training end to end on small slices of Fashion-MNIST: a run learns,
//! writes every file with its keys and keeps device memory flat from the
//! first epoch on; checkpoints of trained models round-trip bit for bit and
//! load strictly; the convolutional models learn a fixed batch; the CLI
//! rejects unknown config keys and lets flags override the config file;
//! an evaluation batch too large for the adapter runs as smaller batches.
//!
//! Runs read a small copy of the data set (a few hundred images, test set
//! included) so that every epoch's evaluation stays cheap on lavapipe.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use bitprop::Gpu;
use bitprop::autograd::Tape;
use bitprop::data::{Batch, Batches, Dataset};
use bitprop::nn::{Ctx, Model, build_model};
use bitprop::optim::{DecayScope, Optimizer, OptimizerConfig, OptimizerKind};
use bitprop::train::files::{checkpoint_metadata, load_model, save_model};
use bitprop::train::rerun::{DirState, run_state, train_or_continue};
use bitprop::train::{TrainConfig, evaluate, train, train_step, upload};
use common::{Rng, TempDir, fashion_mnist, gpu, small_fashion_mnist};

fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn bmlp_run_learns_writes_every_file_and_keeps_memory_flat() {
    // A device of its own: the pool's byte counts must not see other tests' tensors.
    let gpu =
        Gpu::from_env().expect("a GPU adapter (lavapipe: apt-get install mesa-vulkan-drivers)");
    let tmp = TempDir::new("bmlp");
    let cfg = TrainConfig {
        model: "bmlp".into(),
        epochs: 2,
        batch: 64,
        val: Some(64),
        data: small_fashion_mnist(tmp.path(), 350, 128),
        out: tmp.path().join("run"),
        ..TrainConfig::default()
    };
    let summary = train(gpu, &cfg, false).expect("training runs");
    let out = &cfg.out;

    let lines = json_lines(&out.join("metrics.jsonl"));
    assert_eq!(lines.len(), 2, "one metrics line per epoch");
    for (k, line) in lines.iter().enumerate() {
        assert_eq!(line["epoch"].as_u64(), Some(k as u64 + 1), "{line}");
        for key in [
            "epoch",
            "lr",
            "train_loss",
            "train_acc",
            "val_acc",
            "test_loss",
            "test_acc",
            "epoch_seconds",
            "samples_per_s",
            "gpu_bytes",
        ] {
            let v = line
                .get(key)
                .unwrap_or_else(|| panic!("metrics.jsonl lacks {key}: {line}"));
            assert!(
                v.as_f64().is_some_and(f64::is_finite),
                "{key} is not a finite number: {line}"
            );
        }
    }
    let num = |k: usize, key: &str| lines[k][key].as_f64().unwrap();
    assert!(
        num(1, "train_loss") < num(0, "train_loss"),
        "train loss did not fall: {} -> {}",
        num(0, "train_loss"),
        num(1, "train_loss")
    );
    // 286 training images (4 full batches and one of 30), two epochs:
    // ~0.65 measured; chance is 0.1.
    assert!(
        num(1, "test_acc") > 0.4,
        "test accuracy {} is near chance",
        num(1, "test_acc")
    );
    // Memory is flat after the first epoch: epoch 2 allocates nothing new
    // and holds no more live tensors than epoch 1 did.
    for key in ["gpu_bytes", "gpu_bytes_allocated"] {
        assert_eq!(
            lines[0][key], lines[1][key],
            "{key} changed between epochs 1 and 2"
        );
    }
    assert!(num(0, "gpu_bytes") > 0.0);

    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    for key in [
        "model",
        "adapter",
        "epochs",
        "final_test_acc",
        "best_val_acc",
        "best_test_acc",
        "total_seconds",
    ] {
        assert!(s.get(key).is_some(), "summary.json lacks {key}: {s}");
    }
    assert_eq!(s["model"], "bmlp");
    assert_eq!(s["epochs"], 2);
    assert_eq!(s["final_test_acc"], lines[1]["test_acc"]);
    assert_eq!(summary.final_test_acc, num(1, "test_acc"));
    let best_val = num(0, "val_acc").max(num(1, "val_acc"));
    assert_eq!(s["best_val_acc"].as_f64(), Some(best_val));

    // config.toml is the resolved configuration, readable as such.
    let back = TrainConfig::from_toml_file(&out.join("config.toml")).expect("config.toml parses");
    assert_eq!(back, cfg);

    let png = std::fs::read(out.join("curves.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "curves.png is not a PNG");
    assert_eq!(&png[12..16], b"IHDR");
    let (w, h) = (
        u32::from_be_bytes(png[16..20].try_into().unwrap()),
        u32::from_be_bytes(png[20..24].try_into().unwrap()),
    );
    assert!(w > 100 && h > 100, "curves.png is {w}x{h}");

    // Both checkpoints load strictly into a fresh bmlp.
    let gpu = common::gpu();
    for f in ["best.safetensors", "last.safetensors"] {
        let mut m = build_model(&gpu, "bmlp", 9).unwrap();
        let meta = load_model(&gpu, m.store_mut(), &out.join(f))
            .unwrap_or_else(|e| panic!("{f} does not load: {e}"));
        assert_eq!(meta.get("model").map(String::as_str), Some("bmlp"));
    }
}

/// The first `n` training images as one batch, uploaded.
fn batch(gpu: &Gpu, model: &dyn Model, n: usize, test: bool) -> (bitprop::Tensor, bitprop::Tensor) {
    let (train_set, test_set) = fashion_mnist();
    let ds = if test { test_set } else { train_set }.slice(0..n).unwrap();
    let mut b = Batch::default();
    assert!(Batches::new(&ds, n, None, 0).unwrap().next_into(&mut b));
    upload(gpu, &b, &model.input_shape()).unwrap()
}

/// Eval-mode logits of `model` on the first `n` test images.
fn logits(gpu: &Arc<Gpu>, model: &dyn Model, n: usize) -> Vec<u32> {
    let (x, _) = batch(gpu, model, n, true);
    let mut tape = Tape::new(gpu.clone());
    let mut ctx = Ctx::new(&mut tape, model.store(), false);
    let xv = ctx.tape.leaf(x, false);
    let y = model.forward(&mut ctx, xv).unwrap();
    let v = tape.value(y).to_f32(gpu).unwrap();
    assert!(v.iter().all(|x| x.is_finite()), "non-finite logits");
    v.iter().map(|x| x.to_bits()).collect()
}

fn adam(gpu: &Gpu) -> Optimizer {
    Optimizer::new(
        gpu,
        OptimizerConfig {
            kind: OptimizerKind::Adam,
            weight_decay: 0.0,
            decay_scope: DecayScope::All,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            momentum: 0.9,
            nesterov: false,
        },
    )
    .unwrap()
}

/// `steps` training steps on one fixed batch of `n` images; the loss of each step.
fn steps_on_a_fixed_batch(
    gpu: &Arc<Gpu>,
    model: &dyn Model,
    n: usize,
    steps: usize,
    lr: f64,
) -> Vec<f32> {
    let mut opt = adam(gpu);
    let (x, labels) = batch(gpu, model, n, false);
    (0..steps)
        .map(|_| {
            let (loss, _) = train_step(gpu, model, &mut opt, x.clone(), &labels, lr).unwrap();
            loss.to_f32(gpu).unwrap()[0]
        })
        .collect()
}

fn store_bits(gpu: &Gpu, model: &dyn Model) -> Vec<(String, Vec<u32>)> {
    model
        .store()
        .entries
        .iter()
        .map(|e| {
            let v = e.value.to_f32(gpu).unwrap();
            (e.name.clone(), v.iter().map(|x| x.to_bits()).collect())
        })
        .collect()
}

/// A model after a few steps (moved weights and running statistics) saves
/// and loads into a differently seeded model with identical tensors and
/// identical eval logits; a checkpoint with a missing, reshaped or extra
/// tensor is refused, naming it, and leaves the model as it was.
#[test]
fn trained_checkpoints_round_trip_bit_for_bit_and_load_strictly() {
    let gpu = gpu();
    let tmp = TempDir::new("ckpt");
    for name in ["bmlp", "reactnet-s"] {
        let model = build_model(&gpu, name, 1).unwrap();
        let meta = checkpoint_metadata(&TrainConfig::default(), model.as_ref());
        let fresh = store_bits(&gpu, model.as_ref());
        steps_on_a_fixed_batch(&gpu, model.as_ref(), 8, 2, 1e-2);
        let trained = store_bits(&gpu, model.as_ref());
        for ((n, a), (_, b)) in fresh.iter().zip(&trained) {
            assert!(a != b, "{name}: {n} did not change in training");
        }
        let path = tmp.path().join(format!("{name}.safetensors"));
        save_model(&gpu, model.store(), &path, &meta).unwrap();

        // Bits compared with `==`, so a failure names the tensor without printing it.
        let mut other = build_model(&gpu, name, 2).unwrap();
        let want = logits(&gpu, model.as_ref(), 16);
        assert!(
            logits(&gpu, other.as_ref(), 16) != want,
            "{name}: seeds must differ"
        );
        load_model(&gpu, other.store_mut(), &path).unwrap();
        for ((n, got), (_, saved)) in store_bits(&gpu, other.as_ref()).iter().zip(&trained) {
            assert!(got == saved, "{name}: {n} differs after a round trip");
        }
        assert!(
            logits(&gpu, other.as_ref(), 16) == want,
            "{name}: eval logits differ after a round trip"
        );

        // Strict loading, from edited copies of the checkpoint.
        let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = model
            .store()
            .entries
            .iter()
            .map(|e| {
                (
                    e.name.clone(),
                    e.value.shape().to_vec(),
                    e.value.to_f32(&gpu).unwrap(),
                )
            })
            .collect();
        let mut fresh_model = build_model(&gpu, name, 3).unwrap();
        let before = logits(&gpu, fresh_model.as_ref(), 16);
        let refuse = |edited: Vec<(String, Vec<usize>, Vec<f32>)>,
                      m: &mut Box<dyn Model>,
                      must_name: &[&str]| {
            let p = tmp.path().join("edited.safetensors");
            bitprop::checkpoint::save(&p, &edited, meta.clone()).unwrap();
            let err = format!("{:#}", load_model(&gpu, m.store_mut(), &p).unwrap_err());
            for part in must_name {
                assert!(
                    err.contains(part),
                    "{name}: error {err:?} does not name {part:?}"
                );
            }
        };
        let last = tensors.last().unwrap().0.clone();
        refuse(
            tensors[..tensors.len() - 1].to_vec(),
            &mut fresh_model,
            &[&last, "missing"],
        );
        let mut reshaped = tensors.clone();
        let first = reshaped[0].0.clone();
        let shape = reshaped[0].1.clone();
        let flipped: Vec<usize> = shape.iter().rev().cloned().collect();
        reshaped[0].1 = flipped.clone();
        refuse(
            reshaped,
            &mut fresh_model,
            &[&first, &format!("{flipped:?}"), &format!("{shape:?}")],
        );
        let mut extra = tensors.clone();
        extra.push(("head.weight".into(), vec![2], vec![0.0, 1.0]));
        refuse(extra, &mut fresh_model, &["head.weight"]);
        assert!(
            logits(&gpu, fresh_model.as_ref(), 16) == before,
            "{name}: a refused checkpoint changed the model"
        );
    }
}

/// bcnn and reactnet-s are too slow on lavapipe for a run over data sets:
/// a few steps on one batch of real images must lower that batch's loss.
#[test]
fn convolutional_models_lower_the_loss_on_a_fixed_batch() {
    let gpu = gpu();
    for name in ["bcnn", "reactnet-s"] {
        let model = build_model(&gpu, name, 0).unwrap();
        let losses = steps_on_a_fixed_batch(&gpu, model.as_ref(), 8, 4, 1e-3);
        eprintln!("{name}: losses on a fixed batch {losses:?}");
        assert!(
            losses.iter().all(|l| l.is_finite()),
            "{name}: losses {losses:?}"
        );
        // Measured at lr 1e-3: bcnn 2.56 -> 1.00, reactnet-s 2.20 -> 1.66.
        assert!(
            losses[1..].iter().all(|l| *l < losses[0]) && losses[3] < 0.9 * losses[0],
            "{name}: the loss on a fixed batch did not fall: {losses:?}"
        );
    }
}

fn bitprop_train(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bitprop"))
        .arg("train")
        .args(args)
        .output()
        .expect("bitprop runs")
}

/// Asserts that `bitprop train` failed with an error (no panic) holding
/// each of `names` (what: the text).
fn assert_fails_naming(out: &std::process::Output, names: &[(&str, &str)]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "bitprop train must fail: {err}");
    for (what, text) in names {
        assert!(err.contains(text), "the error must name {what}: {err}");
    }
    assert!(
        !err.contains("panicked"),
        "a panic instead of an error: {err}"
    );
}

#[test]
fn cli_rejects_an_unknown_config_key_naming_it() {
    let tmp = TempDir::new("cli-key");
    let cfg = tmp.path().join("run.toml");
    std::fs::write(&cfg, "model = \"bmlp\"\nepochs = 1\nlearning_rate = 0.1\n").unwrap();
    let out_dir = tmp.path().join("run");
    let out = bitprop_train(&[
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_fails_naming(
        &out,
        &[("the key", "learning_rate"), ("the file", "run.toml")],
    );
    assert!(!out_dir.exists(), "a rejected config must not start a run");
}

#[test]
fn cli_flags_override_the_config_file() {
    let tmp = TempDir::new("cli-flags");
    let data = small_fashion_mnist(tmp.path(), 96, 64);
    let out_dir = tmp.path().join("run");
    let cfg = tmp.path().join("run.toml");
    std::fs::write(
        &cfg,
        format!(
            "model = \"bmlp\"\nepochs = 1\nbatch = 64\nlr = 0.01\nval = 32\nseed = 7\ndata = {:?}\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    let out = bitprop_train(&[
        "--config",
        cfg.to_str().unwrap(),
        "--lr",
        "0.005",
        "--batch",
        "32",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !err.contains("panicked"),
        "bitprop train failed: {err}"
    );
    let used = TrainConfig::from_toml_file(&out_dir.join("config.toml")).unwrap();
    // Flags win over the file; the file wins over the defaults.
    assert_eq!((used.lr, used.batch), (0.005, 32));
    assert_eq!(used.out, out_dir);
    assert_eq!((used.epochs, used.val, used.seed), (1, Some(32), 7));
    assert_eq!(used.data, data);
    assert_eq!(used.eval_batch, TrainConfig::default().eval_batch);
    assert_eq!(json_lines(&out_dir.join("metrics.jsonl")).len(), 1);
}

#[test]
fn rerun_reads_a_finished_run_continues_a_killed_one_and_restarts_a_changed_one() {
    let gpu = gpu();
    let tmp = TempDir::new("rerun");
    let cfg = TrainConfig {
        model: "bmlp".into(),
        epochs: 2,
        batch: 64,
        val: Some(0),
        data: small_fashion_mnist(tmp.path(), 256, 64),
        out: tmp.path().join("run"),
        ..TrainConfig::default()
    };
    assert_eq!(run_state(&cfg), DirState::Fresh, "an empty directory");
    let first = train_or_continue(gpu.clone(), &cfg, false).expect("training runs");
    assert_eq!(run_state(&cfg), DirState::Finished);
    let metrics = |c: &TrainConfig| {
        std::fs::read_to_string(c.out.join("metrics.jsonl")).expect("metrics.jsonl")
    };
    let before = metrics(&cfg);
    let last = cfg.out.join("last.safetensors");
    let written = std::fs::metadata(&last).unwrap().modified().unwrap();

    // Finished: read back, nothing trained or written again.
    let read = train_or_continue(gpu.clone(), &cfg, false).expect("read back");
    assert_eq!(read.final_test_acc, first.final_test_acc);
    assert_eq!(metrics(&cfg), before);
    assert_eq!(
        std::fs::metadata(&last).unwrap().modified().unwrap(),
        written
    );

    // Killed before its summary: continues from the resume state.
    std::fs::remove_file(cfg.out.join("summary.json")).unwrap();
    assert_eq!(run_state(&cfg), DirState::Interrupted);
    let resumed = train_or_continue(gpu.clone(), &cfg, false).expect("continues");
    assert_eq!(resumed.final_test_acc, first.final_test_acc);
    assert_eq!(
        metrics(&cfg),
        before,
        "the finished epochs are kept, not rerun"
    );
    assert_eq!(run_state(&cfg), DirState::Finished);

    // Another configuration in the same directory starts over.
    let changed = TrainConfig {
        lr: cfg.lr * 0.5,
        ..cfg.clone()
    };
    assert_eq!(run_state(&changed), DirState::Fresh);
}

/// `bitprop bench train --compare-f32 --json` on a small bcnn: the keys
/// other tools read, and the ratios they are defined as.
#[test]
fn bench_train_compare_f32_json_has_its_keys_and_ratios() {
    let out = Command::new(env!("CARGO_BIN_EXE_bitprop"))
        .args(["bench", "train", "--model", "bcnn", "--batch", "4"])
        .args(["--width", "0.1", "--steps", "1", "--profile-steps", "1"])
        .args(["--compare-f32", "--json"])
        .output()
        .expect("bitprop runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let f = |k: &str| {
        v[k].as_f64()
            .unwrap_or_else(|| panic!("missing number {k}: {v}"))
    };
    let (t_bin, t_f32) = (f("step_ms"), f("f32_step_ms"));
    assert!((f("f32_vs_binary") - t_f32 / t_bin).abs() < 1e-9);
    for (bound, savings) in [
        ("f32_vs_binary_bound", "savings_realized"),
        (
            "f32_vs_binary_bound_forward_only",
            "savings_realized_forward_only",
        ),
    ] {
        let b = f(bound);
        assert!(b > 1.0, "{bound} {b}");
        let want = (t_f32 - t_bin) / (t_f32 - t_f32 / b);
        assert!((f(savings) - want).abs() < 1e-9, "{savings}: {v}");
    }
    // bcnn's binary convolutions run their data and weight gradients on
    // packed signs, which moves the bound past the forward-only one.
    let macs = &v["macs_per_step"];
    assert!(macs["backward_signs"].as_u64().unwrap() > 0, "{macs}");
    assert!(f("f32_vs_binary_bound") > f("f32_vs_binary_bound_forward_only"));
    for k in [
        "gemm_pct_of_fma_peak",
        "f32_model_gemm_pct_of_fma_peak",
        "sign_gemm_pct_of_fma_peak",
        "xnor_pct_of_popcount_peak",
        "xnor_ops_per_s",
        "popcount_peak_ops_per_s",
        "fma_peak_flops_per_s",
        "samples_per_s",
        "f32_samples_per_s",
    ] {
        assert!(f(k) > 0.0, "{k}: {v}");
    }
    let pct = 100.0 * f("xnor_ops_per_s") / f("popcount_peak_ops_per_s");
    assert!(
        (f("xnor_pct_of_popcount_peak") - pct).abs() <= 1e-9 * pct,
        "{v}"
    );
    let peaks = v["fma_peaks_flops_per_s"].as_array().expect("three peaks");
    assert_eq!(peaks.len(), 3, "{v}");
    let mean: f64 = peaks.iter().map(|p| p.as_f64().unwrap()).sum::<f64>() / 3.0;
    assert!(
        (mean - f("fma_peak_flops_per_s")).abs() <= 1e-9 * mean,
        "{v}"
    );
}

/// `bitprop bench train --profile --json`: the step's profile per kernel
/// (time, dispatches, bytes bound) and the host time, in the JSON and, with
/// `--profile`, as a table on stderr.
#[test]
fn bench_train_profile_has_kernels_bytes_and_host_time() {
    let run = |profile: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bitprop"));
        cmd.args(["bench", "train", "--model", "bmlp", "--batch", "8"])
            .args([
                "--width",
                "0.1",
                "--steps",
                "2",
                "--profile-steps",
                "1",
                "--json",
            ]);
        if profile {
            cmd.arg("--profile");
        }
        let out = cmd.output().expect("bitprop runs");
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{err}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
        (v, err)
    };
    let (v, err) = run(true);
    let f = |k: &str| {
        v[k].as_f64()
            .unwrap_or_else(|| panic!("missing number {k}: {v}"))
    };
    for k in [
        "samples_per_s",
        "step_ms",
        "host_ms_per_step",
        "bytes_bound_per_step",
    ] {
        assert!(f(k) > 0.0, "{k}: {v}");
    }
    let shares: f64 = v["kernel_share"]
        .as_object()
        .expect("kernel_share")
        .values()
        .map(|s| s.as_f64().unwrap())
        .sum();
    assert!((shares - 1.0).abs() < 1e-6, "{v}");
    let kernels = v["kernels"].as_array().expect("kernels");
    let bytes: f64 = kernels
        .iter()
        .map(|k| {
            let b = k["bytes_bound_per_step"].as_f64().unwrap();
            assert!(b > 0.0, "{k}");
            b
        })
        .sum();
    assert!(
        (bytes - f("bytes_bound_per_step")).abs() <= 1e-6 * bytes,
        "{v}"
    );
    assert!(
        err.contains("MB bound/step") && err.contains("host time/step"),
        "{err}"
    );
    // Without --profile, the summary and family shares only.
    let (_, err) = run(false);
    assert!(
        !err.contains("MB bound/step") && err.contains("host time/step"),
        "{err}"
    );
}

/// An evaluation batch whose activations do not fit one storage binding
/// (bcnn's conv2 output, 401 KB an image: 335 images on lavapipe, whose
/// bindings hold 128 MiB) runs in smaller batches, with the result of small
/// batches.
#[test]
fn evaluation_shrinks_a_batch_that_does_not_fit_the_adapter() {
    let gpu = gpu();
    let mut rng = Rng::new(7);
    let per_image = 128 * 28 * 28 * 4;
    let n = gpu.max_binding_bytes() as usize / per_image + 1;
    let data = Dataset {
        images: (0..n * 784).map(|_| (rng.next_u64() % 256) as u8).collect(),
        labels: (0..n).map(|i| (i % 10) as u8).collect(),
        n,
        rows: 28,
        cols: 28,
    };
    let model = build_model(&gpu, "bcnn", 3).unwrap();
    let whole = evaluate(&gpu, model.as_ref(), &data, n).unwrap();
    let small = evaluate(&gpu, model.as_ref(), &data, 100).unwrap();
    assert!(
        whole.batch < n && (whole.batch * per_image) as u64 <= gpu.max_binding_bytes(),
        "evaluated in batches of {}",
        whole.batch
    );
    assert_eq!(small.batch, 100);
    assert_eq!(whole.acc, small.acc);
    assert!(
        (whole.loss - small.loss).abs() < 1e-5 * small.loss.abs().max(1.0),
        "loss {} in batches of {} vs {} in batches of 100",
        whole.loss,
        whole.batch,
        small.loss
    );
}

/// A training batch too large for the adapter fails with an error that
/// names the tensor and the batch that fits it, and no panic.
#[test]
fn cli_names_the_batch_that_fits_when_a_training_batch_does_not() {
    let per_image = 128 * 28 * 28 * 4;
    let batch = gpu().max_binding_bytes() as usize / per_image + 1;
    let fits = batch - 1;
    let tmp = TempDir::new("cli-batch");
    let data = small_fashion_mnist(tmp.path(), batch, 16);
    let out_dir = tmp.path().join("run");
    let out = bitprop_train(&[
        "--model",
        "bcnn",
        "--epochs",
        "1",
        "--val",
        "0",
        "--batch",
        &batch.to_string(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_fails_naming(
        &out,
        &[
            ("the tensor", &format!("[{batch}, 128, 28, 28]")),
            ("the batch that fits", &format!("--batch {fits} or less")),
        ],
    );
}
