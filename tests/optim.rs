//! Fused optimizer updates and the non-finite check against their CPU references.

mod common;

use bitprop::ops::optim::{
    AdamConfig, SgdConfig, adam_step, adam_step_cpu, adamw_step, adamw_step_cpu, check_finite,
    check_finite_cpu, finite_flag, sgd_step, sgd_step_cpu,
};
use bitprop::{DType, Gpu, Tensor};
use common::{Rng, assert_close, gpu};

/// One element, odd sizes below, at and above one 64-lane workgroup, and
/// several workgroups.
const SIZES: &[usize] = &[1, 7, 64, 65, 1000, 4099];

/// Learning rate of step t: changes every step, as a schedule would.
fn lr_at(base: f64, t: u32) -> f64 {
    base * [1.0, 0.5, 2.0, 0.1, 1.3][(t as usize - 1) % 5]
}

/// Device and reference run the same f32 operations in the same order; they
/// may differ by contraction into FMAs and by sqrt / division that are a few
/// ulps off on the device. Each step adds a few ulps of the values involved
/// (params O(1), moments O(|g|)), so over 5 steps these stay well inside.
const ATOL: f32 = 1e-6;
const RTOL: f32 = 1e-5;
/// Two ulps at 1, the largest |g|.
const M_ATOL: f32 = 2.4e-7;

fn skip_off(gpu: &Gpu) -> Tensor {
    finite_flag(gpu).unwrap()
}

#[derive(Clone, Copy, Debug)]
enum AdamKind {
    Adam,
    AdamW,
}

fn run_adam(gpu: &Gpu, kind: AdamKind, cfg: AdamConfig, n: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut w = rng.vec(n);
    let mut m = vec![0f32; n];
    let mut v = vec![0f32; n];
    let w_t = Tensor::from_f32(gpu, &[n], &w).unwrap();
    let m_t = Tensor::zeros(gpu, &[n], DType::F32).unwrap();
    let v_t = Tensor::zeros(gpu, &[n], DType::F32).unwrap();
    let skip = skip_off(gpu);
    for t in 1..=5 {
        let cfg = AdamConfig {
            lr: lr_at(cfg.lr, t),
            ..cfg
        };
        let g = rng.vec(n);
        let g_t = Tensor::from_f32(gpu, &[n], &g).unwrap();
        match kind {
            AdamKind::Adam => {
                adam_step(gpu, &w_t, &g_t, &m_t, &v_t, &skip, &cfg, t);
                adam_step_cpu(&mut w, &g, &mut m, &mut v, &cfg, t);
            }
            AdamKind::AdamW => {
                adamw_step(gpu, &w_t, &g_t, &m_t, &v_t, &skip, &cfg, t);
                adamw_step_cpu(&mut w, &g, &mut m, &mut v, &cfg, t);
            }
        }
        let what = format!("{kind:?} n={n} wd={} step {t}", cfg.weight_decay);
        assert_close(
            &format!("{what} param"),
            &w_t.to_f32(gpu).unwrap(),
            &w,
            ATOL,
            RTOL,
        );
        // m = lerp(m, g, 1 - beta1) cancels terms of the size of g (up to 1)
        // down to m: a contraction into an FMA (an NVIDIA GPU does it here)
        // moves m by an ulp of those terms, not of m.
        assert_close(
            &format!("{what} exp_avg"),
            &m_t.to_f32(gpu).unwrap(),
            &m,
            M_ATOL,
            RTOL,
        );
        assert_close(
            &format!("{what} exp_avg_sq"),
            &v_t.to_f32(gpu).unwrap(),
            &v,
            1e-10,
            RTOL,
        );
    }
}

#[test]
fn adam_matches_cpu_over_several_steps() {
    let gpu = gpu();
    for (i, &n) in SIZES.iter().enumerate() {
        for wd in [0.0, 0.05] {
            let cfg = AdamConfig {
                lr: 1e-2,
                weight_decay: wd,
                ..AdamConfig::adam()
            };
            run_adam(&gpu, AdamKind::Adam, cfg, n, 100 + i as u64);
        }
        // Betas whose lerp takes torch's other branch (1 - beta1 >= 0.5).
        let cfg = AdamConfig {
            lr: 3e-2,
            beta1: 0.3,
            beta2: 0.9,
            eps: 1e-6,
            weight_decay: 0.0,
        };
        run_adam(&gpu, AdamKind::Adam, cfg, n, 200 + i as u64);
    }
}

