//! Batch-norm kernels against their CPU references on edge shapes.

mod common;

use bitprop::Tensor;
use bitprop::ops::norm::{
    BN_EPS, BN_MOMENTUM, Output, batch_norm_apply_cpu, batch_norm_backward,
    batch_norm_backward_cpu, batch_norm_eval, batch_norm_eval_cpu, batch_norm_stats,
    batch_norm_stats_cpu, batch_norm_train, batch_norm_train_cpu, channel_dims,
};
use common::{Rng, assert_close, gpu};

/// `batch_norm_train` with the default eps and momentum.
fn train(
    x: &Tensor,
    [gamma, beta, running_mean, running_var]: [&Tensor; 4],
    output: Output,
) -> (Tensor, Tensor, Tensor) {
    batch_norm_train(
        &gpu(),
        x,
        gamma,
        beta,
        running_mean,
        running_var,
        BN_EPS,
        BN_MOMENTUM,
        output,
    )
    .unwrap()
}

/// [N, C] and [N, C, H, W]: one value per channel (n = 1), batch 1 with S > 1,
/// one channel, odd sizes, channels of more values than a workgroup has lanes,
/// and a matrix of more channels than a workgroup has lanes (its reductions
/// run one lane per channel), and planes of whole vec4s.
const SHAPES: &[&[usize]] = &[
    &[5, 3],
    &[9, 130],
    &[1, 7],
    &[300, 1],
    &[2, 3, 5, 7],
    &[1, 4, 3, 3],
    &[3, 1, 17, 19],
    &[7, 5, 1, 1],
    &[2, 2, 40, 40],
    // four elements per lane: S == 1, and S % 4 == 0, with C % 4 == 0
    &[6, 12],
    &[3, 8, 2, 6],
    &[2, 16, 7, 4],
    // runs of four vec4s a lane (CPU adapters) crossing planes and images:
    // planes of one vec4
    &[3, 4, 2, 2],
    // the per-channel reductions a vec4 per load (S % 4 == 0, any C): one
    // vec4 per image, and planes of 6 vec4s that a lane's steps of 64
    // cross mid-image
    &[37, 3, 2, 2],
    &[70, 2, 4, 6],
];

/// Values in [-1, 1) plus a per-channel offset, so means are far from 0 and
/// the variance must not come from cancelling sums.
fn input(rng: &mut Rng, shape: &[usize], offset: f32) -> Vec<f32> {
    let [_, c, s] = channel_dims(shape);
    let len: usize = shape.iter().product();
    (0..len)
        .map(|k| rng.uniform() + offset * ((k / s) % c) as f32)
        .collect()
}

/// Tolerances: inputs are O(1) after removing the offsets and the CPU
/// reference is f64, so the device's error is f32 rounding in sums of n terms
/// (relative ~1e-6 for these n) carried into invstd and then into y = O(1).
/// A variance of 0 (n = 1) gives invstd = 1 / sqrt(eps) ~ 316, hence the rtol.
const ATOL: f32 = 5e-5;
const RTOL: f32 = 2e-5;

