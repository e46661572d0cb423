//! Sign bit packing: f32 -> 1 bit per element, 32 per u32 word.

use crate::gpu::{Gpu, GpuError};
use crate::kernel;
use crate::tensor::{DType, Tensor};

use super::groups_for;

/// Where word j of row r lives in a packed operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitLayout {
    /// `[rows, kw]`: a row's words are contiguous.
    RowMajor,
    /// `[kw, rows]`: word j of every row is contiguous (suits lanes that walk rows).
    WordMajor,
}

/// A packed sign matrix: `rows` rows of `k` bits in `kw = ceil(k / 32)` words.
#[derive(Clone, Debug)]
pub struct PackedBits {
    pub words: Tensor,
    pub rows: usize,
    pub k: usize,
    pub layout: BitLayout,
}

impl PackedBits {
    pub fn kw(&self) -> usize {
        self.k.div_ceil(32)
    }
}

/// The valid bits of the last word of a row of `k` packed bits (all ones
/// when `k` is a multiple of 32).
pub fn last_word_mask(k: usize) -> u32 {
    if k.is_multiple_of(32) {
        u32::MAX
    } else {
        (1u32 << (k % 32)) - 1
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PackParams {
    rows: u32,
    k: u32,
    kw: u32,
    inner: u32,
    word_major: u32,
    _pad: [u32; 3],
}

const PACK: crate::gpu::Kernel = kernel!(
    ["pack/pack_common.wgsl", "pack/pack_signs.wgsl"],
    "pack_signs",
    [Read, ReadWrite]
);
/// [`PACK`] reading rows as vec4s (inner == 1, k % 4 == 0).
const PACK_ROWS4: crate::gpu::Kernel = kernel!(
    ["pack/pack_common.wgsl", "pack/pack_signs4.wgsl"],
    "pack_rows4",
    [Read, ReadWrite]
);
/// [`PACK`] four rows per lane (inner % 4 == 0).
const PACK_INNER4: crate::gpu::Kernel = kernel!(
    ["pack/pack_common.wgsl", "pack/pack_signs4.wgsl"],
    "pack_inner4",
    [Read, ReadWrite]
);

/// Packs the signs of `x` viewed as `[outer, k, inner]` along `k`: one row
/// of bits per (outer, inner) pair, row index `outer * inner + s`.
/// A matrix `[rows, k]` is `inner = 1`; NCHW activations packed along
/// channels are `outer = N, k = C, inner = H * W`.
pub fn pack_signs(
    gpu: &Gpu,
    x: &Tensor,
    outer: usize,
    k: usize,
    inner: usize,
    layout: BitLayout,
) -> Result<PackedBits, GpuError> {
    pack_bits(gpu, x, outer, k, inner, layout, 0.0)
}

/// [`pack_signs`] with bit 1 meaning `x >= threshold`: {0, 1} activations
/// pack at threshold 0.5 (bit 1 = 1) for [`super::gemm::and_gemm`].
pub fn pack_bits(
    gpu: &Gpu,
    x: &Tensor,
    outer: usize,
    k: usize,
    inner: usize,
    layout: BitLayout,
    threshold: f32,
) -> Result<PackedBits, GpuError> {
    assert_eq!(
        x.numel(),
        outer * k * inner,
        "pack_signs: {x:?} is not [{outer}, {k}, {inner}]"
    );
    let rows = outer * inner;
    let kw = k.div_ceil(32);
    let shape = match layout {
        BitLayout::RowMajor => [rows, kw],
        BitLayout::WordMajor => [kw, rows],
    };
    let out = Tensor::empty(gpu, &shape, DType::U32)?;
    let params = PackParams {
        rows: rows as u32,
        k: k as u32,
        kw: kw as u32,
        inner: inner as u32,
        word_major: (layout == BitLayout::WordMajor) as u32,
        _pad: [0; 3],
    };
    // Four values per load where the layout allows it.
    let (kernel, lanes) = if inner == 1 && k.is_multiple_of(4) {
        (&PACK_ROWS4, rows * kw)
    } else if inner.is_multiple_of(4) {
        (&PACK_INNER4, rows / 4 * kw)
    } else {
        (&PACK, rows * kw)
    };
    gpu.launch(
        kernel,
        &[("WG", 64.0), ("THRESH", threshold as f64)],
        &params,
        &[x.binding(), out.binding()],
        groups_for(gpu, lanes, 64),
    );
    Ok(PackedBits {
        words: out,
        rows,
        k,
        layout,
    })
}

/// CPU reference of [`pack_signs`] for a matrix `[rows, k]`, row-major output.
pub fn pack_signs_cpu(x: &[f32], rows: usize, k: usize) -> Vec<u32> {
    let kw = k.div_ceil(32);
    let mut out = vec![0u32; rows * kw];
    for r in 0..rows {
        for i in 0..k {
            if x[r * k + i] >= 0.0 {
                out[r * kw + i / 32] |= 1 << (i % 32);
            }
        }
    }
    out
}

/// CPU reference: the signs of `[outer, k, inner]` packed along `k`, row-major `[outer*inner, kw]`.
pub fn pack_signs_strided_cpu(x: &[f32], outer: usize, k: usize, inner: usize) -> Vec<u32> {
    let mut rows = vec![0f32; outer * inner * k];
    for o in 0..outer {
        for c in 0..k {
            for s in 0..inner {
                rows[(o * inner + s) * k + c] = x[(o * k + c) * inner + s];
            }
        }
    }
    pack_signs_cpu(&rows, outer * inner, k)
}

/// Transposes row-major packed words `[rows, kw]` to word-major `[kw, rows]`.
pub fn to_word_major_cpu(words: &[u32], rows: usize, kw: usize) -> Vec<u32> {
    let mut out = vec![0u32; words.len()];
    for r in 0..rows {
        for j in 0..kw {
            out[j * rows + r] = words[r * kw + j];
        }
    }
    out
}
