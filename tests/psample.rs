//! Periodic sampling: running sums, PWALKS's last K, PSWM's extrapolation
//! and the batch-norm re-estimation, against CPU computations.

mod common;

use bitprop::Tensor;
use bitprop::autograd::Var;
use bitprop::data::Dataset;
use bitprop::gpu::{Gpu, GpuError};
use bitprop::methods::psample::{
    PeriodicSampling, Sampling, SamplingConfig, reestimate_batch_norm,
};
use bitprop::nn::layers::BatchNorm;
use bitprop::nn::{Ctx, Model, ParamKind, ParamStore};
use common::{Rng, assert_close, checkpoint_bits, gpu, metrics_without_timing};

/// One trainable tensor `w` of 37 values and a batch norm over the 784 pixels.
struct Tiny {
    store: ParamStore,
    bn: BatchNorm,
}

impl Tiny {
    fn new(gpu: &Gpu) -> Tiny {
        let mut store = ParamStore::default();
        store
            .add(gpu, "w", ParamKind::Kernel, &[37], &[0.0; 37])
            .unwrap();
        let bn = BatchNorm::new(gpu, &mut store, "bn", 784).unwrap();
        Tiny { store, bn }
    }

    fn set_w(&mut self, gpu: &Gpu, v: &[f32]) {
        self.store.entries[0].value = Tensor::from_f32(gpu, &[37], v).unwrap();
    }

    fn w(&self, gpu: &Gpu) -> Vec<f32> {
        self.store.entries[0].value.to_f32(gpu).unwrap()
    }
}

impl Model for Tiny {
    fn name(&self) -> &str {
        "tiny"
    }
    fn store(&self) -> &ParamStore {
        &self.store
    }
    fn store_mut(&mut self) -> &mut ParamStore {
        &mut self.store
    }
    fn input_shape(&self) -> Vec<usize> {
        vec![784]
    }
    fn forward(&self, ctx: &mut Ctx, x: Var) -> Result<Var, GpuError> {
        self.bn.forward(ctx, x)
    }
}

fn config(kind: Sampling) -> SamplingConfig {
    SamplingConfig {
        kind,
        period: 10,
        every: 1,
        pwalks_k: 3,
        pswm_mu: 0.5,
        start: 1,
        stop: 0,
        bn_batches: 4,
    }
}

fn mean_of(samples: &[Vec<f32>]) -> Vec<f32> {
    (0..37)
        .map(|i| (samples.iter().map(|s| s[i] as f64).sum::<f64>() / samples.len() as f64) as f32)
        .collect()
}

/// Replaces w with the method's replacement and returns the new values (the BN tensors are
/// sampled too; only w is checked).
fn replaced(gpu: &Gpu, ps: &mut PeriodicSampling, model: &mut Tiny) -> Vec<f32> {
    let new = ps.replacement(gpu).unwrap();
    for (id, t) in new {
        model.store.entries[id.0].value = t;
    }
    model.w(gpu)
}

#[test]
fn pswa_running_sum_is_the_mean_of_explicit_copies() {
    let gpu = gpu();
    let mut rng = Rng::new(40);
    let mut model = Tiny::new(&gpu);
    let mut ps = PeriodicSampling::new(config(Sampling::Pswa));
    let samples: Vec<Vec<f32>> = (0..6).map(|_| rng.vec(37)).collect();
    for s in &samples {
        model.set_w(&gpu, s);
        ps.sample(&gpu, &model).unwrap();
    }
    // Sums of 6 values in [-1, 1] then one multiply: a few ulps.
    assert_close(
        "pswa",
        &replaced(&gpu, &mut ps, &mut model),
        &mean_of(&samples),
        1e-6,
        1e-5,
    );
}

#[test]
fn pwalks_keeps_exactly_the_last_k() {
    let gpu = gpu();
    let mut rng = Rng::new(41);
    let mut model = Tiny::new(&gpu);
    let mut ps = PeriodicSampling::new(config(Sampling::Pwalks));
    let samples: Vec<Vec<f32>> = (0..7).map(|_| rng.vec(37)).collect();
    for s in &samples {
        model.set_w(&gpu, s);
        ps.sample(&gpu, &model).unwrap();
    }
    assert_close(
        "pwalks",
        &replaced(&gpu, &mut ps, &mut model),
        &mean_of(&samples[4..]),
        1e-6,
        1e-5,
    );
}

