//! K splits for GPUs: a weight gradient's K is every pixel (or sample) of
//! the batch while its output makes a few dozen tiles, too few to fill a
//! GPU. The GEMM kernels then run `slices` copies of their tiles, each over
//! one part of K, into a scratch buffer, and [`sum_slices`] adds the parts.

use crate::gpu::{Gpu, GpuError, Kernel};
use crate::kernel;
use crate::tensor::Tensor;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SlicesSumParams {
    len: u32,
    slices: u32,
    accumulate: u32,
    _pad: u32,
}

thread_local! {
    static FORCED: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with every K-split GEMM it launches on this thread asking for
/// `slices` slices, whatever the adapter and shape (clipped to the K steps):
/// how tests run the GPU path on a CPU adapter.
pub fn with_k_slices<R>(slices: usize, f: impl FnOnce() -> R) -> R {
    // Restores the setting before, also when `f` panics.
    struct Restore(Option<usize>);
    impl Drop for Restore {
        fn drop(&mut self) {
            FORCED.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(FORCED.with(|c| c.replace(Some(slices))));
    f()
}

const SLICES_SUM: Kernel = kernel!("gemm/slices_sum.wgsl", "slices_sum", [Read, ReadWrite]);

/// Workgroups a K split aims for: an H100 holds about 4,200 resident
/// workgroups of 64 lanes; an 8 x 4 register block's registers leave room
/// for about half.
const TARGET_GROUPS: usize = 2048;

/// How many slices a GEMM of `groups` tiles whose K loop has `steps` steps
/// runs as, each slice at least `min_steps` long: 1 on a CPU adapter (a
/// handful of tiles fills its cores, and the partial sums would cost loads
/// and stores) and wherever the tiles come near the target; else enough to
/// bring the grid near it. [`with_k_slices`] overrides it.
pub fn k_slices(gpu: &Gpu, groups: usize, steps: usize, min_steps: usize) -> usize {
    if let Some(forced) = FORCED.with(|c| c.get()) {
        return forced;
    }
    if gpu.cpu_forms() || groups >= TARGET_GROUPS / 2 {
        return 1;
    }
    TARGET_GROUPS
        .div_ceil(groups.max(1))
        .min(steps / min_steps.max(1))
        .max(1)
}

/// A GEMM's K split, planned: `slices` copies of its `groups` tiles, each
/// summing `len` K steps (the last one fewer) into `part` (`[slices * m, n]`)
/// when there is more than one slice. The caller launches the GEMM over
/// [`Split::groups`] into [`Split::target`] with its epilogue off when split,
/// then calls [`Split::finish`].
pub struct Split {
    pub slices: usize,
    pub len: usize,
    groups: u64,
    part: Option<Tensor>,
    m_n: usize,
}

impl Split {
    /// The split of an `[m, n]` GEMM of `groups` tiles over `steps` K steps
    /// (at least `min_steps` a slice); `allowed` false (an epilogue or a
    /// layout the partial sums cannot carry) keeps one slice.
    pub fn plan(
        gpu: &Gpu,
        allowed: bool,
        groups: u64,
        steps: usize,
        min_steps: usize,
        [m, n]: [usize; 2],
    ) -> Result<Split, GpuError> {
        let wanted = if allowed {
            k_slices(gpu, groups as usize, steps, min_steps)
        } else {
            1
        };
        let len = steps.div_ceil(wanted.clamp(1, steps.max(1))).max(1);
        let slices = steps.div_ceil(len).max(1);
        let part = if slices > 1 {
            Some(Tensor::empty(
                gpu,
                &[slices * m, n],
                crate::tensor::DType::F32,
            )?)
        } else {
            None
        };
        Ok(Split {
            slices,
            len,
            groups,
            part,
            m_n: m * n,
        })
    }

    pub fn is_split(&self) -> bool {
        self.part.is_some()
    }

    /// Workgroups of the GEMM's launch: its tiles once per slice.
    pub fn groups(&self) -> u64 {
        self.groups * self.slices as u64
    }

    /// What the GEMM writes: the partial sums when split, else `c`.
    pub fn target<'a>(&'a self, c: &'a Tensor) -> &'a Tensor {
        self.part.as_ref().unwrap_or(c)
    }

    /// Adds the slices into `c` (onto what it holds when `accumulate`);
    /// nothing when unsplit.
    pub fn finish(&self, gpu: &Gpu, c: &Tensor, accumulate: bool) -> Result<(), GpuError> {
        match &self.part {
            Some(part) => sum_slices(gpu, part, c, self.m_n, self.slices, accumulate),
            None => Ok(()),
        }
    }
}

/// `c[i] = sum_s part[s * len + i]` (+ `c[i]` when `accumulate`), `i < len`.
fn sum_slices(
    gpu: &Gpu,
    part: &Tensor,
    c: &Tensor,
    len: usize,
    slices: usize,
    accumulate: bool,
) -> Result<(), GpuError> {
    assert!(
        part.numel() >= slices * len && c.numel() >= len,
        "sum_slices: {part:?} and {c:?} for {slices} slices of {len}"
    );
    gpu.launch(
        &SLICES_SUM,
        &[("WG", 64.0)],
        &SlicesSumParams {
            len: len as u32,
            slices: slices as u32,
            accumulate: accumulate as u32,
            _pad: 0,
        },
        &[part.binding(), c.binding()],
        super::groups_for(gpu, len, 64),
    );
    Ok(())
}
