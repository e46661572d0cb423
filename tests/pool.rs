//! 2x2 max and average pooling against their CPU references.

mod common;

use bitprop::ops::pool::*;
use bitprop::{Gpu, Tensor};
use common::{Rng, assert_close, gpu};

/// NCHW inputs: the smallest window, odd H and W (dropped row/column), a
/// single wide row of windows, more outputs than one workgroup.
const SHAPES: &[[usize; 4]] = &[
    [1, 1, 2, 2],
    [1, 1, 3, 3],
    [2, 3, 5, 7],
    [3, 2, 8, 8],
    [1, 1, 2, 201],
    [2, 16, 33, 31],
    // even H and W: the backward runs one lane per window, the forward
    // too (vec2 rows)
    [2, 3, 6, 10],
    [2, 16, 34, 30],
    // W % 4 == 0: the forward and the backward run two windows per lane
    // (vec4 rows)
    [1, 1, 2, 4],
    [2, 16, 34, 28],
];

/// Coarse values so many windows hold ties (the first in the window wins).
fn coarse(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| (rng.uniform() * 3.0).round()).collect()
}

/// Leaves a NaN-filled buffer of `shape`'s size on the pool's free list, so
/// the next tensor of that size likely reuses it: a kernel that skips an
/// element then shows NaN there.
fn poison(gpu: &Gpu, shape: &[usize]) {
    let n = shape.iter().product();
    drop(Tensor::from_f32(gpu, shape, &vec![f32::NAN; n]).unwrap());
}

/// The average of four values in [-3, 3]: the device may add them in another
/// order than the CPU, a couple of ulps of 3.
const AVG_TOL: f32 = 1e-6;

fn check_pools(gpu: &Gpu, rng: &mut Rng, dims: [usize; 4]) -> Box<dyn FnOnce()> {
    let len = dims.iter().product();
    let out = pooled_shape(&dims);
    let x = coarse(rng, len);
    let g = rng.vec(out.iter().product());
    let xt = Tensor::from_f32(gpu, &dims, &x).unwrap();
    let gt = Tensor::from_f32(gpu, &out, &g).unwrap();
    let (y, arg) = max_pool2x2(gpu, &xt).unwrap();
    assert_eq!((y.shape(), arg.shape()), (out.as_slice(), out.as_slice()));
    poison(gpu, &dims);
    let dx_max = max_pool2x2_backward(gpu, &gt, &arg, &dims).unwrap();
    let y_avg = avg_pool2x2(gpu, &xt).unwrap();
    poison(gpu, &dims);
    let dx_avg = avg_pool2x2_backward(gpu, &gt, &dims).unwrap();
    assert_eq!(
        (dx_max.shape(), dx_avg.shape()),
        (dims.as_slice(), dims.as_slice())
    );
    let (y, arg, dx_max) = (
        y.to_f32(gpu).unwrap(),
        arg.to_u32(gpu).unwrap(),
        dx_max.to_f32(gpu).unwrap(),
    );
    let (y_avg, dx_avg) = (y_avg.to_f32(gpu).unwrap(), dx_avg.to_f32(gpu).unwrap());
    Box::new(move || {
        let (want_y, want_arg) = max_pool2x2_cpu(&x, dims);
        assert_eq!(y, want_y, "max pool {dims:?}");
        assert_eq!(arg, want_arg, "max pool argmax {dims:?}");
        // The backward copies g or writes 0: exact.
        assert_eq!(
            dx_max,
            max_pool2x2_backward_cpu(&g, &want_arg, dims),
            "max pool backward {dims:?}"
        );
        assert_close(
            &format!("avg pool {dims:?}"),
            &y_avg,
            &avg_pool2x2_cpu(&x, dims),
            AVG_TOL,
            0.0,
        );
        // g / 4 and 0.25 * g are the same exact scaling.
        assert_eq!(
            dx_avg,
            avg_pool2x2_backward_cpu(&g, dims),
            "avg pool backward {dims:?}"
        );
    })
}

#[test]
fn pools_match_cpu() {
    let gpu = gpu();
    let mut rng = Rng::new(41);
    for &dims in SHAPES {
        check_pools(&gpu, &mut rng, dims)();
    }
}

#[test]
fn max_pool_ties_and_negative_windows() {
    let gpu = gpu();
    // Window 0: all equal (index 0 wins); window 1: all negative, the last
    // largest; window 2: a tie between the 2nd and 4th (the 2nd wins).
    let x = [
        -1.0, -1.0, -4.0, -3.0, 0.0, 5.0, //
        -1.0, -1.0, -2.0, -0.5, 1.0, 5.0,
    ];
    let xt = Tensor::from_f32(&gpu, &[1, 1, 2, 6], &x).unwrap();
    let (y, arg) = max_pool2x2(&gpu, &xt).unwrap();
    assert_eq!(y.to_f32(&gpu).unwrap(), [-1.0, -0.5, 5.0]);
    assert_eq!(arg.to_u32(&gpu).unwrap(), [0, 9, 5]);
}

#[test]
fn pools_across_several_dispatch_rows() {
    let gpu = gpu();
    let mut rng = Rng::new(42);
    gpu.set_grid_limit(3);
    // 2 * 3 * 17 * 20 = 2040 inputs: 32 workgroups, 11 rows of 3.
    let check = check_pools(&gpu, &mut rng, [2, 3, 17, 20]);
    gpu.set_grid_limit(u32::MAX);
    check();
}
