//! `bitprop bench gemm`: the XNOR GEMM beside the f32 GEMM of the same shape,
//! the CPU XNOR GEMM, and the device's popcount and FMA peaks.

use serde::Serialize;

use crate::gpu::{Gpu, GpuError, Kernel};
use crate::kernel;
use crate::ops::gemm::{
    Epilogue, GemmVariant, Trans, f32_gemm, words_to_u64, xnor_gemm, xnor_gemm_cpu_u64,
};
use crate::ops::pack::{BitLayout, pack_signs, pack_signs_cpu};
use crate::ops::tune::{GemmFamily, f32_candidates, median, pattern, time_candidates};
use crate::tensor::{DType, Tensor};

use super::{device_ms, timing_name};

/// One variant's median time.
#[derive(Clone, Debug, Serialize)]
pub struct VariantTime {
    pub variant: String,
    pub ms: f64,
}

/// What `bitprop bench gemm --json` prints; binary ops count 2*M*N*K like flops.
#[derive(Clone, Debug, Serialize)]
pub struct GemmBench {
    pub adapter: String,
    pub timing: String,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub reps: usize,
    pub xnor_variant: String,
    pub f32_variant: String,
    pub xnor_ms: f64,
    pub f32_ms: f64,
    pub cpu_xnor_ms: f64,
    pub xnor_ops_per_s: f64,
    pub peak_ops_per_s: f64,
    pub f32_flops_per_s: f64,
    pub fma_peak_flops_per_s: f64,
    pub xnor_vs_f32: f64,
    /// The f32 x packed-signs GEMM (a binary layer's backward) at this shape.
    pub sign_gemm_ms: f64,
    /// f32 GEMM time / f32 x signs GEMM time.
    pub sign_vs_f32: f64,
    pub xnor_pct_of_peak: f64,
    pub f32_pct_of_peak: f64,
    pub device_vs_cpu: f64,
    pub roundtrip_ms: f64,
    pub cpu_threads: usize,
    pub xnor_variants: Vec<VariantTime>,
    pub f32_variants: Vec<VariantTime>,
    /// The 16-row register-block XNOR kernel with parts taken out
    /// (shaders/bench/xnor_bound.wgsl): what its time is made of.
    pub xnor_bound: Vec<VariantTime>,
}

const XNOR_BOUND: Kernel = kernel!(
    "bench/xnor_bound.wgsl",
    "xnor_r16_bound",
    [Read, Read, ReadWrite, Uniform]
);

/// The variants of [`XNOR_BOUND`]: MODE bits 1 = no loads of b, 2 = no
/// popcount, 4 = no loads of a.
const BOUND_MODES: [(u32, &str); 7] = [
    (0, "as GEMM"),
    (8, "a from uniform"),
    (1, "no b loads"),
    (2, "no popcount"),
    (4, "no a loads"),
    (5, "no loads"),
    (7, "no loads, no popcount"),
];

