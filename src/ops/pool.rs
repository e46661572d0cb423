//! 2x2 pooling with stride 2 over NCHW tensors, floor for odd sizes (an odd
//! last row or column is dropped, PyTorch's default): max pooling with the
//! argmax kept for the backward, and average pooling.

use crate::gpu::{Gpu, GpuError, Kernel};
use crate::kernel;
use crate::tensor::{DType, Tensor};

use super::groups_for;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PoolParams {
    planes: u32,
    h: u32,
    w: u32,
    ho: u32,
    wo: u32,
    _pad: [u32; 3],
}

const MAX_POOL: Kernel = kernel!(
    ["pool/pool_common.wgsl", "pool/max_pool.wgsl"],
    "max_pool_forward",
    [Read, ReadWrite, ReadWrite]
);
/// [`MAX_POOL`] one window per lane reading vec2 rows, for even H and W.
const MAX_POOL2: Kernel = kernel!(
    ["pool/pool_common.wgsl", "pool/max_pool_forward2.wgsl"],
    "max_pool_forward2",
    [Read, ReadWrite, ReadWrite]
);
/// [`MAX_POOL`] two windows per lane reading vec4 rows, for W % 4 == 0 and
/// even H.
const MAX_POOL4: Kernel = kernel!(
    ["pool/pool_common.wgsl", "pool/max_pool_forward4.wgsl"],
    "max_pool_forward4",
    [Read, ReadWrite, ReadWrite]
);
const MAX_POOL_BACKWARD: Kernel = kernel!(
    ["pool/pool_common.wgsl", "pool/max_pool_backward.wgsl"],
    "max_pool_backward",
    [Read, Read, ReadWrite]
);
/// [`MAX_POOL_BACKWARD`] one window per lane, for even H and W.
const MAX_POOL_BACKWARD_WINDOWS: Kernel = kernel!(
    [
        "pool/pool_common.wgsl",
        "pool/max_pool_backward_windows.wgsl"
    ],
    "max_pool_backward_windows",
    [Read, Read, ReadWrite]
);
/// [`MAX_POOL_BACKWARD_WINDOWS`] two windows per lane on vec4 rows, for
/// W % 4 == 0 and even H.
const MAX_POOL_BACKWARD_WINDOWS4: Kernel = kernel!(
    [
        "pool/pool_common.wgsl",
        "pool/max_pool_backward_windows4.wgsl"
    ],
    "max_pool_backward_windows4",
    [Read, Read, ReadWrite]
);
const AVG_POOL: Kernel = kernel!(
    ["pool/pool_common.wgsl", "pool/avg_pool.wgsl"],
    "avg_pool_forward",
    [Read, ReadWrite]
);
const AVG_POOL_BACKWARD: Kernel = kernel!(
    ["pool/pool_common.wgsl", "pool/avg_pool.wgsl"],
    "avg_pool_backward",
    [Read, ReadWrite]
);

/// The output shape `[N, C, H / 2, W / 2]` of pooling an input `[N, C, H, W]`.
pub fn pooled_shape(input_shape: &[usize]) -> [usize; 4] {
    let &[n, c, h, w] = input_shape else {
        panic!("pool: input {input_shape:?} is not [N, C, H, W]");
    };
    assert!(
        h >= 2 && w >= 2,
        "pool: a 2x2 window does not fit in {input_shape:?}"
    );
    [n, c, h / 2, w / 2]
}

fn params(input_shape: &[usize]) -> PoolParams {
    let [n, c, ho, wo] = pooled_shape(input_shape);
    PoolParams {
        planes: (n * c) as u32,
        h: input_shape[2] as u32,
        w: input_shape[3] as u32,
        ho: ho as u32,
        wo: wo as u32,
        _pad: [0; 3],
    }
}

/// Max pooling: returns `(y, argmax)`, both `[N, C, H/2, W/2]`, with
/// `y[n, c, i, j] = max over the window x[n, c, 2i..2i+2, 2j..2j+2]` and
/// `argmax` (u32) the index `h * W + w` of that maximum within the input
/// plane; ties go to the first in row-major window order.
pub fn max_pool2x2(gpu: &Gpu, x: &Tensor) -> Result<(Tensor, Tensor), GpuError> {
    let out_shape = pooled_shape(x.shape());
    let y = Tensor::empty(gpu, &out_shape, DType::F32)?;
    let argmax = Tensor::empty(gpu, &out_shape, DType::U32)?;
    let [h, w] = [x.shape()[2], x.shape()[3]];
    let (kernel, lanes) = match (h % 2, w % 4) {
        (0, 0) => (&MAX_POOL4, y.numel() / 2),
        (0, 2) => (&MAX_POOL2, y.numel()),
        _ => (&MAX_POOL, y.numel()),
    };
    gpu.launch(
        kernel,
        &[("WG", 64.0)],
        &params(x.shape()),
        &[x.binding(), y.binding(), argmax.binding()],
        groups_for(gpu, lanes, 64),
    );
    Ok((y, argmax))
}

