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

/// Workgroups needed to cover `n` invocations in groups of `wg`.
pub(crate) fn groups_for(gpu: &Gpu, n: usize, wg: u32) -> [u32; 3] {
    gpu.grid((n as u64).div_ceil(wg as u64))
}

/// A binding the kernel never reads, for optional operands (any read-only tensor).
pub(crate) fn unused(t: &crate::Tensor) -> Binding<'_> {
    t.binding()
}
