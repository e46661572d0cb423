//! AdamBNN's recipe: step 2's strict load names a missing or misshapen
//! tensor; weight decay reaches conv/linear kernels only; a tiny two-step
//! run with a teacher writes both steps' files and resumes into step 2.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bitprop::data::{Batch, Batches};
use bitprop::methods::adambnn::step_config;
use bitprop::nn::{ParamKind, build_model, build_model_with};
use bitprop::optim::{DecayScope, Optimizer};
use bitprop::train::config::{FirstBinarized, MethodKind};
use bitprop::train::files::{checkpoint_metadata, save_model};
use bitprop::train::rerun::{DirState, run_state};
use bitprop::train::{TrainConfig, optimizer_config, train_step, train_with, upload};
use common::{TempDir, fashion_mnist, gpu, small_fashion_mnist};

fn recipe(data: PathBuf, out: PathBuf) -> TrainConfig {
    TrainConfig {
        model: "bmlp".into(),
        method: MethodKind::Adambnn,
        epochs: 2,
        batch: 50,
        limit_train: 100,
        val: Some(0),
        seed: 3,
        data,
        out,
        ..TrainConfig::default()
    }
}

/// Step 2 starts from step 1's best checkpoint with a strict load: a
/// checkpoint with a tensor missing, or with one of another shape, stops
/// the run with an error that names the tensor.
#[test]
fn step2_strict_load_names_missing_and_misshapen_tensors() {
    let gpu = gpu();
    let tmp = TempDir::new("strict");
    let data = small_fashion_mnist(tmp.path(), 60, 20);
    let cfg = recipe(data, tmp.path().join("run"));
    let s2 = step_config(&cfg, 2);
    let init = s2
        .init
        .clone()
        .expect("step 2 loads step 1's best checkpoint");
    assert_eq!(init, cfg.out.join("step1").join("best.safetensors"));
    std::fs::create_dir_all(init.parent().unwrap()).unwrap();

    let s1 = step_config(&cfg, 1);
    let model = build_model_with(&gpu, "bmlp", 1, s1.binarization()).unwrap();
    let store = model.store();
    let meta = checkpoint_metadata(&s1, model.as_ref());
    let all: Vec<(String, Vec<usize>, Vec<f32>)> = store
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

    // A tensor missing.
    let missing: Vec<_> = all
        .iter()
        .filter(|t| t.0 != "bn2.running_var")
        .cloned()
        .collect();
    bitprop::checkpoint::save(&init, &missing, meta.clone()).unwrap();
    let e = format!(
        "{:#}",
        train_with(gpu.clone(), &s2, false, false).unwrap_err()
    );
    assert!(e.contains("bn2.running_var"), "{e}");
    assert!(e.contains("best.safetensors"), "{e}");

    // A tensor of another shape.
    let mut misshapen = all.clone();
    let fc2 = misshapen.iter_mut().find(|t| t.0 == "fc2.weight").unwrap();
    fc2.1 = vec![512, 2048];
    bitprop::checkpoint::save(&init, &misshapen, meta.clone()).unwrap();
    let e = format!(
        "{:#}",
        train_with(gpu.clone(), &s2, false, false).unwrap_err()
    );
    assert!(e.contains("fc2.weight"), "{e}");

    // The complete checkpoint loads (and the test above could pass only on names).
    bitprop::checkpoint::save(&init, &all, meta).unwrap();
    train_with(gpu.clone(), &s2, false, false).unwrap();
}

/// Step 1's weight decay reaches conv/linear kernels only: one step with
/// a large decay against the same step without leaves BN, RSign,
/// RPReLU, the classifier and its bias bit for bit equal, and change every
/// kernel (reactnet-s has one of each kind).
#[test]
fn step1_weight_decay_touches_kernels_only() {
    let gpu = gpu();
    let mut cfg = TrainConfig {
        model: "reactnet-s".into(),
        method: MethodKind::Adambnn,
        step1_weight_decay: 0.5,
        ..TrainConfig::default()
    };
    let s1 = step_config(&cfg, 1);
    assert_eq!(s1.weight_decay, 0.5);
    assert_eq!(s1.decay_scope, DecayScope::Kernels);
    cfg.step1_weight_decay = 0.0;
    let s1_zero = step_config(&cfg, 1);
    assert_eq!(
        step_config(&cfg, 2).weight_decay,
        0.0,
        "step 2 has no decay"
    );

    let (train_set, _) = fashion_mnist();
    let ds = train_set.slice(0..8).unwrap();
    let mut batches = Batches::new(&ds, 8, None, 0).unwrap();
    let mut b = Batch::default();
    assert!(batches.next_into(&mut b));

    let run = |c: &TrainConfig| {
        let model = build_model_with(&gpu, &c.model, 5, c.binarization()).unwrap();
        let mut opt = Optimizer::new(&gpu, optimizer_config(c)).unwrap();
        // One step: both runs see the same gradients; only the L2 term differs.
        let (x, y) = upload(&gpu, &b, &model.input_shape()).unwrap();
        train_step(&gpu, model.as_ref(), &mut opt, x, &y, 1e-3).unwrap();
        model
            .store()
            .entries
            .iter()
            .map(|e| (e.name.clone(), e.kind, e.value.to_f32(&gpu).unwrap()))
            .collect::<Vec<_>>()
    };
    let with = run(&s1);
    let without = run(&s1_zero);
    let mut kinds = std::collections::BTreeSet::new();
    for ((name, kind, a), (_, _, b)) in with.iter().zip(&without) {
        kinds.insert(format!("{kind:?}"));
        if *kind == ParamKind::Kernel {
            assert_ne!(a, b, "{name}: a kernel must feel the weight decay");
        } else {
            assert_eq!(a, b, "{name} ({kind:?}) must not be decayed");
        }
    }
    for k in ["Kernel", "Norm", "Activation", "Classifier", "Bias"] {
        assert!(kinds.contains(k), "reactnet-s has no {k} tensor: {kinds:?}");
    }
}

fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A two-step run (one epoch each, KD from a bmlp-f32 teacher) writes step
/// 1's run in DIR/step1 and step 2's in DIR with act_saturation per layer;
/// step 1 trains real weights, so its checkpoint says so; DIR/config.toml is
/// step 2's; resuming DIR continues in the step that was running.
#[test]
fn tiny_two_step_run_writes_both_steps_and_resumes_in_either_step() {
    let gpu = gpu();
    let tmp = TempDir::new("e2e");
    let data = small_fashion_mnist(tmp.path(), 100, 40);
    let teacher_path = tmp.path().join("teacher.safetensors");
    let teacher = build_model(&gpu, "bmlp-f32", 9).unwrap();
    let tcfg = TrainConfig {
        model: "bmlp-f32".into(),
        ..TrainConfig::default()
    };
    save_model(
        &gpu,
        teacher.store(),
        &teacher_path,
        &checkpoint_metadata(&tcfg, teacher.as_ref()),
    )
    .unwrap();

    let out = tmp.path().join("run");
    let mut cfg = recipe(data, out.clone());
    cfg.teacher = Some(teacher_path);
    cfg.first = FirstBinarized::Activations;
    let summary = train_with(gpu.clone(), &cfg, false, false).unwrap();
    assert_eq!(summary.epochs, 1, "step 2 trains the epochs after step 1");
    assert_eq!(run_state(&cfg), DirState::Finished, "judged by both steps");
    for dir in [out.join("step1"), out.clone()] {
        for f in [
            "config.toml",
            "metrics.jsonl",
            "best.safetensors",
            "last.safetensors",
            "summary.json",
        ] {
            assert!(dir.join(f).exists(), "{} missing", dir.join(f).display());
        }
        let lines = json_lines(&dir.join("metrics.jsonl"));
        assert_eq!(lines.len(), 1);
        let sat = &lines[0]["act_saturation"];
        for layer in ["fc2", "fc3"] {
            let v = sat[layer].as_f64().unwrap_or_else(|| panic!("{sat}"));
            assert!((0.0..=1.0).contains(&v), "{layer}: {v}");
        }
        assert!(lines[0]["flip_ratio"]["fc2"].is_number());
    }
    let meta: BTreeMap<String, String> =
        bitprop::checkpoint::load(&out.join("step1/best.safetensors"))
            .unwrap()
            .metadata;
    assert!(
        meta["binarization"].contains("real"),
        "step 1 trains real weights: {meta:?}"
    );
    let top = TrainConfig::from_toml_file(&out.join("config.toml")).unwrap();
    assert_eq!(top.adambnn_step, 2);
    assert_eq!(top.init, Some(out.join("step1/best.safetensors")));

    // Resume after the end: step 2 from its resume state, step 1 untouched.
    let step1_metrics = std::fs::read(out.join("step1/metrics.jsonl")).unwrap();
    std::fs::remove_file(out.join("summary.json")).unwrap();
    assert_eq!(run_state(&cfg), DirState::Interrupted, "killed in step 2");
    let mut again = top.clone();
    again.out = out.clone();
    train_with(gpu.clone(), &again, false, true).unwrap();
    assert!(out.join("summary.json").exists());
    assert_eq!(
        std::fs::read(out.join("step1/metrics.jsonl")).unwrap(),
        step1_metrics
    );
    assert_eq!(json_lines(&out.join("metrics.jsonl")).len(), 1);

    // Killed in step 1 (DIR/config.toml is still the recipe, step 1 has no
    // summary, step 2 has not started): resuming finishes step 1 from its
    // resume state, then runs step 2, which matches the uninterrupted one.
    let strip = |v: Vec<serde_json::Value>| -> Vec<serde_json::Value> {
        v.into_iter()
            .map(|mut m| {
                for k in [
                    "epoch_seconds",
                    "samples_per_s",
                    "gpu_bytes",
                    "gpu_bytes_allocated",
                ] {
                    m.as_object_mut().unwrap().remove(k);
                }
                m
            })
            .collect()
    };
    let step2_metrics = strip(json_lines(&out.join("metrics.jsonl")));
    for f in [
        "summary.json",
        "metrics.jsonl",
        "resume.safetensors",
        "best.safetensors",
        "last.safetensors",
    ] {
        std::fs::remove_file(out.join(f)).unwrap();
    }
    std::fs::remove_file(out.join("step1/summary.json")).unwrap();
    std::fs::write(out.join("config.toml"), cfg.to_toml()).unwrap();
    let mut recipe_again = TrainConfig::from_toml_file(&out.join("config.toml")).unwrap();
    recipe_again.out = out.clone();
    assert_eq!(recipe_again.adambnn_step, 0);
    assert_eq!(run_state(&cfg), DirState::Interrupted, "killed in step 1");
    train_with(gpu.clone(), &recipe_again, false, true).unwrap();
    assert!(out.join("step1/summary.json").exists());
    assert_eq!(
        std::fs::read(out.join("step1/metrics.jsonl")).unwrap(),
        step1_metrics,
        "step 1 was complete in its resume state: nothing retrained"
    );
    assert_eq!(strip(json_lines(&out.join("metrics.jsonl"))), step2_metrics);
    assert_eq!(run_state(&cfg), DirState::Finished);
    let mut other = cfg.clone();
    other.step1_weight_decay *= 2.0;
    assert_eq!(run_state(&other), DirState::Fresh, "another recipe");
}

