use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};

use super::{Cli, print_json};
use crate::export::{CpuModel, GpuModel, Outputs, read_bpm};
use crate::gpu::Gpu;

/// Where `infer` runs the packed model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InferDevice {
    /// The multi-threaded CPU runtime (u64 XNOR-popcount).
    Cpu,
    /// The GPU kernels (the adapter --backend / --adapter choose).
    Gpu,
}

#[derive(Args, Debug)]
pub struct InferArgs {
    /// A packed model written by `bitprop export`.
    #[arg(long)]
    bpm: PathBuf,
    /// Directory with the Fashion-MNIST IDX files.
    #[arg(long, default_value = crate::data::DEFAULT_FASHION_MNIST_DIR)]
    data: PathBuf,
    /// cpu or gpu.
    #[arg(long, value_enum, default_value = "cpu")]
    device: InferDevice,
    /// CPU threads (0: all the CPU has).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Evaluate only the first N test images (0: all).
    #[arg(long, default_value_t = 0)]
    limit: usize,
    /// Single-image runs timed for the batch-1 latency (median).
    #[arg(long, default_value_t = 50)]
    latency_runs: usize,
    /// Also run this float checkpoint's eval (on the GPU) and report how many
    /// predictions agree with the packed model's.
    #[arg(long)]
    compare: Option<PathBuf>,
    /// Write the predicted class of each test image to this file, one per line.
    #[arg(long)]
    predictions: Option<PathBuf>,
    /// Print `{"test_acc": .., "images_per_s": .., "latency_ms_batch1": .., ...}` on stdout.
    #[arg(long)]
    json: bool,
}

/// Images per batch for the throughput figure.
const BATCH: usize = 256;

fn median_ms(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

pub fn run(cli: &Cli, args: &InferArgs) -> anyhow::Result<()> {
    let model = read_bpm(&args.bpm)?;
    let (_, test) = crate::data::load_fashion_mnist(&args.data)?;
    let test = if args.limit > 0 {
        test.limit(args.limit)
    } else {
        test
    };
    let pixels = model.input.iter().product::<usize>();
    anyhow::ensure!(
        test.pixels() == pixels,
        "{}: the model takes {:?} images, the data set has {}x{}",
        args.bpm.display(),
        model.input,
        test.rows,
        test.cols
    );
    anyhow::ensure!(test.n > 0, "no test images");
    let n = test.n;
    let threads = if args.threads == 0 {
        std::thread::available_parallelism().map_or(1, |t| t.get())
    } else {
        args.threads
    };
    let gpu = if args.device == InferDevice::Gpu || args.compare.is_some() {
        Some(Gpu::new(&cli.device_options()?)?)
    } else {
        None
    };
    let reps = args.latency_runs.max(1);
    let (outputs, seconds, latency, device) = match args.device {
        InferDevice::Cpu => {
            let cpu = CpuModel::new(&model)?;
            // Warm-up: page in the weights and start the threads once.
            cpu.run(&test.images[..pixels * BATCH.min(n)], BATCH.min(n), threads);
            let t = Instant::now();
            let mut out = Outputs {
                preds: Vec::with_capacity(n),
                logits: Vec::new(),
            };
            for start in (0..n).step_by(BATCH) {
                let m = BATCH.min(n - start);
                let o = cpu.run(
                    &test.images[start * pixels..(start + m) * pixels],
                    m,
                    threads,
                );
                out.preds.extend(o.preds);
                out.logits.extend(o.logits);
            }
            let seconds = t.elapsed().as_secs_f64();
            let lat: Vec<f64> = (0..reps)
                .map(|i| {
                    let img = &test.images[(i % n) * pixels..(i % n + 1) * pixels];
                    let t = Instant::now();
                    std::hint::black_box(cpu.run(img, 1, 1));
                    t.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            (
                out,
                seconds,
                median_ms(lat),
                format!("cpu ({threads} threads)"),
            )
        }
        InferDevice::Gpu => {
            let gpu = gpu.as_ref().expect("opened above");
            let g = GpuModel::new(gpu, &model)?;
            g.run(&test.images[..pixels * BATCH.min(n)], BATCH.min(n), BATCH)?;
            let t = Instant::now();
            let out = g.run(&test.images, n, BATCH)?;
            let seconds = t.elapsed().as_secs_f64();
            let mut lat = Vec::with_capacity(reps);
            for i in 0..reps {
                let img = &test.images[(i % n) * pixels..(i % n + 1) * pixels];
                let t = Instant::now();
                let (_, preds) = g.forward(img, 1)?;
                preds.to_u32(gpu)?;
                lat.push(t.elapsed().as_secs_f64() * 1e3);
            }
            (out, seconds, median_ms(lat), gpu.description())
        }
    };
    let correct = outputs
        .preds
        .iter()
        .zip(&test.labels)
        .filter(|(p, l)| **p == **l as u32)
        .count();
    let test_acc = correct as f64 / n as f64;
    let images_per_s = n as f64 / seconds;
    eprintln!(
        "{} ({}) on {device}: test accuracy {test_acc:.4} ({n} images), {images_per_s:.0} images/s at batch {BATCH}, latency {latency:.3} ms at batch 1",
        args.bpm.display(),
        model.name,
    );
    let mut json = serde_json::json!({
        "model": model.name,
        "device": device,
        "images": n,
        "test_acc": test_acc,
        "images_per_s": images_per_s,
        "latency_ms_batch1": latency,
        "batch": BATCH,
    });
    if let Some(ck) = &args.compare {
        let gpu = gpu.as_ref().expect("opened above");
        let meta = crate::checkpoint::load(ck)?.metadata;
        let name = meta
            .get("model")
            .ok_or_else(|| anyhow::anyhow!("checkpoint {}: no 'model' metadata", ck.display()))?;
        let bin = crate::nn::Binarization::from_metadata(&meta)?;
        let width = crate::nn::width_from_metadata(&meta)?;
        let mut float = crate::nn::build_model_sized(gpu, name, 0, bin, width)?;
        crate::train::files::load_model(gpu, float.store_mut(), ck)?;
        let t = Instant::now();
        let fp = crate::export::float_predictions(gpu, float.as_ref(), &test, BATCH)?;
        let float_seconds = t.elapsed().as_secs_f64();
        let agree = fp
            .iter()
            .zip(&outputs.preds)
            .filter(|(a, b)| a == b)
            .count();
        let float_correct = fp
            .iter()
            .zip(&test.labels)
            .filter(|(p, l)| **p == **l as u32)
            .count();
        eprintln!(
            "float checkpoint {} (eval on {}): test accuracy {:.4}, {:.0} images/s at batch {BATCH}; predictions agree on {agree} of {n} images ({:.4}%)",
            ck.display(),
            gpu.description(),
            float_correct as f64 / n as f64,
            n as f64 / float_seconds,
            100.0 * agree as f64 / n as f64
        );
        json["float_images_per_s"] = (n as f64 / float_seconds).into();
        json["float_test_acc"] = (float_correct as f64 / n as f64).into();
        json["agreement"] = (agree as f64 / n as f64).into();
        json["agreeing_images"] = agree.into();
    }
    if let Some(path) = &args.predictions {
        let text: String = outputs.preds.iter().map(|p| format!("{p}\n")).collect();
        crate::train::files::write_atomic(path, text.as_bytes())?;
    }
    if args.json {
        print_json(&json)?;
    }
    Ok(())
}
