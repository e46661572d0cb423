//! A small autotune: each GEMM family's variant is chosen once per adapter
//! by timing the candidates on a representative shape, and the choice is
//! cached in memory and on disk (`$XDG_CACHE_HOME/bitprop/autotune.json`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use crate::gpu::{Gpu, GpuError};
use crate::ops::gemm::{Epilogue, GemmVariant, Trans, f32_gemm, xnor_gemm};
use crate::ops::pack::{BitLayout, pack_signs};
use crate::tensor::Tensor;

/// Which GEMM family a choice is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmFamily {
    Xnor,
    F32,
}

impl GemmFamily {
    fn key(self) -> &'static str {
        match self {
            GemmFamily::Xnor => "xnor_gemm",
            GemmFamily::F32 => "f32_gemm",
        }
    }
}

fn cache_path() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("BITPROP_AUTOTUNE_CACHE") {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("bitprop").join("autotune.json"))
}

/// Part of the cache key: a choice made among older candidate lists (or
/// older kernels: 3 has the side-by-side columns of CPU adapters, 4 their
/// 16-row f32 blocks, 5 the convolution shape and repeated runs) is tuned
/// again.
const CANDIDATES_VERSION: &str = "candidates 5";

type DiskCache = BTreeMap<String, BTreeMap<String, GemmVariant>>;

fn read_disk() -> DiskCache {
    cache_path()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

fn write_disk(cache: &DiskCache) {
    let Some(path) = cache_path() else { return };
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    // A cache: losing it only costs a re-tune, so a plain write is enough.
    if let Ok(s) = serde_json::to_string_pretty(cache) {
        let tmp = path.with_extension("json.tmp");
        if std::fs::write(&tmp, s).is_ok() {
            let _ = std::fs::rename(tmp, path);
        }
    }
}

/// The variant for `family` on this adapter: tuned once, then cached.
/// `BITPROP_AUTOTUNE=0` skips tuning and uses the per-adapter default.
pub fn gemm_variant(gpu: &Gpu, family: GemmFamily) -> Result<GemmVariant, GpuError> {
    let cached = || -> Option<GemmVariant> {
        let tuned = gpu.tuned.lock().unwrap();
        serde_json::from_str(tuned.get(family.key())?).ok()
    };
    if let Some(v) = cached() {
        return Ok(v);
    }
    // One tuning at a time: threads that meet an untuned family together
    // wait for the first one's choice, so a process never switches
    // variants (and summation orders) between two calls.
    static TUNING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _tuning = TUNING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(v) = cached() {
        return Ok(v);
    }
    let adapter = format!("{}|{CANDIDATES_VERSION}", gpu.adapter_key());
    let mut disk = read_disk();
    let variant = match disk.get(&adapter).and_then(|m| m.get(family.key())) {
        Some(v) => *v,
        None if std::env::var("BITPROP_AUTOTUNE").as_deref() == Ok("0") => {
            GemmVariant::default_for(gpu)
        }
        None => {
            let best = fastest(gpu, family)?.unwrap_or_else(|| GemmVariant::default_for(gpu));
            disk.entry(adapter)
                .or_default()
                .insert(family.key().into(), best);
            write_disk(&disk);
            best
        }
    };
    set_variant(gpu, family, variant);
    Ok(variant)
}

/// The shapes a family is tuned on, `[m, n, k]`: a layer's GEMM and, for
/// XNOR, a binary convolution's (few weight rows, many pixels, short K),
/// where bcnn's forward spends its XNOR time. One shape alone picked a
/// variant 25% slower on the other (lavapipe, Zen 5).
fn tuning_shapes(family: GemmFamily) -> &'static [[usize; 3]] {
    match family {
        GemmFamily::Xnor => &[[256, 512, 1024], [128, 16384, 576]],
        GemmFamily::F32 => &[[256, 512, 1024]],
    }
}

/// Medians of this many runs a candidate and shape: single runs on a busy
/// CPU adapter picked variants 1.4x slower than the best.
const TUNING_REPS: usize = 3;