/// Times the 16-row register-block XNOR loop with its loads of b, its
/// popcounts, or both taken out, at the GEMM's shape and grid.
fn xnor_bound(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    m: usize,
    n: usize,
    k: usize,
    reps: usize,
) -> Result<Vec<VariantTime>, GpuError> {
    let wg = 64usize;
    let (gx, gy) = (n.div_ceil(4 * wg) as u32, m.div_ceil(16) as u32);
    let groups = gx as u64 * gy as u64;
    let out = Tensor::empty(gpu, &[m, n], DType::U32)?;
    let ua = Tensor::from_u32(gpu, &[16384], &vec![0x5555_5555; 16384])?;
    let params = crate::ops::gemm::XnorParams {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        kw: k.div_ceil(32) as u32,
        has_scale: 0,
        groups_x: gx,
        groups: groups as u32,
        ..Default::default()
    };
    let mut times = Vec::new();
    for (mode, name) in BOUND_MODES {
        let ms = device_ms(gpu, reps, || {
            gpu.launch(
                &XNOR_BOUND,
                &[("WG", wg as f64), ("MODE", mode as f64)],
                &params,
                &[a.binding(), b.binding(), out.binding(), ua.binding()],
                gpu.grid(groups),
            );
            Ok(())
        })?;
        times.push(VariantTime {
            variant: name.to_string(),
            ms,
        });
    }
    Ok(times)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PeakParams {
    iters: u32,
    seed: u32,
    _pad: [u32; 2],
}

const POPCOUNT_PEAK: Kernel = kernel!("bench/peak.wgsl", "popcount_peak", [ReadWrite]);
const FMA_PEAK: Kernel = kernel!("bench/peak.wgsl", "fma_peak", [ReadWrite]);

/// Workgroups of the peak microkernels: on a CPU adapter enough work to
/// hide launch cost, little enough for a second or so; on a GPU enough
/// lanes to fill every core several times over (an H100 holds about
/// 270,000 resident lanes; 32,768 would leave most of it idle and report a
/// peak far too low).
fn peak_groups(gpu: &Gpu) -> u32 {
    if gpu.is_cpu() { 512 } else { 16384 }
}
const PEAK_WG: u32 = 64;

fn peak(gpu: &Gpu, kernel: &Kernel, iters: u32, reps: usize) -> Result<f64, GpuError> {
    let lanes = (peak_groups(gpu) * PEAK_WG) as usize;
    let out = Tensor::empty(gpu, &[lanes], DType::U32)?;
    device_ms(gpu, reps, || {
        gpu.launch(
            kernel,
            &[("WG", PEAK_WG as f64)],
            &PeakParams {
                iters,
                seed: 7,
                _pad: [0; 2],
            },
            &[out.binding()],
            gpu.grid(peak_groups(gpu) as u64),
        );
        Ok(())
    })
}

fn peak_lanes(gpu: &Gpu) -> f64 {
    (peak_groups(gpu) * PEAK_WG) as f64
}

/// The device's f32 FMA peak in flops/s (2 flops per FMA), from the register-only microkernel.
pub fn fma_peak_flops(gpu: &Gpu, reps: usize) -> Result<f64, GpuError> {
    let iters = 2048u32;
    let ms = peak(gpu, &FMA_PEAK, iters, reps)?;
    // 32 FMAs per iteration.
    Ok(peak_lanes(gpu) * iters as f64 * 32.0 * 2.0 / (ms / 1e3))
}

/// The device's XNOR-popcount peak in binary ops/s (a 32-bit word's xor +
/// popcount + add = 32 multiply-adds = 64 ops, counted like flops), from the
/// register-only microkernel.
pub fn popcount_peak_ops(gpu: &Gpu, reps: usize) -> Result<f64, GpuError> {
    let iters = 4096u32;
    let ms = peak(gpu, &POPCOUNT_PEAK, iters, reps)?;
    // 16 words per iteration.
    Ok(peak_lanes(gpu) * iters as f64 * 16.0 * 64.0 / (ms / 1e3))
}

/// Runs the whole comparison. `reps` timed runs after a warm-up; the
/// variants are tuned at this shape (every candidate timed), so the f32 GEMM
/// gets the same tuning effort as the XNOR GEMM.
pub fn run(gpu: &Gpu, m: usize, n: usize, k: usize, reps: usize) -> Result<GemmBench, GpuError> {
    let progress = |s: &str| eprintln!("bench gemm: {s}");
    let ops = 2.0 * m as f64 * n as f64 * k as f64;

    progress("timing XNOR GEMM variants");
    let xnor_times = time_candidates(gpu, GemmFamily::Xnor, m, n, k, 1)?;
    progress("timing f32 GEMM variants");
    let f32_times = time_candidates(gpu, GemmFamily::F32, m, n, k, 1)?;
    let best = |t: &[(GemmVariant, f64)]| t.iter().min_by(|a, b| a.1.total_cmp(&b.1)).unwrap().0;
    let xv = best(&xnor_times);
    let fv = best(&f32_times);

    let a = Tensor::from_f32(gpu, &[m, k], &pattern(m * k, 1))?;
    let b = Tensor::from_f32(gpu, &[n, k], &pattern(n * k, 2))?;
    let ap = pack_signs(gpu, &a, m, k, 1, BitLayout::RowMajor)?;
    let layout = xv.b_layout();
    let bp = pack_signs(gpu, &b, n, k, 1, layout)?;

    progress(&format!("XNOR GEMM {} x {reps}", xv.name()));
    let xnor_ms = device_ms(gpu, reps, || xnor_gemm(gpu, &ap, &bp, None, xv).map(drop))?;
    progress(&format!("f32 GEMM {} x {reps}", fv.name()));
    let f32_ms = device_ms(gpu, reps, || {
        f32_gemm(
            gpu,
            &a,
            Trans::N,
            &b,
            Trans::T,
            Epilogue::default(),
            None,
            fv,
        )
        .map(drop)
    })?;

    progress(&format!("f32 x signs GEMM x {reps}"));
    let b_signs = pack_signs(gpu, &b, n, k, 1, BitLayout::RowMajor)?;
    let sign_gemm_ms = device_ms(gpu, reps, || {
        crate::ops::sign_gemm::sign_gemm(gpu, &a, [m, k, 1], &b_signs, None).map(drop)
    })?;

    progress("XNOR bound analysis");
    let bp_words = pack_signs(gpu, &b, n, k, 1, BitLayout::WordMajor)?;
    let xnor_bound = xnor_bound(gpu, &ap.words, &bp_words.words, m, n, k, reps)?;

    progress("CPU XNOR GEMM");
    let aw = words_to_u64(&pack_signs_cpu(&pattern(m * k, 1), m, k), m, k);
    let bw = words_to_u64(&pack_signs_cpu(&pattern(n * k, 2), n, k), n, k);
    let _ = xnor_gemm_cpu_u64(&aw, &bw, m, n, k);
    let mut cpu = Vec::new();
    for _ in 0..reps {
        let t = std::time::Instant::now();
        std::hint::black_box(xnor_gemm_cpu_u64(&aw, &bw, m, n, k));
        cpu.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let cpu_xnor_ms = median(&mut cpu);

    progress("peaks");
    let peak_ops_per_s = popcount_peak_ops(gpu, reps)?;
    let fma_peak_flops_per_s = fma_peak_flops(gpu, reps)?;

    progress("round trip");
    let tiny = Tensor::zeros(gpu, &[4], DType::U32)?;
    let _ = tiny.to_u32(gpu)?;
    let mut rt = Vec::new();
    for _ in 0..20.max(reps) {
        let t = std::time::Instant::now();
        gpu.launch(
            &POPCOUNT_PEAK,
            &[("WG", PEAK_WG as f64)],
            &PeakParams {
                iters: 1,
                seed: 1,
                _pad: [0; 2],
            },
            &[tiny.binding()],
            [1, 1, 1],
        );
        let _ = tiny.to_u32(gpu)?;
        rt.push(t.elapsed().as_secs_f64() * 1e3);
    }

    let xnor_ops_per_s = ops / (xnor_ms / 1e3);
    let f32_flops_per_s = ops / (f32_ms / 1e3);
    let times = |t: &[(GemmVariant, f64)]| {
        t.iter()
            .map(|(v, ms)| VariantTime {
                variant: v.name(),
                ms: *ms,
            })
            .collect()
    };
    let _ = f32_candidates;
    Ok(GemmBench {
        adapter: gpu.description(),
        timing: timing_name(gpu).to_string(),
        m,
        n,
        k,
        reps,
        xnor_variant: xv.name(),
        f32_variant: fv.name(),
        xnor_ms,
        f32_ms,
        cpu_xnor_ms,
        xnor_ops_per_s,
        peak_ops_per_s,
        f32_flops_per_s,
        fma_peak_flops_per_s,
        xnor_vs_f32: f32_ms / xnor_ms,
        sign_gemm_ms,
        sign_vs_f32: f32_ms / sign_gemm_ms,
        xnor_pct_of_peak: 100.0 * xnor_ops_per_s / peak_ops_per_s,
        f32_pct_of_peak: 100.0 * f32_flops_per_s / fma_peak_flops_per_s,
        device_vs_cpu: cpu_xnor_ms / xnor_ms,
        roundtrip_ms: median(&mut rt),
        cpu_threads: std::thread::available_parallelism().map_or(1, |t| t.get()),
        xnor_variants: times(&xnor_times),
        f32_variants: times(&f32_times),
        xnor_bound,
    })
}

impl GemmBench {
    /// The human-readable table (stderr).
    pub fn report(&self) -> String {
        let g = |x: f64| x / 1e9;
        let mut s = String::new();
        s += &format!(
            "adapter: {}   timing: {}   shape: M={} N={} K={}   median of {}\n",
            self.adapter, self.timing, self.m, self.n, self.k, self.reps
        );
        s += &format!(
            "  XNOR GEMM  ({:>14}) {:>10.3} ms  {:>9.1} G binary ops/s  {:>5.1}% of popcount peak {:.1} G\n",
            self.xnor_variant,
            self.xnor_ms,
            g(self.xnor_ops_per_s),
            self.xnor_pct_of_peak,
            g(self.peak_ops_per_s)
        );
        s += &format!(
            "  f32 GEMM   ({:>14}) {:>10.3} ms  {:>9.1} GFLOP/s         {:>5.1}% of FMA peak {:.1} GFLOP/s\n",
            self.f32_variant,
            self.f32_ms,
            g(self.f32_flops_per_s),
            self.f32_pct_of_peak,
            g(self.fma_peak_flops_per_s)
        );
        s += &format!(
            "  CPU XNOR   ({:>2} threads, u64)  {:>10.3} ms  {:>9.1} G binary ops/s\n",
            self.cpu_threads,
            self.cpu_xnor_ms,
            g(2.0 * self.m as f64 * self.n as f64 * self.k as f64 / (self.cpu_xnor_ms / 1e3))
        );
        s += &format!(
            "  f32 x signs ({:>14}) {:>10.3} ms  (a binary layer's backward: one operand read as packed signs)\n",
            "sign_gemm", self.sign_gemm_ms
        );
        s += &format!(
            "  ratios: XNOR vs f32 {:.2}x   f32 x signs vs f32 {:.2}x   device vs CPU {:.2}x   round trip {:.3} ms\n",
            self.xnor_vs_f32, self.sign_vs_f32, self.device_vs_cpu, self.roundtrip_ms
        );
        s += "  variants (one run each): XNOR";
        for v in &self.xnor_variants {
            s += &format!(" {}={:.2}ms", v.variant, v.ms);
        }
        s += "\n                           f32 ";
        for v in &self.f32_variants {
            s += &format!(" {}={:.2}ms", v.variant, v.ms);
        }
        s.push('\n');
        if let [full, a_uniform, no_b, no_pop, no_a, no_loads, bare] = &self.xnor_bound[..] {
            s += "  what the 16-row XNOR loop's time is made of (one run, same grid):";
            for v in &self.xnor_bound {
                s += &format!(" {}={:.2}ms", v.variant, v.ms);
            }
            let share = |t: &VariantTime| 100.0 * (full.ms - t.ms) / full.ms;
            s += &format!(
                "\n    taking out the loads of a saves {:.0}%, of b {:.0}%, of both {:.0}%; the popcounts {:.0}%; the loop without loads or popcounts is {:.0}% of the time\n",
                share(no_a),
                share(no_b),
                share(no_loads),
                share(no_pop),
                100.0 * bare.ms / full.ms
            );
            s += &format!(
                "    reading a from a uniform buffer instead of storage: {:.2}x the speed\n",
                full.ms / a_uniform.ms
            );
        }
        s
    }
}