#[test]
fn adamw_matches_cpu_over_several_steps() {
    let gpu = gpu();
    for (i, &n) in SIZES.iter().enumerate() {
        let cfg = AdamConfig {
            lr: 1e-2,
            weight_decay: 0.5,
            ..AdamConfig::adamw()
        };
        run_adam(&gpu, AdamKind::AdamW, cfg, n, 300 + i as u64);
    }
}

fn run_sgd(gpu: &Gpu, cfg: SgdConfig, n: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut w = rng.vec(n);
    let with_buffer = cfg.momentum != 0.0;
    let mut buf = if with_buffer { vec![0f32; n] } else { vec![] };
    let w_t = Tensor::from_f32(gpu, &[n], &w).unwrap();
    // Garbage in the buffer: step 1 must overwrite it, not read it.
    let buf_t = Tensor::from_f32(gpu, &[n], &vec![f32::NAN; n]).unwrap();
    let skip = skip_off(gpu);
    for t in 1..=5 {
        let cfg = SgdConfig {
            lr: lr_at(cfg.lr, t),
            ..cfg
        };
        let g = rng.vec(n);
        let g_t = Tensor::from_f32(gpu, &[n], &g).unwrap();
        sgd_step(
            gpu,
            &w_t,
            &g_t,
            with_buffer.then_some(&buf_t),
            &skip,
            &cfg,
            t,
        )
        .unwrap();
        sgd_step_cpu(&mut w, &g, &mut buf, &cfg, t);
        let what = format!("sgd n={n} {cfg:?} step {t}");
        assert_close(
            &format!("{what} param"),
            &w_t.to_f32(gpu).unwrap(),
            &w,
            ATOL,
            RTOL,
        );
        if with_buffer {
            assert_close(
                &format!("{what} buffer"),
                &buf_t.to_f32(gpu).unwrap(),
                &buf,
                ATOL,
                RTOL,
            );
        }
    }
}

#[test]
fn sgd_matches_cpu_over_several_steps() {
    let gpu = gpu();
    for (i, &n) in SIZES.iter().enumerate() {
        let seed = 400 + 10 * i as u64;
        run_sgd(&gpu, SgdConfig::new(0.1), n, seed);
        let momentum = SgdConfig {
            lr: 0.1,
            momentum: 0.9,
            dampening: 0.0,
            weight_decay: 1e-3,
            nesterov: false,
        };
        run_sgd(&gpu, momentum, n, seed + 1);
        run_sgd(
            &gpu,
            SgdConfig {
                nesterov: true,
                ..momentum
            },
            n,
            seed + 2,
        );
        run_sgd(
            &gpu,
            SgdConfig {
                dampening: 0.5,
                ..momentum
            },
            n,
            seed + 3,
        );
    }
}