/// Backward of [`max_pool2x2`]: `dx` of `input_shape`, `dx[h, w] = g[h/2, w/2]`
/// where `(h, w)` is its window's argmax, 0 everywhere else.
pub fn max_pool2x2_backward(
    gpu: &Gpu,
    g: &Tensor,
    argmax: &Tensor,
    input_shape: &[usize],
) -> Result<Tensor, GpuError> {
    let out_shape = pooled_shape(input_shape);
    assert_eq!(
        g.shape(),
        out_shape,
        "max_pool2x2_backward: g {g:?} for input {input_shape:?}"
    );
    assert_eq!(
        argmax.shape(),
        out_shape,
        "max_pool2x2_backward: argmax {argmax:?} for input {input_shape:?}"
    );
    let dx = Tensor::empty(gpu, input_shape, DType::F32)?;
    // Every element lies in a window when H and W are even: one lane per
    // window, or per two where their rows are whole vec4s (as the forward).
    let [h, w] = [input_shape[2], input_shape[3]];
    let (kernel, lanes) = match (h % 2, w % 4) {
        (0, 0) => (&MAX_POOL_BACKWARD_WINDOWS4, g.numel() / 2),
        (0, 2) => (&MAX_POOL_BACKWARD_WINDOWS, g.numel()),
        _ => (&MAX_POOL_BACKWARD, dx.numel()),
    };
    gpu.launch(
        kernel,
        &[("WG", 64.0)],
        &params(input_shape),
        &[g.binding(), argmax.binding(), dx.binding()],
        groups_for(gpu, lanes, 64),
    );
    Ok(dx)
}

/// Average pooling: `y[n, c, i, j] = (1/4) sum of the window
/// x[n, c, 2i..2i+2, 2j..2j+2]`, shape `[N, C, H/2, W/2]`.
pub fn avg_pool2x2(gpu: &Gpu, x: &Tensor) -> Result<Tensor, GpuError> {
    let y = Tensor::empty(gpu, &pooled_shape(x.shape()), DType::F32)?;
    gpu.launch(
        &AVG_POOL,
        &[("WG", 64.0)],
        &params(x.shape()),
        &[x.binding(), y.binding()],
        groups_for(gpu, y.numel(), 64),
    );
    Ok(y)
}

/// Backward of [`avg_pool2x2`]: `dx[h, w] = g[h/2, w/2] / 4` inside the pooled
/// area, 0 in a dropped odd last row or column.
pub fn avg_pool2x2_backward(
    gpu: &Gpu,
    g: &Tensor,
    input_shape: &[usize],
) -> Result<Tensor, GpuError> {
    assert_eq!(
        g.shape(),
        pooled_shape(input_shape),
        "avg_pool2x2_backward: g {g:?} for input {input_shape:?}"
    );
    let dx = Tensor::empty(gpu, input_shape, DType::F32)?;
    gpu.launch(
        &AVG_POOL_BACKWARD,
        &[("WG", 64.0)],
        &params(input_shape),
        &[g.binding(), dx.binding()],
        groups_for(gpu, dx.numel(), 64),
    );
    Ok(dx)
}

/// The input indices `h * W + w` of output `(i, j)`'s window, row-major.
fn window(i: usize, j: usize, w: usize) -> [usize; 4] {
    let first = 2 * i * w + 2 * j;
    [first, first + 1, first + w, first + w + 1]
}

/// CPU reference of [`max_pool2x2`] for `x` `[n, c, h, w]`: `(y, argmax)`.
pub fn max_pool2x2_cpu(x: &[f32], [n, c, h, w]: [usize; 4]) -> (Vec<f32>, Vec<u32>) {
    let (ho, wo) = (h / 2, w / 2);
    let mut y = Vec::with_capacity(n * c * ho * wo);
    let mut arg = Vec::with_capacity(n * c * ho * wo);
    for plane in x.chunks(h * w) {
        for i in 0..ho {
            for j in 0..wo {
                let win = window(i, j, w);
                let mut best = win[0];
                for &k in &win[1..] {
                    if plane[k] > plane[best] {
                        best = k;
                    }
                }
                y.push(plane[best]);
                arg.push(best as u32);
            }
        }
    }
    (y, arg)
}