/// The candidate with the least summed median time over `family`'s tuning
/// shapes (None if no candidate runs here).
fn fastest(gpu: &Gpu, family: GemmFamily) -> Result<Option<GemmVariant>, GpuError> {
    let mut total: Vec<(GemmVariant, f64)> = Vec::new();
    for &[m, n, k] in tuning_shapes(family) {
        for (v, ms) in time_candidates(gpu, family, m, n, k, TUNING_REPS)? {
            match total.iter_mut().find(|t| t.0 == v) {
                Some(t) => t.1 += ms,
                None => total.push((v, ms)),
            }
        }
    }
    Ok(total.iter().min_by(|a, b| a.1.total_cmp(&b.1)).map(|t| t.0))
}

/// Makes `variant` this process's choice for `family` on `gpu`, in place of
/// the tuned one (to compare variants, or to test each).
pub fn set_variant(gpu: &Gpu, family: GemmFamily, variant: GemmVariant) {
    gpu.tuned.lock().unwrap().insert(
        family.key().into(),
        serde_json::to_string(&variant).expect("variant serializes"),
    );
}

/// Median wall milliseconds of `f` over `reps` runs after one warm-up,
/// each run submitted and waited for.
pub fn median_wall_ms(
    gpu: &Gpu,
    reps: usize,
    mut f: impl FnMut() -> Result<(), GpuError>,
) -> Result<f64, GpuError> {
    f()?;
    gpu.flush_and_wait();
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        gpu.flush_and_wait();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median(&mut times))
}

pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

/// Times every candidate of `family` at `m x n x k` (median wall ms over `reps`).
pub fn time_candidates(
    gpu: &Gpu,
    family: GemmFamily,
    m: usize,
    n: usize,
    k: usize,
    reps: usize,
) -> Result<Vec<(GemmVariant, f64)>, GpuError> {
    let a = Tensor::from_f32(gpu, &[m, k], &pattern(m * k, 1))?;
    let b = Tensor::from_f32(gpu, &[n, k], &pattern(n * k, 2))?;
    let mut out = Vec::new();
    match family {
        GemmFamily::Xnor => {
            let ap = pack_signs(gpu, &a, m, k, 1, BitLayout::RowMajor)?;
            let rows = pack_signs(gpu, &b, n, k, 1, BitLayout::RowMajor)?;
            let cols = pack_signs(gpu, &b, n, k, 1, BitLayout::WordMajor)?;
            for v in GemmVariant::candidates()
                .into_iter()
                .filter(|v| v.runs_as_itself(gpu))
            {
                let bp = if v.b_layout() == BitLayout::RowMajor {
                    &rows
                } else {
                    &cols
                };
                let ms = median_wall_ms(gpu, reps, || xnor_gemm(gpu, &ap, bp, None, v).map(drop))?;
                out.push((v, ms));
            }
        }
        GemmFamily::F32 => {
            for v in f32_candidates()
                .into_iter()
                .filter(|v| v.runs_as_itself(gpu))
            {
                let ms = median_wall_ms(gpu, reps, || {
                    f32_gemm(
                        gpu,
                        &a,
                        Trans::N,
                        &b,
                        Trans::T,
                        Epilogue::default(),
                        None,
                        v,
                    )
                    .map(drop)
                })?;
                out.push((v, ms));
            }
        }
    }
    Ok(out)
}

/// f32 candidates: fewer, since each f32 run is slow on CPU adapters.
pub fn f32_candidates() -> Vec<GemmVariant> {
    vec![
        GemmVariant::Nt4s { wg: 64 },
        GemmVariant::Nt4s { wg: 32 },
        GemmVariant::Nt4u { wg: 64 },
        GemmVariant::Nt4u { wg: 32 },
        GemmVariant::Nt4 { wg: 64 },
        GemmVariant::Nt4 { wg: 32 },
        GemmVariant::Tiled,
    ]
}

/// Deterministic values in [-1, 1) for benchmarks.
pub fn pattern(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}