#[test]
fn pswm_extrapolates_from_the_previous_period_mean() {
    let gpu = gpu();
    let mut model = Tiny::new(&gpu);
    let mut ps = PeriodicSampling::new(config(Sampling::Pswm));
    let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.25).collect();
    let b: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.5).collect();
    let c: Vec<f32> = (0..37).map(|i| (i % 5) as f32).collect();
    // Period 1 (no previous mean): PSWA, m1 = (a + b) / 2.
    for s in [&a, &b] {
        model.set_w(&gpu, s);
        ps.sample(&gpu, &model).unwrap();
    }
    let m1: Vec<f32> = a.iter().zip(&b).map(|(x, y)| (x + y) / 2.0).collect();
    assert_close(
        "pswm period 1",
        &replaced(&gpu, &mut ps, &mut model),
        &m1,
        1e-6,
        1e-6,
    );
    // Period 2: m2 = c, w = m2 + 0.5 (m2 - m1).
    model.set_w(&gpu, &c);
    ps.sample(&gpu, &model).unwrap();
    let want: Vec<f32> = c
        .iter()
        .zip(&m1)
        .map(|(m2, m1)| m2 + 0.5 * (m2 - m1))
        .collect();
    assert_close(
        "pswm period 2",
        &replaced(&gpu, &mut ps, &mut model),
        &want,
        1e-5,
        1e-5,
    );
}

#[test]
fn batch_norm_reestimation_matches_cpu_statistics() {
    let gpu = gpu();
    let mut rng = Rng::new(42);
    let (n, batch, batches) = (100, 32, 3);
    let images: Vec<u8> = (0..n * 784).map(|_| (rng.next_u64() % 256) as u8).collect();
    let data = Dataset {
        images: images.clone(),
        labels: vec![0; n],
        n,
        rows: 28,
        cols: 28,
    };
    let mut model = Tiny::new(&gpu);
    reestimate_batch_norm(&gpu, &mut model, &data, batch, batches).unwrap();
    // CPU: the cumulative average of each batch's mean and unbiased variance.
    let (mut rm, mut rv) = (vec![0f64; 784], vec![0f64; 784]);
    for bi in 0..batches {
        let rows: Vec<usize> = (bi * batch..(bi + 1) * batch).collect();
        for ch in 0..784 {
            let xs: Vec<f64> = rows
                .iter()
                .map(|&r| images[r * 784 + ch] as f64 / 127.5 - 1.0)
                .collect();
            let m = xs.iter().sum::<f64>() / xs.len() as f64;
            let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (xs.len() - 1) as f64;
            rm[ch] += m / batches as f64;
            rv[ch] += v / batches as f64;
        }
    }
    let to32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<_>>();
    let store = model.store();
    let mean = store
        .get(store.find("bn.running_mean").unwrap())
        .to_f32(&gpu)
        .unwrap();
    let var = store
        .get(store.find("bn.running_var").unwrap())
        .to_f32(&gpu)
        .unwrap();
    // f32 statistics of 32 values in [-1, 1], averaged with f32 momenta.
    assert_close("running mean", &mean, &to32(rm), 2e-6, 1e-5);
    assert_close("running var", &var, &to32(rv), 2e-6, 1e-5);
}

/// A PSWM run stopped in the middle of a sampling period (resume state
/// written every step, the run stopped by an injected NaN) and resumed ends
/// exactly as the uninterrupted run: the period's running sums, m_{p-1} and
/// the counters travel in resume.safetensors.
#[test]
fn a_run_resumed_mid_period_matches_an_uninterrupted_one() {
    let tmp = std::env::temp_dir().join(format!("bitprop-psample-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let train = |out: &std::path::Path, nan_at: Option<&str>| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_bitprop"));
        c.args([
            "train", "--model", "bmlp", "--width", "0.125", "--epochs", "2",
        ])
        .args([
            "--batch",
            "64",
            "--limit-train",
            "512",
            "--limit-test",
            "200",
        ])
        .args(["--val", "0", "--seed", "3", "--sampling", "pswm"])
        .args(["--sample-period", "6", "--sample-every", "2"])
        .args(["--checkpoint-every", "1", "--bn-reestimate-batches", "2"])
        .arg("--out")
        .arg(out);
        if let Some(step) = nan_at {
            // 8 steps per epoch, periods end at steps 6 and 12: step 11 is
            // in epoch 2, in the middle of the second period.
            c.env("BITPROP_INJECT_NAN_AT_STEP", step);
        }
        c.output().unwrap()
    };
    let full = tmp.join("full");
    let out = train(&full, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cut = tmp.join("cut");
    assert!(
        !train(&cut, Some("11")).status.success(),
        "the NaN must stop the run"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bitprop"))
        .args(["train", "--resume"])
        .arg(&cut)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (a, b) = (metrics_without_timing(&full), metrics_without_timing(&cut));
    assert_eq!(a.len(), 2);
    assert_eq!(a[1]["replacements"], 2, "{:?}", a[1]);
    assert_eq!(a, b, "resumed metrics differ from the uninterrupted run's");
    let tensors = |dir: &std::path::Path| checkpoint_bits(&dir.join("last.safetensors"));
    assert!(tensors(&full) == tensors(&cut), "last.safetensors differs");
    let _ = std::fs::remove_dir_all(&tmp);
}