/// CPU reference of [`max_pool2x2_backward`].
pub fn max_pool2x2_backward_cpu(g: &[f32], argmax: &[u32], [n, c, h, w]: [usize; 4]) -> Vec<f32> {
    let plane_out = (h / 2) * (w / 2);
    let mut dx = vec![0f32; n * c * h * w];
    for (o, (&gv, &a)) in g.iter().zip(argmax).enumerate() {
        dx[(o / plane_out) * h * w + a as usize] = gv;
    }
    dx
}

/// CPU reference of [`avg_pool2x2`].
pub fn avg_pool2x2_cpu(x: &[f32], [_, _, h, w]: [usize; 4]) -> Vec<f32> {
    let mut y = Vec::new();
    for plane in x.chunks(h * w) {
        for i in 0..h / 2 {
            for j in 0..w / 2 {
                y.push(window(i, j, w).iter().map(|&k| plane[k]).sum::<f32>() / 4.0);
            }
        }
    }
    y
}

/// CPU reference of [`avg_pool2x2_backward`].
pub fn avg_pool2x2_backward_cpu(g: &[f32], [n, c, h, w]: [usize; 4]) -> Vec<f32> {
    let (ho, wo) = (h / 2, w / 2);
    let mut dx = vec![0f32; n * c * h * w];
    for plane in 0..n * c {
        for i in 0..ho {
            for j in 0..wo {
                for k in window(i, j, w) {
                    dx[plane * h * w + k] = g[(plane * ho + i) * wo + j] / 4.0;
                }
            }
        }
    }
    dx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *state >> 33
    }

    /// Distinct values 0.1 apart in a shuffled order: every window has a
    /// unique maximum that a step of 0.01 cannot change.
    fn distinct(n: usize, seed: u64) -> Vec<f32> {
        let mut v: Vec<f32> = (0..n).map(|i| i as f32 * 0.1 - 3.0).collect();
        let mut state = seed;
        for i in (1..n).rev() {
            v.swap(i, lcg(&mut state) as usize % (i + 1));
        }
        v
    }

    /// Checks `grad` against central differences of `sum(g * forward(x))`.
    /// Both pools are linear in x near these points, so with f32 values
    /// around 3 only rounding remains: ~2e-7 * 3 * 4 / 0.02, under 1e-3.
    fn fd_check(
        what: &str,
        grad: &[f32],
        x: &[f32],
        g: &[f32],
        forward: impl Fn(&[f32]) -> Vec<f32>,
    ) {
        let h = 1e-2f32;
        let loss = |x: &[f32]| -> f64 {
            forward(x)
                .iter()
                .zip(g)
                .map(|(&y, &g)| y as f64 * g as f64)
                .sum()
        };
        for i in 0..x.len() {
            let mut xp = x.to_vec();
            xp[i] += h;
            let mut xm = x.to_vec();
            xm[i] -= h;
            let want = (loss(&xp) - loss(&xm)) / (2.0 * h as f64);
            assert!(
                (grad[i] as f64 - want).abs() <= 1e-3,
                "{what}: element {i}: backward {}, finite difference {want}",
                grad[i]
            );
        }
    }

    #[test]
    fn backwards_match_finite_differences() {
        // Odd H and W: the dropped last row and column get zero gradient.
        for dims in [[2, 3, 5, 7], [1, 1, 2, 2], [1, 2, 4, 3]] {
            let len: usize = dims.iter().product();
            let x = distinct(len, dims[2] as u64);
            let [_, _, ho, wo] = pooled_shape(&dims);
            let g: Vec<f32> = distinct(dims[0] * dims[1] * ho * wo, 9)
                .iter()
                .map(|v| v + 0.05)
                .collect();
            let (_, argmax) = max_pool2x2_cpu(&x, dims);
            let dx = max_pool2x2_backward_cpu(&g, &argmax, dims);
            fd_check(&format!("max pool {dims:?}"), &dx, &x, &g, |x| {
                max_pool2x2_cpu(x, dims).0
            });
            let dx = avg_pool2x2_backward_cpu(&g, dims);
            fd_check(&format!("avg pool {dims:?}"), &dx, &x, &g, |x| {
                avg_pool2x2_cpu(x, dims)
            });
        }
    }

    #[test]
    fn max_pool_ties_go_to_the_first_in_the_window() {
        let x = [1.0, 1.0, 0.0, 1.0, 1.0, 0.0];
        let (y, arg) = max_pool2x2_cpu(&x, [1, 1, 2, 3]);
        assert_eq!((y, arg), (vec![1.0], vec![0]));
        let x = [0.0, 2.0, 2.0, 2.0];
        assert_eq!(max_pool2x2_cpu(&x, [1, 1, 2, 2]).1, [1]);
    }
}