/// Each step's rules, epochs and decay, and the recipe's checks.
#[test]
fn step_configs_and_recipe_checks() {
    use bitprop::nn::{ActRule, Binarization, WeightRule};
    let mut cfg = TrainConfig {
        method: MethodKind::Adambnn,
        epochs: 5,
        out: PathBuf::from("r"),
        ..TrainConfig::default()
    };
    let s1 = step_config(&cfg, 1);
    assert_eq!((s1.epochs, s1.out.clone()), (2, PathBuf::from("r/step1")));
    assert_eq!(s1.binarization().weights, WeightRule::Real);
    assert_eq!(s1.binarization().acts, ActRule::ClippedSte);
    assert_eq!(s1.weight_decay, 5e-6);
    let s2 = step_config(&cfg, 2);
    assert_eq!((s2.epochs, s2.weight_decay), (3, 0.0));
    assert_eq!(s2.binarization(), Binarization::default());
    cfg.first = FirstBinarized::Weights;
    let s1 = step_config(&cfg, 1);
    assert_eq!(s1.binarization().weights, WeightRule::ChannelMeanAbs);
    assert_eq!(s1.binarization().acts, ActRule::HardTanh);
    cfg.two_step = false;
    let one = step_config(&cfg, 2);
    assert_eq!((one.epochs, one.init.clone()), (5, None));
    assert_eq!(one.binarization(), Binarization::default());

    let err = |c: TrainConfig| c.validate().unwrap_err().to_string();
    let base = TrainConfig {
        method: MethodKind::Adambnn,
        ..TrainConfig::default()
    };
    assert!(
        err(TrainConfig {
            step1_epochs: Some(10),
            ..base.clone()
        })
        .contains("--step1-epochs")
    );
    assert!(
        err(TrainConfig {
            weight_decay: 1e-4,
            ..base.clone()
        })
        .contains("--step1-weight-decay")
    );
    assert!(
        err(TrainConfig {
            step1_weight_decay: f64::INFINITY,
            ..base.clone()
        })
        .contains("'step1_weight_decay'")
    );
    // Negative decay is a value the paper studies.
    TrainConfig {
        step1_weight_decay: -5e-4,
        ..base
    }
    .validate()
    .unwrap();
}

/// Bad recipe input through the CLI: one error line naming the flag, no panic.
#[test]
fn cli_names_bad_adambnn_flags() {
    let tmp = TempDir::new("cli");
    let data = small_fashion_mnist(tmp.path(), 20, 10);
    let out = tmp.path().join("run").to_string_lossy().to_string();
    let data = data.to_string_lossy().to_string();
    let cases: [(&[&str], &str); 4] = [
        (&["--first", "both"], "--first"),
        (&["--two-step", "maybe"], "--two-step"),
        (&["--kd-temperature", "-1"], "--kd-temperature"),
        (&["--teacher", "/nonexistent/t.safetensors"], "--teacher"),
    ];
    for (extra, flag) in cases {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_bitprop"))
            .args([
                "train", "--model", "bmlp", "--method", "adambnn", "--epochs", "2",
            ])
            .args([
                "--limit-train",
                "20",
                "--val",
                "0",
                "--data",
                &data,
                "--out",
                &out,
            ])
            .args(extra)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{extra:?} succeeded");
        assert!(err.contains(flag), "{extra:?}: {err}");
        assert!(!err.contains("panicked"), "{extra:?}: {err}");
    }
}