#[test]
fn train_forward_and_running_statistics_match_cpu() {
    let gpu = gpu();
    let mut rng = Rng::new(11);
    for &shape in SHAPES {
        let dims = channel_dims(shape);
        let c = dims[1];
        let gamma = rng.vec(c);
        let beta = rng.vec(c);
        let mut rm: Vec<f32> = rng.vec(c);
        let mut rv: Vec<f32> = rng.vec(c).iter().map(|v| v + 1.5).collect();
        let gamma_t = Tensor::from_f32(&gpu, &[c], &gamma).unwrap();
        let beta_t = Tensor::from_f32(&gpu, &[c], &beta).unwrap();
        let rm_t = Tensor::from_f32(&gpu, &[c], &rm).unwrap();
        let rv_t = Tensor::from_f32(&gpu, &[c], &rv).unwrap();
        // Two steps, so the running statistics accumulate over batches.
        for step in 0..2 {
            let what = format!("train {shape:?} step {step}");
            let x = input(&mut rng, shape, 3.0);
            let x_t = Tensor::from_f32(&gpu, shape, &x).unwrap();
            let (y, mean, invstd) =
                train(&x_t, [&gamma_t, &beta_t, &rm_t, &rv_t], Output::Normalised);
            let (want_y, want_mean, want_invstd) = batch_norm_train_cpu(
                &x,
                dims,
                &gamma,
                &beta,
                &mut rm,
                &mut rv,
                BN_EPS,
                BN_MOMENTUM,
            );
            assert_eq!(y.shape(), shape);
            assert_close(
                &format!("{what} mean"),
                &mean.to_f32(&gpu).unwrap(),
                &want_mean,
                1e-5,
                1e-6,
            );
            assert_close(
                &format!("{what} invstd"),
                &invstd.to_f32(&gpu).unwrap(),
                &want_invstd,
                ATOL,
                RTOL,
            );
            assert_close(
                &format!("{what} y"),
                &y.to_f32(&gpu).unwrap(),
                &want_y,
                ATOL,
                RTOL,
            );
            assert_close(
                &format!("{what} running_mean"),
                &rm_t.to_f32(&gpu).unwrap(),
                &rm,
                1e-5,
                1e-6,
            );
            assert_close(
                &format!("{what} running_var"),
                &rv_t.to_f32(&gpu).unwrap(),
                &rv,
                1e-5,
                1e-5,
            );
        }
    }
}

#[test]
fn eval_forward_matches_cpu() {
    let gpu = gpu();
    let mut rng = Rng::new(12);
    for &shape in SHAPES {
        let dims = channel_dims(shape);
        let c = dims[1];
        let x = input(&mut rng, shape, 0.5);
        let gamma = rng.vec(c);
        let beta = rng.vec(c);
        let rm = rng.vec(c);
        let rv: Vec<f32> = rng.vec(c).iter().map(|v| v + 1.5).collect();
        let t = |v: &[f32], s: &[usize]| Tensor::from_f32(&gpu, s, v).unwrap();
        let y = batch_norm_eval(
            &gpu,
            &t(&x, shape),
            &t(&gamma, &[c]),
            &t(&beta, &[c]),
            &t(&rm, &[c]),
            &t(&rv, &[c]),
            BN_EPS,
        )
        .unwrap();
        let want = batch_norm_eval_cpu(&x, dims, &gamma, &beta, &rm, &rv, BN_EPS);
        // Elementwise: a few ulps of f32 on values up to ~|x - mean| / 0.7 + 1.
        assert_close(
            &format!("eval {shape:?}"),
            &y.to_f32(&gpu).unwrap(),
            &want,
            1e-5,
            1e-5,
        );
    }
}

#[test]
fn backward_matches_cpu() {
    let gpu = gpu();
    let mut rng = Rng::new(13);
    for &shape in SHAPES {
        let dims = channel_dims(shape);
        let [n, c, s] = dims;
        let x = input(&mut rng, shape, 2.0);
        let g = rng.vec(x.len());
        let gamma = rng.vec(c);
        let beta = rng.vec(c);
        let t = |v: &[f32], s: &[usize]| Tensor::from_f32(&gpu, s, v).unwrap();
        let (x_t, gamma_t) = (t(&x, shape), t(&gamma, &[c]));
        let rm_t = Tensor::zeros(&gpu, &[c], bitprop::DType::F32).unwrap();
        let rv_t = t(&vec![1.0; c], &[c]);
        let (_, mean, invstd) = train(
            &x_t,
            [&gamma_t, &t(&beta, &[c]), &rm_t, &rv_t],
            Output::Normalised,
        );
        let (dx, dgamma, dbeta) =
            batch_norm_backward(&gpu, &x_t, &t(&g, shape), &gamma_t, &mean, &invstd, None).unwrap();
        // The reference starts from the device's saved statistics, so this
        // compares the backward alone.
        let (want_dx, want_dgamma, want_dbeta) = batch_norm_backward_cpu(
            &x,
            &g,
            dims,
            &gamma,
            &mean.to_f32(&gpu).unwrap(),
            &invstd.to_f32(&gpu).unwrap(),
        );
        // dgamma and dbeta are f32 sums of n terms of magnitude <= ~2: the
        // error bound grows with n. dx divides those sums by n again.
        let count = (n * s) as f32;
        let sum_atol = 1e-5 + 2e-7 * count;
        let what = format!("backward {shape:?}");
        assert_close(
            &format!("{what} dbeta"),
            &dbeta.to_f32(&gpu).unwrap(),
            &want_dbeta,
            sum_atol,
            1e-5,
        );
        assert_close(
            &format!("{what} dgamma"),
            &dgamma.to_f32(&gpu).unwrap(),
            &want_dgamma,
            sum_atol,
            1e-5,
        );
        assert_close(
            &format!("{what} dx"),
            &dx.to_f32(&gpu).unwrap(),
            &want_dx,
            ATOL,
            RTOL,
        );
    }
}

