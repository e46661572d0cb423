//! Device-side counters for training metrics.

use crate::gpu::{Gpu, Kernel};
use crate::kernel;
use crate::tensor::{DType, Tensor};

use super::groups_for;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct HammingParams {
    n: u32,
    slot: u32,
    _pad: [u32; 2],
}

const HAMMING: Kernel = kernel!(
    "metrics/hamming.wgsl",
    "hamming_accumulate",
    [Read, Read, ReadWrite]
);

/// `acc[slot] += popcount(a xor b)`: how many packed signs differ.
pub fn hamming_accumulate(gpu: &Gpu, a: &Tensor, b: &Tensor, acc: &Tensor, slot: usize) {
    assert_eq!(a.numel(), b.numel(), "hamming_accumulate: {a:?} vs {b:?}");
    assert!(
        a.dtype() == DType::U32 && b.dtype() == DType::U32,
        "hamming_accumulate: packed words expected"
    );
    assert!(
        slot < acc.numel(),
        "hamming_accumulate: slot {slot} outside {acc:?}"
    );
    let params = HammingParams {
        n: a.numel() as u32,
        slot: slot as u32,
        _pad: [0; 2],
    };
    gpu.launch(
        &HAMMING,
        &[("WG", 64.0)],
        &params,
        &[a.binding(), b.binding(), acc.binding()],
        groups_for(gpu, a.numel().div_ceil(64), 64),
    );
}

/// CPU reference of [`hamming_accumulate`]'s increment.
pub fn hamming_cpu(a: &[u32], b: &[u32]) -> u64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x ^ y).count_ones() as u64)
        .sum()
}
