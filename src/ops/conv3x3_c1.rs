//! A 3x3, stride-1 convolution of a one-channel input (a network's first
//! layer on grayscale images), computed directly (shaders/conv/conv3x3_c1*).
//! As im2col + GEMM its K is 9, which leaves the GEMM's tiles mostly idle:
//! on lavapipe the bcnn conv1 forward took 126-180 ms as a GEMM plus 20-34 ms
//! of im2col, its weight gradient 70 + 17 ms of layouts and a 126-135 ms GEMM.
//! [`super::conv_gemm`] runs these where [`applies`] says so.

use crate::gpu::{Gpu, GpuError, Kernel};
use crate::kernel;
use crate::tensor::{DType, Tensor};

use super::conv::Conv2dGeom;
use super::gemm::relayout;
use super::groups_for;
use super::reduce::{Reduction, reduce_channels};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    o: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow4: u32,
    pad: u32,
    count: u32,
    lanes_per_block: u32,
    _pad: [u32; 3],
}

const FORWARD: Kernel = kernel!(
    ["conv/conv3x3_c1_common.wgsl", "conv/conv3x3_c1.wgsl"],
    "f32_conv3x3_c1_forward",
    [Read, Read, ReadWrite]
);
const WEIGHTS: Kernel = kernel!(
    [
        "conv/conv3x3_c1_common.wgsl",
        "conv/conv3x3_c1_weights.wgsl"
    ],
    "f32_conv3x3_c1_weights",
    [Read, Read, ReadWrite]
);

/// Lanes that split the weight gradient's pixels, per four output channels;
/// each writes a row of partial sums that a reduction adds up.
const LANES_PER_BLOCK: usize = 256;

/// Whether the direct kernels take `g`: one input channel, 3x3, stride 1,
/// output rows of whole vec4s, output channels in fours, and the input and
/// output within one storage binding.
pub fn applies(gpu: &Gpu, g: &Conv2dGeom) -> bool {
    let limit = gpu.max_binding_bytes() as usize;
    g.c == 1
        && g.kh == 3
        && g.kw == 3
        && g.stride == 1
        && g.out_w().is_multiple_of(4)
        && g.o.is_multiple_of(4)
        && g.n * g.o * g.out_h() * g.out_w() * 4 <= limit
        && g.n * g.h * g.w * 4 <= limit
}

fn params(g: &Conv2dGeom, count: usize, lanes_per_block: usize) -> Params {
    Params {
        n: g.n as u32,
        o: g.o as u32,
        h: g.h as u32,
        w: g.w as u32,
        oh: g.out_h() as u32,
        ow4: (g.out_w() / 4) as u32,
        pad: g.pad as u32,
        count: count as u32,
        lanes_per_block: lanes_per_block as u32,
        _pad: [0; 3],
    }
}

/// `y = conv2d(x, w)`, zero padding, no bias; `x [N, 1, H, W]`, `w [O, 1, 3, 3]`.
pub fn forward(gpu: &Gpu, x: &Tensor, w: &Tensor, g: Conv2dGeom) -> Result<Tensor, GpuError> {
    assert!(
        applies(gpu, &g),
        "conv3x3_c1: geometry {g:?} does not apply"
    );
    // Each channel's nine taps padded to three vec4s.
    let w12 = relayout(gpu, w, g.o, 9, 12, 9, 1)?;
    let y = Tensor::empty(gpu, &g.output_shape(), DType::F32)?;
    let lanes = g.n * g.out_h().div_ceil(2) * (g.out_w() / 4);
    gpu.launch(
        &FORWARD,
        &[("WG", 64.0)],
        &params(&g, lanes, 0),
        &[x.binding(), w12.binding(), y.binding()],
        groups_for(gpu, lanes, 64),
    );
    Ok(y)
}

/// `dw [O, 1, 3, 3]` of [`forward`] for the output gradient `dy`.
pub fn backward_weights(
    gpu: &Gpu,
    x: &Tensor,
    dy: &Tensor,
    g: Conv2dGeom,
) -> Result<Tensor, GpuError> {
    assert!(
        applies(gpu, &g),
        "conv3x3_c1: geometry {g:?} does not apply"
    );
    let pairs = g.n * g.out_h().div_ceil(2);
    let lanes = pairs.min(LANES_PER_BLOCK);
    let partial = Tensor::empty(gpu, &[lanes, g.o * 9], DType::F32)?;
    gpu.launch(
        &WEIGHTS,
        &[("WG", 64.0)],
        &params(&g, pairs, lanes),
        &[x.binding(), dy.binding(), partial.binding()],
        groups_for(gpu, g.o / 4 * lanes, 64),
    );
    Ok(reduce_channels(gpu, &partial, Reduction::Sum)?.reshape(&g.weight_shape()))
}
