//! Deployable models: `summary` predicts the `.bpm` size to the byte, the
//! packed model's CPU and GPU runtimes agree bit for bit and with the float
//! model's eval, every damaged file gets a clear error (never a panic), and
//! the export kernels match their CPU references.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, OnceLock};

use bitprop::Gpu;
use bitprop::data::{self, Batches, Dataset};
use bitprop::export::format::{ConvShape, HEADER_BYTES, Layer, MAGIC, TRAILER_BYTES, crc32};
use bitprop::export::gpu::{
    DeviceThreshold, logit_lut, logit_lut_cpu, pixel_conv_sign, pixel_conv_sign_cpu,
    threshold_sign, threshold_sign_cpu,
};
use bitprop::export::summary::summarize;
use bitprop::export::{
    BpmModel, CpuModel, GpuModel, describe, export_checkpoint, float_predictions,
};
use bitprop::nn::{MODEL_NAMES, Model, build_model};
use bitprop::optim::{DecayScope, Optimizer, OptimizerConfig, OptimizerKind};
use bitprop::tensor::Tensor;
use common::{Rng, gpu};

/// One device user at a time: wgpu's GL backend gives up (panics) when a
/// thread waits more than a second for the context another thread holds
/// through a long submission, as a bcnn training step is on llvmpipe.
fn device() -> (std::sync::MutexGuard<'static, ()>, Arc<Gpu>) {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    (guard, gpu())
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bitprop-export-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn fashion() -> &'static (Dataset, Dataset) {
    static DATA: OnceLock<(Dataset, Dataset)> = OnceLock::new();
    DATA.get_or_init(|| {
        data::load_fashion_mnist(std::path::Path::new(data::DEFAULT_FASHION_MNIST_DIR))
            .expect("the export tests train on Fashion-MNIST")
    })
}

