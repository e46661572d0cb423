//! Kill test: a small training run is killed with SIGKILL at random moments
//! and resumed each time; every checkpoint on disk must load, and the final
//! metrics and model must equal an uninterrupted run's, bit for bit (the
//! kernels are deterministic: no float atomics, fixed reduction orders).
//! `BITPROP_KILLS=20` runs the long form (default 3 in CI).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bitprop::checkpoint::{self, TensorData};

fn bitprop() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bitprop"))
}

const ARGS: &[&str] = &[
    "train",
    "--model",
    "bmlp",
    "--epochs",
    "2",
    "--batch",
    "128",
    "--limit-train",
    "1024",
    "--val",
    "128",
    "--checkpoint-every",
    "2",
    "--seed",
    "5",
];

fn run_to_end(args: &[&str]) {
    let out = bitprop()
        .args(args)
        .stdout(Stdio::null())
        .output()
        .expect("bitprop runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !err.contains("panicked"),
        "bitprop {args:?} failed: {err}"
    );
}

/// Metrics without the fields that measure time or memory.
fn metrics(dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).expect("metrics.jsonl");
    text.lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            for k in [
                "epoch_seconds",
                "samples_per_s",
                "gpu_bytes",
                "gpu_bytes_allocated",
            ] {
                v.as_object_mut().unwrap().remove(k);
            }
            v
        })
        .collect()
}

fn tensors(path: &Path) -> Vec<(String, Vec<usize>, Vec<u32>)> {
    let ck =
        checkpoint::load(path).unwrap_or_else(|e| panic!("{} does not load: {e}", path.display()));
    ck.tensors
        .into_iter()
        .map(|(name, (shape, data))| match data {
            TensorData::F32(v) => (name, shape, v.iter().map(|x| x.to_bits()).collect()),
            TensorData::I64(v) => (name, shape, v.iter().map(|x| *x as u32).collect()),
            TensorData::U64(v) => (name, shape, v.iter().map(|x| *x as u32).collect()),
        })
        .collect()
}

#[test]
fn killed_and_resumed_run_equals_an_uninterrupted_one() {
    let kills: usize = std::env::var("BITPROP_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let base = std::env::temp_dir().join(format!("bitprop-kill-{}", std::process::id()));
    let (whole, killed) = (base.join("whole"), base.join("killed"));
    let _ = std::fs::remove_dir_all(&base);

    let mut args: Vec<&str> = ARGS.to_vec();
    let whole_s = whole.to_string_lossy().to_string();
    args.extend(["--out", &whole_s]);
    let t = Instant::now();
    run_to_end(&args);
    let full = t.elapsed();

    let killed_s = killed.to_string_lossy().to_string();
    let mut args: Vec<&str> = ARGS.to_vec();
    args.extend(["--out", &killed_s]);
    // Kill moments spread over the run, seeded so failures reproduce.
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut done = false;
    let mut killed_count = 0;
    for i in 0..kills {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Lives average 0.8/kills of the whole run's time (start-up
        // included), so every kill lands before the run can end.
        let span = (full.as_millis() as u64 * 8 / 5 / kills as u64).max(1);
        let wait = Duration::from_millis(300 + seed % span);
        let resume_args = ["train", "--resume", &killed_s];
        let mut child = if i == 0 || !killed.join("resume.safetensors").exists() {
            bitprop()
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        } else {
            bitprop()
                .args(resume_args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        }
        .expect("bitprop starts");
        std::thread::sleep(wait);
        if child.try_wait().expect("wait").is_some() {
            done = true;
            break;
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        killed_count += 1;
        // Every file a killed run leaves must load.
        for f in ["last.safetensors", "best.safetensors", "resume.safetensors"] {
            let p = killed.join(f);
            if p.exists() {
                tensors(&p);
            }
        }
    }
    if !done {
        if killed.join("resume.safetensors").exists() {
            run_to_end(&["train", "--resume", &killed_s]);
        } else {
            run_to_end(&args);
        }
    }
    eprintln!("{killed_count} kills");
    // On a loaded machine a life can run further than planned and the run
    // end early; at least one kill must have landed for the test to mean
    // anything (`BITPROP_KILLS=20` on a quiet machine lands all 20).
    assert!(killed_count >= 1, "the run ended before the first kill");
    assert_eq!(
        metrics(&whole),
        metrics(&killed),
        "metrics differ after {killed_count} kills"
    );
    for f in ["last.safetensors", "best.safetensors"] {
        assert_eq!(
            tensors(&whole.join(f)),
            tensors(&killed.join(f)),
            "{f} differs after {killed_count} kills"
        );
    }
    let _ = std::fs::remove_dir_all(&base);
}

/// A NaN in step 10's batch (injected through BITPROP_INJECT_NAN_AT_STEP):
/// `--on-nan stop` exits non-zero naming the epoch, step and tensor and
/// leaves epoch 1's checkpoint untouched; `--on-nan skip-batch` finishes and
/// counts the skipped batch.
#[test]
fn non_finite_values_stop_or_skip_and_keep_the_last_checkpoint() {
    let base = std::env::temp_dir().join(format!("bitprop-nan-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let dir = base.join("stop");
    let dir_s = dir.to_string_lossy().to_string();
    let common = [
        "train",
        "--model",
        "bmlp",
        "--epochs",
        "2",
        "--batch",
        "128",
        "--limit-train",
        "1152",
        "--val",
        "128",
    ];
    // 8 steps per epoch: step 10 is in epoch 2.
    let mut args = common.to_vec();
    args.extend(["--out", &dir_s, "--on-nan", "stop"]);
    let out = bitprop()
        .args(&args)
        .env("BITPROP_INJECT_NAN_AT_STEP", "10")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a NaN must stop the run: {err}");
    assert!(!err.contains("panicked"), "{err}");
    // The NaN pixel reaches fc1's and bn1's gradients; the loss stays finite
    // because sign(NaN) is -1.
    assert!(
        err.contains("epoch 2")
            && err.contains("step 10")
            && err.contains("the gradient of fc1.weight"),
        "message must name epoch, step and tensor: {err}"
    );
    let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 1, "only epoch 1 completed");
    // The checkpoint of epoch 1 is intact and loads.
    tensors(&dir.join("last.safetensors"));

    let dir = base.join("skip");
    let dir_s = dir.to_string_lossy().to_string();
    let mut args = common.to_vec();
    args.extend(["--out", &dir_s, "--on-nan", "skip-batch"]);
    let out = bitprop()
        .args(&args)
        .env("BITPROP_INJECT_NAN_AT_STEP", "10")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("panicked"), "{err}");
    let last: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(dir.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(last["skipped_batches"], 1, "{last}");
    assert!(last["train_loss"].as_f64().unwrap().is_finite(), "{last}");
    // The running statistics were not poisoned: the test accuracy is a number well above chance.
    assert!(last["test_acc"].as_f64().unwrap() > 0.5, "{last}");
    let _ = std::fs::remove_dir_all(&base);
}
