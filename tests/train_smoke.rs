//! End to end: a short run on a slice of Fashion-MNIST lowers the loss,
//! writes every file with its keys, keeps device memory flat after the first
//! epoch, and its checkpoint round-trips bit for bit.

mod common;

use bitprop::autograd::Tape;
use bitprop::data::{Batch, Batches, DEFAULT_FASHION_MNIST_DIR, load_fashion_mnist};
use bitprop::nn::{Binarization, Ctx, build_model, build_model_sized, width_from_metadata};
use bitprop::train::files::{checkpoint_metadata, load_model, save_model};
use bitprop::train::{TrainConfig, train, upload};
use common::gpu;

fn config(dir: &std::path::Path) -> TrainConfig {
    TrainConfig {
        model: "bmlp".into(),
        epochs: 3,
        batch: 128,
        limit_train: 1536,
        val: Some(256),
        out: dir.to_path_buf(),
        ..TrainConfig::default()
    }
}

#[test]
fn short_run_learns_writes_its_files_and_keeps_memory_flat() {
    // A device of its own: the pool's byte counts must not see other tests' tensors.
    let gpu = bitprop::Gpu::from_env()
        .expect("a GPU adapter (lavapipe: apt-get install mesa-vulkan-drivers)");
    let dir = std::env::temp_dir().join(format!("bitprop-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let summary = train(gpu, &config(&dir), false).expect("training runs");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
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
        assert!(
            lines[0].get(key).is_some(),
            "metrics.jsonl lacks {key}: {}",
            lines[0]
        );
    }
    let loss = |i: usize| lines[i]["train_loss"].as_f64().unwrap();
    assert!(
        loss(2) < loss(0),
        "train loss did not fall: {} -> {}",
        loss(0),
        loss(2)
    );
    assert!(
        summary.final_test_acc > 0.6,
        "test accuracy {} is near chance",
        summary.final_test_acc
    );
    // Memory is flat after the first epoch: the pool reuses every buffer.
    let bytes = |i: usize| lines[i]["gpu_bytes_allocated"].as_u64().unwrap();
    assert_eq!(
        bytes(1),
        bytes(2),
        "device memory grew between epochs 2 and 3"
    );
    let in_use = |i: usize| lines[i]["gpu_bytes"].as_u64().unwrap();
    assert_eq!(
        in_use(1),
        in_use(2),
        "live device bytes grew between epochs 2 and 3"
    );
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    for key in [
        "model",
        "adapter",
        "epochs",
        "final_test_acc",
        "best_val_acc",
        "best_test_acc",
        "total_seconds",
    ] {
        assert!(s.get(key).is_some(), "summary.json lacks {key}");
    }
    assert!(
        std::fs::read_to_string(dir.join("config.toml"))
            .unwrap()
            .contains("model = \"bmlp\"")
    );
    let png = std::fs::read(dir.join("curves.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    for f in ["best.safetensors", "last.safetensors"] {
        bitprop::checkpoint::load(&dir.join(f)).expect("checkpoint loads");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Eval-mode logits of `model` on the first 100 test images.
fn logits(gpu: &std::sync::Arc<bitprop::Gpu>, model: &dyn bitprop::nn::Model) -> Vec<f32> {
    let (_, test) = load_fashion_mnist(DEFAULT_FASHION_MNIST_DIR.as_ref()).unwrap();
    let test = test.limit(100);
    let mut b = Batch::default();
    Batches::new(&test, 100, None, 0).unwrap().next_into(&mut b);
    let (x, _) = upload(gpu, &b, &model.input_shape()).unwrap();
    let mut tape = Tape::new(gpu.clone());
    let mut ctx = Ctx::for_model(&mut tape, model, false);
    let xv = ctx.tape.leaf(x, false);
    let y = model.forward(&mut ctx, xv).unwrap();
    tape.value(y).to_f32(gpu).unwrap()
}

#[test]
fn checkpoints_round_trip_bit_for_bit_and_load_strictly() {
    let gpu = gpu();
    let dir = std::env::temp_dir().join(format!("bitprop-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["bmlp", "bcnn", "reactnet-s"] {
        // Seed 3's weights and fresh statistics; a second model from seed 4 differs.
        let model = build_model(&gpu, name, 3).unwrap();
        let path = dir.join(format!("{name}.safetensors"));
        save_model(
            &gpu,
            model.store(),
            &path,
            &checkpoint_metadata(&config(&dir), model.as_ref()),
        )
        .unwrap();
        let mut other = build_model(&gpu, name, 4).unwrap();
        assert_ne!(
            logits(&gpu, model.as_ref()),
            logits(&gpu, other.as_ref()),
            "{name}: seeds must differ"
        );
        load_model(&gpu, other.store_mut(), &path).unwrap();
        let a = logits(&gpu, model.as_ref());
        let b = logits(&gpu, other.as_ref());
        assert_eq!(
            a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{name}: logits differ after a round trip"
        );
    }
    // Strict loading: a bcnn checkpoint into a bmlp names a tensor.
    let mut bmlp = build_model(&gpu, "bmlp", 0).unwrap();
    let err = load_model(&gpu, bmlp.store_mut(), &dir.join("bcnn.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("fc1.weight") || err.contains("conv1.weight"),
        "error must name a tensor: {err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A narrower model (`--width`) has its hidden widths scaled, records the
/// multiplier in its checkpoint, and a model rebuilt from that metadata
/// loads it strictly with identical logits.
#[test]
fn narrow_models_record_their_width_and_round_trip() {
    let gpu = gpu();
    let dir = std::env::temp_dir().join(format!("bitprop-width-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, tensor, shape) in [
        ("bmlp", "fc2.weight", vec![256, 256]),
        ("bcnn", "fc.weight", vec![10, 32 * 49]),
        ("reactnet-s", "block0.conv.weight", vec![8, 8, 3, 3]),
    ] {
        let model = build_model_sized(&gpu, name, 3, Binarization::default(), 0.25).unwrap();
        let e = model
            .store()
            .entries
            .iter()
            .find(|e| e.name == tensor)
            .unwrap();
        assert_eq!(e.value.shape(), &shape[..], "{name} {tensor}");
        let path = dir.join(format!("{name}.safetensors"));
        let meta = checkpoint_metadata(&config(&dir), model.as_ref());
        assert_eq!(width_from_metadata(&meta).unwrap(), 0.25);
        save_model(&gpu, model.store(), &path, &meta).unwrap();
        let mut other = build_model_sized(&gpu, name, 4, Binarization::default(), 0.25).unwrap();
        load_model(&gpu, other.store_mut(), &path).unwrap();
        assert_eq!(
            logits(&gpu, model.as_ref()),
            logits(&gpu, other.as_ref()),
            "{name}"
        );
        // The full-width model refuses the narrow checkpoint, naming a tensor.
        let mut full = build_model(&gpu, name, 0).unwrap();
        let err = load_model(&gpu, full.store_mut(), &path)
            .unwrap_err()
            .to_string();
        assert!(err.contains(".weight"), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
