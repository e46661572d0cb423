//! Shared by the device tests: the adapter, seeded data, comparisons.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use bitprop::Gpu;
use bitprop::data::{DEFAULT_FASHION_MNIST_DIR, Dataset, load_fashion_mnist};

/// The adapter chosen by BITPROP_BACKEND / BITPROP_ADAPTER. Tests never skip:
/// without an adapter they fail with the reason.
pub fn gpu() -> Arc<Gpu> {
    static GPU: OnceLock<Arc<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| match Gpu::from_env() {
        Ok(g) => {
            // The forms kernels take on GPUs, tested on a CPU adapter (.ci/run).
            let gpu_forms = std::env::var("BITPROP_TEST_GPU_FORMS").is_ok_and(|v| v == "1");
            g.use_gpu_forms(gpu_forms);
            let forms = if gpu_forms { ", GPU forms" } else { "" };
            eprintln!("device tests on {}{forms}", g.description());
            g
        }
        Err(e) => panic!("device tests need a GPU adapter: {e}"),
    })
    .clone()
}

/// A small seeded generator (SplitMix64) so every test sees the same data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    pub fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.uniform()).collect()
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Asserts |a - b| <= atol + rtol * |b| elementwise, naming the first bad index.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: length {} vs {}",
        got.len(),
        want.len()
    );
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = atol + rtol * w.abs();
        assert!(
            (g - w).abs() <= tol || (g.is_nan() && w.is_nan()),
            "{what}: element {i}: got {g}, want {w} (tolerance {tol})"
        );
    }
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "bitprop-{}-{tag}-{}",
            env!("CARGO_CRATE_NAME"),
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Fashion-MNIST (train, test), read once per test binary.
pub fn fashion_mnist() -> &'static (Dataset, Dataset) {
    static DATA: OnceLock<(Dataset, Dataset)> = OnceLock::new();
    DATA.get_or_init(|| {
        load_fashion_mnist(DEFAULT_FASHION_MNIST_DIR.as_ref())
            .expect("Fashion-MNIST in /usr/share/datasets/fashion-mnist")
    })
}

/// An uncompressed IDX file of unsigned bytes: magic `0 0 8 ndim`, then the
/// dimensions as big-endian u32, then the data.
pub fn write_idx(path: &Path, dims: &[usize], data: &[u8]) {
    let mut bytes = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        bytes.extend_from_slice(&(*d as u32).to_be_bytes());
    }
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).unwrap();
}

/// A Fashion-MNIST directory holding the first `n_train` training and
/// `n_test` test images of the real one.
pub fn small_fashion_mnist(dir: &Path, n_train: usize, n_test: usize) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let (train_set, test_set) = fashion_mnist();
    for (prefix, ds, n) in [("train", train_set, n_train), ("t10k", test_set, n_test)] {
        let ds = ds.slice(0..n).unwrap();
        write_idx(
            &data.join(format!("{prefix}-images-idx3-ubyte")),
            &[n, ds.rows, ds.cols],
            &ds.images,
        );
        write_idx(
            &data.join(format!("{prefix}-labels-idx1-ubyte")),
            &[n],
            &ds.labels,
        );
    }
    data
}

/// A run's metrics.jsonl without the keys that measure time or memory, to
/// compare two runs of the same training.
pub fn metrics_without_timing(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
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

/// A checkpoint's f32 tensors as bit patterns, sorted by name.
pub fn checkpoint_bits(path: &Path) -> Vec<(String, Vec<u32>)> {
    let ck = bitprop::checkpoint::load(path).unwrap();
    let mut t: Vec<(String, Vec<u32>)> = ck
        .tensors
        .into_iter()
        .map(|(name, (_, data))| match data {
            bitprop::checkpoint::TensorData::F32(v) => {
                (name, v.iter().map(|x| x.to_bits()).collect())
            }
            _ => (name, Vec::new()),
        })
        .collect();
    t.sort();
    t
}