#[test]
fn skip_leaves_param_and_state_untouched() {
    let gpu = gpu();
    let mut rng = Rng::new(500);
    let n = 1000;
    let (w, g, m, v) = (rng.vec(n), rng.vec(n), rng.vec(n), rng.vec(n));
    let v: Vec<f32> = v.iter().map(|x| x.abs()).collect();
    let t = |x: &[f32]| Tensor::from_f32(&gpu, &[n], x).unwrap();
    let skip = Tensor::from_u32(&gpu, &[1], &[1]).unwrap();
    let (w_t, g_t, m_t, v_t) = (t(&w), t(&g), t(&m), t(&v));
    let cfg = AdamConfig {
        weight_decay: 0.1,
        ..AdamConfig::adam()
    };
    adam_step(&gpu, &w_t, &g_t, &m_t, &v_t, &skip, &cfg, 3);
    adamw_step(&gpu, &w_t, &g_t, &m_t, &v_t, &skip, &cfg, 3);
    let sgd = SgdConfig {
        momentum: 0.9,
        weight_decay: 0.1,
        ..SgdConfig::new(0.1)
    };
    sgd_step(&gpu, &w_t, &g_t, Some(&m_t), &skip, &sgd, 1).unwrap();
    sgd_step(&gpu, &w_t, &g_t, Some(&m_t), &skip, &sgd, 2).unwrap();
    assert_eq!(w_t.to_f32(&gpu).unwrap(), w, "param moved under skip");
    assert_eq!(
        m_t.to_f32(&gpu).unwrap(),
        m,
        "exp_avg / momentum buffer moved under skip"
    );
    assert_eq!(v_t.to_f32(&gpu).unwrap(), v, "exp_avg_sq moved under skip");
    // Any nonzero word vetoes, not only 1 (check_finite ORs bits in).
    let skip = Tensor::from_u32(&gpu, &[1], &[0x8000_0000]).unwrap();
    adam_step(&gpu, &w_t, &g_t, &m_t, &v_t, &skip, &cfg, 3);
    assert_eq!(
        w_t.to_f32(&gpu).unwrap(),
        w,
        "param moved under skip = 0x80000000"
    );
    // And a zero flag lets the update through (the test above can fail).
    adam_step(&gpu, &w_t, &g_t, &m_t, &v_t, &skip_off(&gpu), &cfg, 3);
    assert_ne!(
        w_t.to_f32(&gpu).unwrap(),
        w,
        "param did not move with skip = 0"
    );
}

fn flag_of(gpu: &Gpu, x: &[f32]) -> u32 {
    let flag = finite_flag(gpu).unwrap();
    check_finite(gpu, &Tensor::from_f32(gpu, &[x.len()], x).unwrap(), &flag);
    flag.to_u32(gpu).unwrap()[0]
}

#[test]
fn check_finite_flags_nan_and_infinities_anywhere() {
    let gpu = gpu();
    let mut rng = Rng::new(600);
    // Finite extremes must not trip the exponent test.
    let extremes = [
        0.0,
        -0.0,
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
        1e-45,
        -1e-45,
    ];
    assert_eq!(flag_of(&gpu, &extremes), 0, "finite extremes flagged");
    // NaNs with other payloads and signs are NaNs too.
    let nans = [
        f32::NAN,
        -f32::NAN,
        f32::from_bits(0x7f80_0001),
        f32::from_bits(0xffc0_1234),
    ];
    let bads = [
        nans[0],
        nans[1],
        nans[2],
        nans[3],
        f32::INFINITY,
        f32::NEG_INFINITY,
    ];
    for &n in SIZES {
        let x = rng.vec(n);
        assert!(!check_finite_cpu(&x));
        assert_eq!(flag_of(&gpu, &x), 0, "finite n={n} flagged");
        for (b, &bad) in bads.iter().enumerate() {
            for pos in [0, n / 2, n - 1] {
                let mut y = x.clone();
                y[pos] = bad;
                assert!(check_finite_cpu(&y));
                assert_eq!(
                    flag_of(&gpu, &y),
                    1,
                    "n={n}: {bad} (case {b}) at {pos} not flagged"
                );
            }
        }
    }
}

#[test]
fn check_finite_accumulates_and_vetoes_an_update() {
    let gpu = gpu();
    let mut rng = Rng::new(700);
    let n = 300;
    let w = rng.vec(n);
    let good = rng.vec(n);
    let mut bad = rng.vec(n);
    bad[123] = f32::INFINITY;
    let t = |x: &[f32]| Tensor::from_f32(&gpu, &[n], x).unwrap();
    let (w_t, good_t, bad_t) = (t(&w), t(&good), t(&bad));
    let m_t = Tensor::zeros(&gpu, &[n], DType::F32).unwrap();
    let v_t = Tensor::zeros(&gpu, &[n], DType::F32).unwrap();
    // The flag is only ever ORed: a later finite tensor does not clear it.
    let flag = finite_flag(&gpu).unwrap();
    check_finite(&gpu, &bad_t, &flag);
    check_finite(&gpu, &good_t, &flag);
    let cfg = AdamConfig::adam();
    adam_step(&gpu, &w_t, &good_t, &m_t, &v_t, &flag, &cfg, 1);
    assert_eq!(flag.to_u32(&gpu).unwrap(), [1]);
    assert_eq!(w_t.to_f32(&gpu).unwrap(), w, "vetoed step moved param");
    assert_eq!(
        m_t.to_f32(&gpu).unwrap(),
        vec![0.0; n],
        "vetoed step moved exp_avg"
    );
    // A fresh flag over finite gradients lets the same step through.
    let flag = finite_flag(&gpu).unwrap();
    check_finite(&gpu, &good_t, &flag);
    adam_step(&gpu, &w_t, &good_t, &m_t, &v_t, &flag, &cfg, 1);
    let (mut w_ref, mut m_ref, mut v_ref) = (w.clone(), vec![0.0; n], vec![0.0; n]);
    adam_step_cpu(&mut w_ref, &good, &mut m_ref, &mut v_ref, &cfg, 1);
    assert_eq!(flag.to_u32(&gpu).unwrap(), [0]);
    assert_close(
        "unvetoed step",
        &w_t.to_f32(&gpu).unwrap(),
        &w_ref,
        ATOL,
        RTOL,
    );
}