/// Batch norm with the sign fused in ([`Output::Sign`]) and its backward
/// with the clipped STE's mask: the signs of the reference's y, and the
/// reference backward of `g * 1[|y| <= 1]`. g is zero where |y| lies within
/// 1e-3 of 1 (f32 rounding may put y on either side there), and signs are
/// not compared where |y| < 1e-4.
#[test]
fn sign_output_and_clipped_ste_backward_match_cpu() {
    let gpu = gpu();
    let mut rng = Rng::new(16);
    let (mut kept, mut clipped) = (0, 0);
    for &shape in SHAPES {
        let dims = channel_dims(shape);
        let [n, c, s] = dims;
        let x = input(&mut rng, shape, 2.0);
        // |gamma| up to 2, |beta| up to 1: values on both sides of the clip.
        let gamma: Vec<f32> = rng.vec(c).iter().map(|v| 2.0 * v).collect();
        let beta = rng.vec(c);
        let t = |v: &[f32], s: &[usize]| Tensor::from_f32(&gpu, s, v).unwrap();
        let (x_t, gamma_t, beta_t) = (t(&x, shape), t(&gamma, &[c]), t(&beta, &[c]));
        let rm_t = Tensor::zeros(&gpu, &[c], bitprop::DType::F32).unwrap();
        let rv_t = t(&vec![1.0; c], &[c]);
        let (y, mean, invstd) = train(&x_t, [&gamma_t, &beta_t, &rm_t, &rv_t], Output::Sign);
        let (mean_v, invstd_v) = (mean.to_f32(&gpu).unwrap(), invstd.to_f32(&gpu).unwrap());
        let z = batch_norm_apply_cpu(&x, dims, &mean_v, &invstd_v, &gamma, &beta);
        for (k, (&got, &zk)) in y.to_f32(&gpu).unwrap().iter().zip(&z).enumerate() {
            if zk.abs() >= 1e-4 {
                let want = if zk >= 0.0 { 1.0 } else { -1.0 };
                assert_eq!(got, want, "sign output {shape:?} at {k}: y = {zk}");
            }
        }
        let g: Vec<f32> = rng
            .vec(x.len())
            .iter()
            .zip(&z)
            .map(|(&gk, zk)| {
                if (zk.abs() - 1.0).abs() < 1e-3 {
                    0.0
                } else {
                    gk
                }
            })
            .collect();
        let masked: Vec<f32> = g
            .iter()
            .zip(&z)
            .map(|(&gk, zk)| if zk.abs() <= 1.0 { gk } else { 0.0 })
            .collect();
        kept += z.iter().filter(|zk| zk.abs() <= 1.0).count();
        clipped += z.iter().filter(|zk| zk.abs() > 1.0).count();
        let (dx, dgamma, dbeta) = batch_norm_backward(
            &gpu,
            &x_t,
            &t(&g, shape),
            &gamma_t,
            &mean,
            &invstd,
            Some(&beta_t),
        )
        .unwrap();
        let (want_dx, want_dgamma, want_dbeta) =
            batch_norm_backward_cpu(&x, &masked, dims, &gamma, &mean_v, &invstd_v);
        let sum_atol = 1e-5 + 2e-7 * (n * s) as f32;
        let what = format!("clipped STE backward {shape:?}");
        let got = [&dbeta, &dgamma, &dx].map(|t| t.to_f32(&gpu).unwrap());
        assert_close(
            &format!("{what} dbeta"),
            &got[0],
            &want_dbeta,
            sum_atol,
            1e-5,
        );
        assert_close(
            &format!("{what} dgamma"),
            &got[1],
            &want_dgamma,
            sum_atol,
            1e-5,
        );
        // gamma up to 2: twice backward_matches_cpu's bound.
        assert_close(
            &format!("{what} dx"),
            &got[2],
            &want_dx,
            2.0 * ATOL,
            2.0 * RTOL,
        );
    }
    assert!(
        kept > 100 && clipped > 100,
        "the shapes must exercise both sides of the clip: {kept} kept, {clipped} clipped"
    );
}

