//! Per-channel affine maps: scaling rows or channels by a vector.

use crate::gpu::{Gpu, GpuError, Kernel};
use crate::kernel;
use crate::tensor::{DType, Tensor};

use super::{groups_for, unused};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct AffineParams {
    total: u32,
    channels: u32,
    inner: u32,
    has_scale: u32,
    has_bias: u32,
    sign_input: u32,
    _pad: [u32; 2],
}

const AFFINE: Kernel = kernel!(
    "act/channel_affine.wgsl",
    "channel_affine",
    [Read, Read, Read, ReadWrite]
);

/// `y[o, c, s] = x[o, c, s] * scale[c] + bias[c]` for `x` viewed as
/// `[outer, channels, inner]`; either vector may be absent.
pub fn channel_affine(
    gpu: &Gpu,
    x: &Tensor,
    channels: usize,
    inner: usize,
    scale: Option<&Tensor>,
    bias: Option<&Tensor>,
) -> Result<Tensor, GpuError> {
    affine(gpu, x, channels, inner, scale, bias, false)
}

/// `scale[c] * sign(x)` (+1 where x >= 0, else -1) in one pass, `x`
/// viewed as `[channels, inner]`: a binary layer's `alpha_o * sign(W)`.
pub fn scaled_sign_rows(gpu: &Gpu, x: &Tensor, scale: &Tensor) -> Result<Tensor, GpuError> {
    let rows = x.shape()[0];
    affine(gpu, x, rows, x.numel() / rows, Some(scale), None, true)
}

fn affine(
    gpu: &Gpu,
    x: &Tensor,
    channels: usize,
    inner: usize,
    scale: Option<&Tensor>,
    bias: Option<&Tensor>,
    sign_input: bool,
) -> Result<Tensor, GpuError> {
    assert_eq!(
        x.numel() % (channels * inner),
        0,
        "channel_affine: {x:?} is not [_, {channels}, {inner}]"
    );
    for v in [scale, bias].into_iter().flatten() {
        assert_eq!(
            v.numel(),
            channels,
            "channel_affine: {v:?} must have {channels} elements"
        );
    }
    let y = Tensor::empty(gpu, x.shape(), DType::F32)?;
    let params = AffineParams {
        total: x.numel() as u32,
        channels: channels as u32,
        inner: inner as u32,
        has_scale: scale.is_some() as u32,
        has_bias: bias.is_some() as u32,
        sign_input: sign_input as u32,
        _pad: [0; 2],
    };
    gpu.launch(
        &AFFINE,
        &[("WG", 64.0)],
        &params,
        &[
            x.binding(),
            scale.map_or(unused(x), |t| t.binding()),
            bias.map_or(unused(x), |t| t.binding()),
            y.binding(),
        ],
        groups_for(gpu, x.numel(), 64),
    );
    Ok(y)
}

/// CPU reference of [`channel_affine`].
pub fn channel_affine_cpu(
    x: &[f32],
    channels: usize,
    inner: usize,
    scale: Option<&[f32]>,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = (i / inner) % channels;
            v * scale.map_or(1.0, |s| s[c]) + bias.map_or(0.0, |b| b[c])
        })
        .collect()
}