#[test]
fn optimizers_across_several_dispatch_rows() {
    let gpu = gpu();
    let mut rng = Rng::new(800);
    let n = 1000;
    let (w, g) = (rng.vec(n), rng.vec(n));
    let t = |x: &[f32]| Tensor::from_f32(&gpu, &[n], x).unwrap();
    let (w_adam, w_sgd, g_t) = (t(&w), t(&w), t(&g));
    let m_t = Tensor::zeros(&gpu, &[n], DType::F32).unwrap();
    let v_t = Tensor::zeros(&gpu, &[n], DType::F32).unwrap();
    let buf_t = Tensor::zeros(&gpu, &[n], DType::F32).unwrap();
    let mut bad = g.clone();
    bad[n - 1] = f32::NAN;
    let bad_t = t(&bad);
    let skip = skip_off(&gpu);
    let flag = finite_flag(&gpu).unwrap();
    let cfg = AdamConfig::adamw();
    let sgd = SgdConfig {
        momentum: 0.9,
        nesterov: true,
        ..SgdConfig::new(0.05)
    };
    gpu.set_grid_limit(3);
    adamw_step(&gpu, &w_adam, &g_t, &m_t, &v_t, &skip, &cfg, 1);
    sgd_step(&gpu, &w_sgd, &g_t, Some(&buf_t), &skip, &sgd, 1).unwrap();
    check_finite(&gpu, &bad_t, &flag);
    let got_adam = w_adam.to_f32(&gpu).unwrap();
    let got_sgd = w_sgd.to_f32(&gpu).unwrap();
    let got_flag = flag.to_u32(&gpu).unwrap();
    gpu.set_grid_limit(u32::MAX);
    let (mut w_ref, mut m_ref, mut v_ref) = (w.clone(), vec![0.0; n], vec![0.0; n]);
    adamw_step_cpu(&mut w_ref, &g, &mut m_ref, &mut v_ref, &cfg, 1);
    assert_close("several rows adamw", &got_adam, &w_ref, ATOL, RTOL);
    let (mut w_ref, mut b_ref) = (w.clone(), vec![0.0; n]);
    sgd_step_cpu(&mut w_ref, &g, &mut b_ref, &sgd, 1);
    assert_close("several rows sgd", &got_sgd, &w_ref, ATOL, RTOL);
    assert_eq!(
        got_flag,
        [1],
        "several rows: NaN in the last element not flagged"
    );
}

#[test]
fn tagged_checks_tell_which_tensor_was_bad() {
    use bitprop::ops::optim::check_finite_tagged;
    let gpu = gpu();
    let good = Tensor::from_f32(&gpu, &[70], &vec![0.5; 70]).unwrap();
    let mut bad_values = vec![1.0f32; 130];
    bad_values[129] = f32::INFINITY;
    let bad = Tensor::from_f32(&gpu, &[130], &bad_values).unwrap();
    let flag = Tensor::zeros(&gpu, &[1], DType::U32).unwrap();
    check_finite_tagged(&gpu, &good, &flag, 1 << 1);
    check_finite_tagged(&gpu, &bad, &flag, 1 << 5);
    assert_eq!(flag.to_u32(&gpu).unwrap(), vec![1 << 5]);
}