/// A model of `name` trained for `steps` Adam steps of `batch` images (so
/// its batch-norm statistics and weights are those of a real run), saved as
/// a checkpoint the way `bitprop train` saves one.
fn trained(name: &str, steps: usize, batch: usize) -> (Box<dyn Model>, PathBuf) {
    let gpu = gpu();
    let model = build_model(&gpu, name, 7).unwrap();
    let mut opt = Optimizer::new(
        &gpu,
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
    .unwrap();
    let train = fashion().0.slice(0..steps * batch).unwrap();
    let mut batches = Batches::new(&train, batch, Some(3), 0).unwrap();
    let mut b = data::Batch::default();
    while batches.next_into(&mut b) {
        let (x, y) = bitprop::train::upload(&gpu, &b, &model.input_shape()).unwrap();
        bitprop::train::train_step(&gpu, model.as_ref(), &mut opt, x, &y, 2e-3).unwrap();
    }
    let path = tmp(&format!("{name}.safetensors"));
    let meta = BTreeMap::from([("model".to_string(), name.to_string())]);
    bitprop::train::files::save_model(&gpu, model.store(), &path, &meta).unwrap();
    (model, path)
}

/// The whole round: export, size, re-read, CPU vs GPU vs float model.
fn check_round_trip(name: &str, steps: usize, batch: usize, images: usize) {
    let (_device, gpu) = device();
    let t0 = std::time::Instant::now();
    let (model, ck) = trained(name, steps, batch);
    eprintln!("{name}: trained in {:.1} s", t0.elapsed().as_secs_f64());
    let packed = export_checkpoint(&ck).unwrap();
    let bytes = packed.to_bytes();

    // `summary` predicts the file size to the byte.
    let desc = describe(name).unwrap();
    let s = summarize(&desc, None);
    assert_eq!(
        s.bytes_deployed,
        Some(bytes.len() as u64),
        "{name}: summary vs file"
    );
    let ck_bytes = std::fs::metadata(&ck).unwrap().len();
    let ratio = ck_bytes as f64 / bytes.len() as f64;
    eprintln!(
        "{name}: checkpoint {ck_bytes} bytes, .bpm {} bytes, {ratio:.3}x",
        bytes.len()
    );
    assert!(
        ratio >= 25.0,
        "{name}: only {ratio:.2}x smaller than the checkpoint"
    );

    // The reader gives back exactly what was written.
    let read = BpmModel::from_bytes(&bytes).unwrap();
    assert_eq!(read, packed);

    let test = fashion().1.slice(0..images).unwrap();
    let cpu = CpuModel::new(&read).unwrap().run(&test.images, test.n, 2);
    let single = CpuModel::new(&read).unwrap().run(&test.images, test.n, 1);
    assert_eq!(cpu, single, "{name}: threads change nothing");
    let g = GpuModel::new(&gpu, &read).unwrap();
    // An odd device batch, so the last batch is partial.
    let dev = g.run(&test.images, test.n, 97).unwrap();
    assert_eq!(cpu.preds, dev.preds, "{name}: CPU and GPU predictions");
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&cpu.logits),
        bits(&dev.logits),
        "{name}: CPU and GPU logits"
    );

    eprintln!(
        "{name}: packed runs done at {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let float = float_predictions(&gpu, model.as_ref(), &test, 250).unwrap();
    eprintln!(
        "{name}: float eval done at {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let agree = float.iter().zip(&cpu.preds).filter(|(a, b)| a == b).count();
    let acc = |p: &[u32]| {
        p.iter()
            .zip(&test.labels)
            .filter(|(p, l)| **p == **l as u32)
            .count() as f64
            / test.n as f64
    };
    eprintln!(
        "{name}: packed vs float predictions agree on {agree}/{} images; accuracy {:.4} vs {:.4}",
        test.n,
        acc(&cpu.preds),
        acc(&float)
    );
    assert!(
        agree as f64 >= 0.999 * test.n as f64,
        "{name}: only {agree} of {} predictions agree with the float model",
        test.n
    );
    // Predictions spread over classes, so agreement is not trivial.
    let classes: std::collections::BTreeSet<u32> = float.iter().copied().collect();
    assert!(classes.len() >= 3, "{name}: predicted classes {classes:?}");
}

#[test]
fn bmlp_packs_exactly_and_runs_identically_on_cpu_and_gpu() {
    check_round_trip("bmlp", 6, 128, 1000);
}

#[test]
fn bcnn_packs_exactly_and_runs_identically_on_cpu_and_gpu() {
    check_round_trip("bcnn", 1, 32, 300);
}

/// The descriptions `summary` and `export` use list exactly the tensors the
/// models own, in checkpoint order.
#[test]
fn descriptions_match_the_models() {
    let (_device, gpu) = device();
    for name in MODEL_NAMES {
        let model = build_model(&gpu, name, 0).unwrap();
        let store: Vec<(String, Vec<usize>)> = model
            .store()
            .entries
            .iter()
            .map(|e| (e.name.clone(), e.value.shape().to_vec()))
            .collect();
        let desc = describe(name).unwrap();
        assert_eq!(desc.tensors(), store, "{name}");
        let s = summarize(&desc, None);
        assert_eq!(
            s.params_1bit + s.params_32bit,
            store
                .iter()
                .map(|(_, s)| s.iter().product::<usize>() as u64)
                .sum::<u64>(),
            "{name}"
        );
        assert_eq!(
            s.bytes_deployed.is_some(),
            matches!(*name, "bmlp" | "bcnn"),
            "{name}: exportable"
        );
        if s.bytes_deployed.is_none() {
            // Export refuses it with the reason, not a panic.
            let path = tmp(&format!("{name}-untrained.safetensors"));
            let meta = BTreeMap::from([("model".to_string(), name.to_string())]);
            bitprop::train::files::save_model(&gpu, model.store(), &path, &meta).unwrap();
            let e = format!("{:#}", export_checkpoint(&path).unwrap_err());
            assert!(
                e.contains("real-valued twin") || e.contains("do not fold"),
                "{name}: {e}"
            );
        }
    }
}

// ---- damaged files -------------------------------------------------------

/// Random sign rows of `bits` bits, padding bits 0.
fn words(rng: &mut Rng, rows: usize, bits: usize) -> Vec<u64> {
    let kw = bits.div_ceil(64);
    let mut w: Vec<u64> = (0..rows * kw).map(|_| rng.next_u64()).collect();
    if !bits.is_multiple_of(64) {
        for r in 0..rows {
            w[r * kw + kw - 1] &= (1u64 << (bits % 64)) - 1;
        }
    }
    w
}

/// Random thresholds within `+-range`, random flips.
fn thr(rng: &mut Rng, c: usize, range: i64, wide: bool) -> Layer {
    Layer::Threshold {
        threshold: (0..c)
            .map(|_| (rng.next_u64() % (2 * range as u64 + 1)) as i64 - range)
            .collect(),
        flip: (0..c).map(|_| rng.below(2) == 1).collect(),
        wide,
    }
}

fn logits(c: usize) -> Layer {
    let v = |a: f32, b: f32| (0..c).map(|i| a + b * i as f32).collect::<Vec<_>>();
    Layer::Logits(bitprop::export::format::LogitParams {
        eps: 1e-5,
        alpha: v(1.0, -0.05),
        gamma: (0..c)
            .map(|i| if i % 2 == 0 { 1.0 } else { -0.7 })
            .collect(),
        beta: v(0.0, 0.1),
        mean: v(0.0, 0.5),
        var: v(1.0, 0.5),
    })
}

/// A small valid file: a bcnn-shaped chain over a 4x4 image with random data.
fn small_model() -> BpmModel {
    let mut rng = Rng::new(11);
    let conv = |out, in_c| ConvShape {
        out,
        in_c,
        kh: 3,
        kw: 3,
        stride: 1,
        pad: 1,
    };
    let layers = vec![
        Layer::PixelConv {
            shape: conv(5, 1),
            shift: vec![10; 5],
            weights: (0..45).map(|_| rng.below(2001) as i32 - 1000).collect(),
        },
        thr(&mut rng, 5, 100_000, true),
        Layer::BinaryConv {
            shape: conv(7, 5),
            weights: words(&mut rng, 7 * 9, 5),
        },
        Layer::MaxPool2,
        thr(&mut rng, 7, 6, false),
        Layer::Flatten,
        Layer::BinaryDense {
            out: 3,
            inputs: 28,
            weights: words(&mut rng, 3, 28),
        },
        logits(3),
    ];
    BpmModel {
        name: "tiny".into(),
        input: [1, 4, 4],
        classes: 3,
        layers,
    }
}

/// Odd geometry: two input channels, non-square kernels, stride 2, a 1x1
/// conv over 70 channels (two words), odd pooling, weights at the limit.
fn odd_model() -> BpmModel {
    let mut rng = Rng::new(12);
    let shape = |out, in_c, kh, kw, stride, pad| ConvShape {
        out,
        in_c,
        kh,
        kw,
        stride,
        pad,
    };
    let layers = vec![
        Layer::PixelConv {
            shape: shape(3, 2, 3, 2, 2, 1),
            shift: vec![30; 3],
            weights: (0..36)
                .map(|_| (rng.next_u64() >> 33) as i32 - (1 << 30))
                .collect(),
        },
        thr(&mut rng, 3, 1 << 38, true),
        Layer::BinaryConv {
            shape: shape(70, 3, 2, 3, 1, 1),
            weights: words(&mut rng, 70 * 6, 3),
        },
        Layer::MaxPool2,
        thr(&mut rng, 70, 4, false),
        Layer::BinaryConv {
            shape: shape(5, 70, 1, 1, 1, 0),
            weights: words(&mut rng, 5, 70),
        },
        thr(&mut rng, 5, 10, false),
        Layer::Flatten,
        Layer::BinaryDense {
            out: 4,
            inputs: 10,
            weights: words(&mut rng, 4, 10),
        },
        logits(4),
    ];
    BpmModel {
        name: "odd".into(),
        input: [2, 7, 5],
        classes: 4,
        layers,
    }
}

/// Rewrites the trailer so a deliberately inconsistent file passes the checksum.
fn fix_crc(bytes: &mut [u8]) {
    let n = bytes.len() - TRAILER_BYTES;
    let crc = crc32(&bytes[..n]);
    bytes[n..].copy_from_slice(&crc.to_le_bytes());
}

fn err(bytes: &[u8]) -> String {
    BpmModel::from_bytes(bytes)
        .expect_err("a damaged file must not load")
        .to_string()
}

/// Offset of record `index`'s kind.
fn record_offset(bytes: &[u8], index: usize) -> usize {
    let mut off = HEADER_BYTES;
    for _ in 0..index {
        let len = u32::from_le_bytes(bytes[off + 4..off + 8].try_into().unwrap()) as usize;
        off += 8 + len;
    }
    off
}

#[test]
fn damaged_files_get_clear_errors() {
    let model = small_model();
    let good = model.to_bytes();
    assert_eq!(BpmModel::from_bytes(&good).unwrap(), model);
    assert_eq!(BpmModel::from_bytes(&good).unwrap().to_bytes(), good);

    // A model built in memory is checked before it runs, not panicked on.
    let mut bad = model.clone();
    if let Layer::BinaryConv { weights, .. } = &mut bad.layers[2] {
        weights.pop();
    }
    let e = CpuModel::new(&bad)
        .err()
        .expect("short weights")
        .to_string();
    assert!(
        e.contains("layer 2 (binary_conv)") && e.contains("weights"),
        "{e}"
    );
    let mut bad = model.clone();
    bad.layers.swap(3, 4);
    let e = CpuModel::new(&bad)
        .err()
        .expect("threshold before pool")
        .to_string();
    assert!(
        e.contains("layer 4 (max_pool2)") && e.contains("bits [7, 4, 4]"),
        "{e}"
    );
    // It runs (the reader's checks pass a real chain).
    let out = CpuModel::new(&model).unwrap().run(&[7u8; 32], 2, 1);
    assert_eq!(out.preds.len(), 2);

    let mut b = good.clone();
    b[0] = b'P';
    assert!(err(&b).contains("bad magic"), "{}", err(&b));
    assert!(err(b"PK\x03\x04").contains("bad magic"));

    let mut b = good.clone();
    b[8..12].copy_from_slice(&2u32.to_le_bytes());
    assert!(
        err(&b).contains("unsupported .bpm version 2"),
        "{}",
        err(&b)
    );

    // Every cut: truncated, never a panic.
    for cut in 0..good.len() {
        let e = err(&good[..cut]);
        assert!(e.contains("truncated"), "cut at {cut}: {e}");
    }
    let mut b = good.clone();
    b.push(0);
    assert!(err(&b).contains("trailing data"), "{}", err(&b));

    // Any flipped byte past the version: the checksum catches it.
    for pos in 12..good.len() {
        let mut b = good.clone();
        b[pos] ^= 0x20;
        let e = err(&b);
        assert!(
            e.contains("checksum mismatch")
                || (pos < 16 && e.contains("truncated"))
                || (pos < 16 && e.contains("trailing")),
            "byte {pos}: {e}"
        );
    }

    // Inconsistent records with a valid checksum name the layer and shape.
    // Layer 6 (binary_dense) claims 29 inputs: its input is 28 bits.
    let mut b = good.clone();
    let off = record_offset(&b, 6);
    b[off + 12..off + 16].copy_from_slice(&29u32.to_le_bytes());
    fix_crc(&mut b);
    let e = err(&b);
    assert!(
        e.contains("layer 6 (binary_dense)") && e.contains("29") && e.contains("[28]"),
        "{e}"
    );
    // Layer 2 (binary_conv) claims 6 input channels: its input has 5.
    let mut b = good.clone();
    let off = record_offset(&b, 2);
    b[off + 12..off + 16].copy_from_slice(&6u32.to_le_bytes());
    fix_crc(&mut b);
    let e = err(&b);
    assert!(
        e.contains("layer 2 (binary_conv)")
            && e.contains("6 input channels")
            && e.contains("[5, 4, 4]"),
        "{e}"
    );
    // 65 input channels need two words per weight row: the payload size no
    // longer matches, and that is said before anything is read.
    let mut b = good.clone();
    b[off + 12..off + 16].copy_from_slice(&65u32.to_le_bytes());
    fix_crc(&mut b);
    let e = err(&b);
    assert!(
        e.contains("layer 2 (binary_conv)") && e.contains("payload"),
        "{e}"
    );
    // Huge dimensions: rejected by size, nothing allocated.
    let mut b = good.clone();
    let off = record_offset(&b, 6);
    b[off + 8..off + 12].copy_from_slice(&(1u32 << 24).to_le_bytes());
    b[off + 12..off + 16].copy_from_slice(&(1u32 << 24).to_le_bytes());
    fix_crc(&mut b);
    assert!(err(&b).contains("layer 6 (binary_dense)"), "{}", err(&b));
    // A record length past the end of the file.
    let mut b = good.clone();
    let off = record_offset(&b, 3);
    b[off + 4..off + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    fix_crc(&mut b);
    assert!(err(&b).contains("layer 3 (max_pool2)"), "{}", err(&b));
    // An unknown kind.
    let mut b = good.clone();
    let off = record_offset(&b, 5);
    b[off..off + 4].copy_from_slice(&99u32.to_le_bytes());
    fix_crc(&mut b);
    assert!(err(&b).contains("unknown record kind 99"), "{}", err(&b));
    // A layer count the file does not hold (never pre-allocated).
    let mut b = good.clone();
    b[48..52].copy_from_slice(&u32::MAX.to_le_bytes());
    fix_crc(&mut b);
    assert!(err(&b).contains("layers"), "{}", err(&b));
    // A flip flag that is not 0 or 1.
    let mut b = good.clone();
    let off = record_offset(&b, 1);
    b[off + 16 + 5 * 8] = 7;
    fix_crc(&mut b);
    assert!(
        err(&b).contains("layer 1 (threshold)") && err(&b).contains("flip"),
        "{}",
        err(&b)
    );
    // Padding bits set in a weight row.
    let mut b = good.clone();
    let off = record_offset(&b, 6);
    b[off + 16 + 7] |= 0x80;
    fix_crc(&mut b);
    assert!(err(&b).contains("padding bits"), "{}", err(&b));
    // The chain must end in the header's logits.
    let mut b = good.clone();
    b[44..48].copy_from_slice(&4u32.to_le_bytes());
    fix_crc(&mut b);
    assert!(err(&b).contains("logits [4]"), "{}", err(&b));

    // Random damage with a valid checksum: an error or a model, never a panic.
    let mut rng = Rng::new(5);
    for _ in 0..3000 {
        let mut b = good.clone();
        for _ in 0..1 + rng.below(3) {
            let pos = HEADER_BYTES - 8 + rng.below(b.len() - HEADER_BYTES + 8 - TRAILER_BYTES);
            b[pos] = rng.next_u64() as u8;
        }
        fix_crc(&mut b);
        if let Ok(m) = BpmModel::from_bytes(&b) {
            // Whatever loads also runs.
            let n: usize = m.input.iter().product();
            if n <= 4096 {
                CpuModel::new(&m).unwrap().run(&vec![128u8; n], 1, 1);
            }
        }
    }
    assert_eq!(&good[..8], &MAGIC);
}

// ---- the CLI -------------------------------------------------------------

fn bitprop(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bitprop"))
        .args(args)
        .output()
        .expect("bitprop runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("panicked"),
        "bitprop {args:?} panicked: {stderr}"
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

#[test]
fn cli_reports_sizes_and_errors() {
    let model = small_model();
    let path = tmp("tiny.bpm");
    let mut bytes = model.to_bytes();
    let n = bytes.len();
    bytes[n / 2] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let p = path.to_str().unwrap();
    let (ok, _, e) = bitprop(&["infer", "--bpm", p, "--json"]);
    assert!(
        !ok && e.contains("checksum mismatch") && e.contains(p),
        "{e}"
    );
    std::fs::write(&path, &bytes[..100]).unwrap();
    let (ok, _, e) = bitprop(&["infer", "--bpm", p]);
    assert!(!ok && e.contains("truncated"), "{e}");

    for (name, deployed) in [
        ("bmlp", true),
        ("bcnn", true),
        ("reactnet-s", false),
        ("bcnn-f32", false),
    ] {
        let (ok, out, _) = bitprop(&["summary", "--model", name, "--json"]);
        assert!(ok);
        let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object on stdout");
        assert_eq!(v["bytes_deployed"].is_u64(), deployed, "{name}: {v}");
        assert_eq!(v["layers"].as_array().map(|l| !l.is_empty()), Some(true));
    }
    let (ok, _, e) = bitprop(&["summary", "--model", "nope"]);
    assert!(!ok && e.contains("unknown model 'nope'"), "{e}");
}

// ---- kernels ---------------------------------------------------------------

#[test]
fn threshold_sign_matches_cpu() {
    let (_device, gpu) = device();
    let mut rng = Rng::new(1);
    for &(n, c, s) in &[(1, 1, 1), (3, 5, 7), (2, 130, 1), (1, 64, 200), (4, 3, 97)] {
        let x: Vec<f32> = (0..n * c * s)
            .map(|_| rng.below(41) as f32 - 20.0)
            .collect();
        let mut thr: Vec<i64> = (0..c).map(|_| rng.below(41) as i64 - 20).collect();
        // Out-of-range thresholds make constant channels.
        thr[0] = [i64::MIN, 1 << 40][rng.below(2)];
        let flip: Vec<bool> = (0..c).map(|_| rng.below(2) == 1).collect();
        let t = DeviceThreshold::new(&gpu, &thr, &flip).unwrap();
        let xt = Tensor::from_f32(&gpu, &[n, c, s], &x).unwrap();
        let want = threshold_sign_cpu(&x, [n, c, s], &thr, &flip);
        if (n, c, s) == (4, 3, 97) {
            gpu.set_grid_limit(3);
        }
        let got = threshold_sign(&gpu, &xt, &t).unwrap().to_f32(&gpu).unwrap();
        gpu.set_grid_limit(u32::MAX);
        assert_eq!(got, want, "[{n}, {c}, {s}]");
    }
}

#[test]
fn pixel_conv_sign_matches_cpu() {
    let (_device, gpu) = device();
    let mut rng = Rng::new(2);
    let cases = [
        (1, 1, 1, 1, 1, 1, 1, 0, 1),
        (2, 1, 5, 7, 3, 3, 3, 1, 1),
        (1, 3, 9, 6, 70, 3, 3, 1, 2),
        (3, 2, 4, 4, 5, 1, 1, 0, 1),
        (2, 1, 28, 28, 4, 3, 3, 1, 1),
    ];
    for (i, &(n, c, h, w, o, kh, kw, pad, stride)) in cases.iter().enumerate() {
        let shape = ConvShape {
            out: o,
            in_c: c,
            kh,
            kw,
            stride,
            pad,
        };
        let x: Vec<f32> = (0..n * c * h * w)
            .map(|_| 2.0 * rng.below(256) as f32 - 255.0)
            .collect();
        // Weights up to the exporter's limit |q| <= 2^30 (255 * 27 * 2^30 < 2^45),
        // so the two-word sums carry in both directions.
        let taps = c * kh * kw;
        let q: Vec<i32> = (0..o * taps)
            .map(|_| (rng.next_u64() >> 33) as i32 - (1 << 30))
            .collect();
        let flip: Vec<bool> = (0..o).map(|_| rng.below(2) == 1).collect();
        // Thresholds equal to sums that occur (the boundary of >= and <=),
        // off by one, or outside any sum's range.
        let sums = pixel_conv_sign_cpu(&x, [n, c, h, w], &q, &shape, &vec![0; o], &flip);
        let (oh, ow) = shape.out_hw(h, w).unwrap();
        let exact = |b: usize, ch: usize, p: usize| -> i64 {
            let (oy, ox) = (p / ow, p % ow);
            let mut s = 0i64;
            for ci in 0..c {
                for ky in 0..kh {
                    for kx in 0..kw {
                        let iy = (oy * stride + ky) as isize - pad as isize;
                        let ix = (ox * stride + kx) as isize - pad as isize;
                        if iy >= 0 && ix >= 0 && iy < h as isize && ix < w as isize {
                            let a = x[((b * c + ci) * h + iy as usize) * w + ix as usize];
                            s += a as i64 * q[((ch * c + ci) * kh + ky) * kw + kx] as i64;
                        }
                    }
                }
            }
            s
        };
        assert_eq!(sums.len(), n * o * oh * ow);
        let thr: Vec<i64> = (0..o)
            .map(|ch| match rng.below(5) {
                0 => [i64::MIN, i64::MAX, 1 << 50, -(1 << 50)][rng.below(4)],
                k => exact(rng.below(n), ch, rng.below(oh * ow)) + [0, 0, 1, -1][k - 1],
            })
            .collect();
        let t = DeviceThreshold::wide(&gpu, &thr, &flip).unwrap();
        let xt = Tensor::from_f32(&gpu, &[n, c, h, w], &x).unwrap();
        let qt = Tensor::from_u32(
            &gpu,
            &[q.len()],
            &q.iter().map(|&v| v as u32).collect::<Vec<_>>(),
        )
        .unwrap();
        let want = pixel_conv_sign_cpu(&x, [n, c, h, w], &q, &shape, &thr, &flip);
        if i == 4 {
            gpu.set_grid_limit(3);
        }
        let got = pixel_conv_sign(&gpu, &xt, &qt, &shape, &t)
            .unwrap()
            .to_f32(&gpu)
            .unwrap();
        gpu.set_grid_limit(u32::MAX);
        assert_eq!(got, want, "case {i}");
        // Both signs occur, so the comparison can fail.
        assert!(
            want.contains(&1.0) && want.contains(&-1.0) || want.len() < 8,
            "case {i}"
        );
    }
}

#[test]
fn logit_lut_matches_cpu() {
    let (_device, gpu) = device();
    let mut rng = Rng::new(3);
    for &(n, c, lo, span) in &[(1, 1, 0, 1), (5, 10, -64, 129), (130, 3, -7, 15)] {
        let table = rng.vec(c * span);
        let s: Vec<f32> = (0..n * c)
            .map(|_| (lo + rng.below(span) as i32) as f32)
            .collect();
        let st = Tensor::from_f32(&gpu, &[n, c], &s).unwrap();
        let tt = Tensor::from_f32(&gpu, &[c, span], &table).unwrap();
        if n == 130 {
            gpu.set_grid_limit(3);
        }
        let got = logit_lut(&gpu, &st, &tt, lo).unwrap().to_f32(&gpu).unwrap();
        gpu.set_grid_limit(u32::MAX);
        assert_eq!(
            got,
            logit_lut_cpu(&s, c, &table, lo),
            "[{n}, {c}] span {span}"
        );
    }
}

/// The GPU runtime on small random chains (flip flags, pixel conv, odd
/// shapes and strides, pooling, flatten) matches the CPU runtime bit for bit.
#[test]
fn small_chains_run_identically_on_cpu_and_gpu() {
    let (_device, gpu) = device();
    for model in [small_model(), odd_model()] {
        let bytes = model.to_bytes();
        assert_eq!(BpmModel::from_bytes(&bytes).unwrap(), model);
        let mut rng = Rng::new(9);
        let n = 37;
        let p: usize = model.input.iter().product();
        let pixels: Vec<u8> = (0..n * p).map(|_| rng.next_u64() as u8).collect();
        let cpu = CpuModel::new(&model).unwrap().run(&pixels, n, 2);
        let dev = GpuModel::new(&gpu, &model)
            .unwrap()
            .run(&pixels, n, 16)
            .unwrap();
        assert_eq!(cpu.preds, dev.preds, "{}", model.name);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&cpu.logits), bits(&dev.logits), "{}", model.name);
        // Not all one class: the comparison can fail.
        let classes: std::collections::BTreeSet<u32> = cpu.preds.iter().copied().collect();
        assert!(classes.len() >= 2, "{}: {:?}", model.name, cpu.preds);
    }
}

/// The fuzzer's seed corpus is current: each seed is a valid file of the
/// present format version (a stale seed would only test the version check).
#[test]
fn bpm_fuzz_seeds_parse_as_the_test_models() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/bpm");
    for (file, model) in [("small.bpm", small_model()), ("odd.bpm", odd_model())] {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        assert_eq!(BpmModel::from_bytes(&bytes).unwrap(), model, "{file}");
    }
}