#[test]
fn stats_match_cpu_and_survive_large_offsets() {
    let gpu = gpu();
    let mut rng = Rng::new(14);
    for &shape in SHAPES {
        let dims = channel_dims(shape);
        // Channel c is offset by 500 c: E[x^2] - E[x]^2 in f32 would lose the
        // variance (~1/3) to cancellation of terms ~2.5e5 * c^2, off by far
        // more than the tolerance; two passes keep it to a few ulps.
        let x = input(&mut rng, shape, 500.0);
        let (mean, var) =
            batch_norm_stats(&gpu, &Tensor::from_f32(&gpu, shape, &x).unwrap()).unwrap();
        let (want_mean, want_var) = batch_norm_stats_cpu(&x, dims);
        let what = format!("stats {shape:?}");
        assert_close(
            &format!("{what} mean"),
            &mean.to_f32(&gpu).unwrap(),
            &want_mean,
            1e-5,
            1e-6,
        );
        assert_close(
            &format!("{what} var"),
            &var.to_f32(&gpu).unwrap(),
            &want_var,
            1e-5,
            1e-4,
        );
    }
}

#[test]
fn batch_norm_across_several_dispatch_rows() {
    let gpu = gpu();
    let mut rng = Rng::new(15);
    let shape = [3, 7, 5, 5];
    let dims = channel_dims(&shape);
    let c = dims[1];
    let x = input(&mut rng, &shape, 1.0);
    let g = rng.vec(x.len());
    let gamma = rng.vec(c);
    let beta = rng.vec(c);
    let mut rm = vec![0.0; c];
    let mut rv = vec![1.0; c];
    let t = |v: &[f32], s: &[usize]| Tensor::from_f32(&gpu, s, v).unwrap();
    let (x_t, gamma_t, rm_t, rv_t) = (t(&x, &shape), t(&gamma, &[c]), t(&rm, &[c]), t(&rv, &[c]));
    gpu.set_grid_limit(3);
    let (y, mean, invstd) = train(
        &x_t,
        [&gamma_t, &t(&beta, &[c]), &rm_t, &rv_t],
        Output::Normalised,
    );
    let (dx, dgamma, dbeta) =
        batch_norm_backward(&gpu, &x_t, &t(&g, &shape), &gamma_t, &mean, &invstd, None).unwrap();
    let got: Vec<Vec<f32>> = [&y, &mean, &invstd, &rm_t, &rv_t, &dx, &dgamma, &dbeta]
        .iter()
        .map(|t| t.to_f32(&gpu).unwrap())
        .collect();
    gpu.set_grid_limit(u32::MAX);
    let (want_y, want_mean, want_invstd) = batch_norm_train_cpu(
        &x,
        dims,
        &gamma,
        &beta,
        &mut rm,
        &mut rv,
        BN_EPS,
        BN_MOMENTUM,
    );
    let (want_dx, want_dgamma, want_dbeta) =
        batch_norm_backward_cpu(&x, &g, dims, &gamma, &got[1], &got[2]);
    let wants = [
        &want_y,
        &want_mean,
        &want_invstd,
        &rm,
        &rv,
        &want_dx,
        &want_dgamma,
        &want_dbeta,
    ];
    let names = [
        "y",
        "mean",
        "invstd",
        "running_mean",
        "running_var",
        "dx",
        "dgamma",
        "dbeta",
    ];
    for ((name, got), want) in names.iter().zip(&got).zip(wants) {
        assert_close(&format!("several rows {name}"), got, want, ATOL, RTOL);
    }
}
