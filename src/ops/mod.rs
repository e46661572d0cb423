//! Kernel families: each file holds the host side of one WGSL family and the
//! CPU reference that tests (and the CPU runtime) compare against.

pub mod act;
pub mod channel;
pub mod conv;
pub mod conv3x3_c1;
pub mod conv_gemm;
pub mod gemm;
pub mod loss;
pub mod metrics;
pub mod norm;
pub mod optim;
pub mod pack;
pub mod pool;
pub mod recu;
pub mod reduce;
pub mod sign_gemm;
pub mod split_k;
pub mod tune;

use crate::gpu::{Binding, Gpu, Kernel};

/// One elementwise entry point in its two modules: one element per lane,
/// and four per lane for sizes that are a multiple of 4 (a CPU adapter
/// executes each storage access lane by lane, so vec4 accesses are a quarter
/// of them).
pub(crate) struct PerLane {
    pub one: Kernel,
    pub four: Kernel,
}

impl PerLane {
    /// The kernel for `n` elements and its lane count.
    pub fn pick(&self, n: usize) -> (&Kernel, usize) {
        if n.is_multiple_of(4) {
            (&self.four, n / 4)
        } else {
            (&self.one, n)
        }
    }
}

/// The workgroup size for a register-blocked GEMM whose lanes hold 4 columns
/// each (column `n0 + lane + j * wg`), fitted to `n` columns: the lanes of
/// the last column tile past `n` compute clamped copies, so among sizes from
/// 32 to 64 in whole SIMD rows (8 lanes on a CPU adapter, the subgroup
/// elsewhere) the one with the fewest lanes in all wins, ties going to the
/// size closest to the tuned `wg`. `wg` above 64 is kept as it is. (bmlp's
/// fc1 weight gradient, n = 784: 40 lanes run 200 lanes in all where 32
/// ran 224 and 64 ran 256.)
pub(crate) fn column_lanes(gpu: &Gpu, n: usize, wg: u32) -> u32 {
    fit_column_lanes(n, wg, simd_row(gpu))
}

/// Lanes that execute together: 8 on a CPU adapter (lavapipe's AVX2 rows),
/// the subgroup elsewhere (at most 32).
pub(crate) fn simd_row(gpu: &Gpu) -> u32 {
    if gpu.is_cpu() {
        8
    } else {
        gpu.info.subgroup_max_size.clamp(8, 32)
    }
}

/// [`column_lanes`] for SIMD rows of `row` lanes.
fn fit_column_lanes(n: usize, wg: u32, row: u32) -> u32 {
    if wg > 64 {
        return wg;
    }
    let total = |w: u32| n.div_ceil(4 * w as usize) * w as usize;
    (32..=64)
        .step_by(row as usize)
        .chain([wg])
        .min_by_key(|&w| (total(w), w.abs_diff(wg)))
        .unwrap_or(wg)
}

/// Vec4s a lane of the CPU adapters' `*_runs` entries (their WGSL `RUN`,
/// which the launches set): a lane divides once for its first vec4's
/// position and steps from there, since lavapipe runs integer divisions
/// lane by lane.
pub(crate) const RUN: usize = 8;

/// The constants of a 64-lane launch of a `*_runs` entry.
pub(crate) const WG_RUN: &[(&str, f64)] = &[("WG", 64.0), ("RUN", RUN as f64)];

/// Workgroups needed to cover `n` invocations in groups of `wg`.
pub(crate) fn groups_for(gpu: &Gpu, n: usize, wg: u32) -> [u32; 3] {
    gpu.grid((n as u64).div_ceil(wg as u64))
}

/// A binding the kernel never reads, for optional operands (any read-only tensor).
pub(crate) fn unused(t: &crate::Tensor) -> Binding<'_> {
    t.binding()
}

#[cfg(test)]
mod tests {
    use super::fit_column_lanes;

    #[test]
    fn column_lanes_fit_the_last_tile() {
        // 784 columns: 40 lanes x 5 tiles = 200 lanes (32: 224, 64: 256).
        assert_eq!(fit_column_lanes(784, 32, 8), 40);
        assert_eq!(fit_column_lanes(784, 64, 8), 40);
        // Whole tiles either way: the tuned size stays.
        assert_eq!(fit_column_lanes(1024, 32, 8), 32);
        assert_eq!(fit_column_lanes(1024, 64, 8), 64);
        // 586 (a conv weight gradient's rows): 160 lanes at 32 and 40,
        // the closer to 64 wins.
        assert_eq!(fit_column_lanes(586, 64, 8), 40);
        // Subgroups of 32: only 32 and 64.
        assert_eq!(fit_column_lanes(784, 64, 32), 32);
        // Sizes the fit does not cover are kept.
        assert_eq!(fit_column_lanes(784, 128, 8), 128);
        assert_eq!(fit_column_lanes(1, 16, 8), 16);
    }
}
