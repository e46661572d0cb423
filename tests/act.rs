//! Activations and elementwise arithmetic against their CPU references.

mod common;

use bitprop::Tensor;
use bitprop::ops::act::*;
use common::{Rng, assert_close, gpu};

/// Element counts: one, odd, exactly and just over one workgroup, many.
const LENS: &[usize] = &[1, 7, 64, 65, 1000, 4099];

/// Values in [-1.5, 1.5) with the kinks of every op mixed in exactly, so
/// closed/open interval ends are tested: 0, -0, +-1, 0.25, 0.75, 0.5.
fn data(rng: &mut Rng, n: usize) -> Vec<f32> {
    const SPECIAL: [f32; 8] = [0.0, -0.0, 1.0, -1.0, 0.25, 0.75, 0.5, -0.5];
    (0..n)
        .map(|i| {
            if i % 5 == 0 {
                SPECIAL[(i / 5) % 8]
            } else {
                1.5 * rng.uniform()
            }
        })
        .collect()
}

/// One f32 multiply-add per element: the device may fuse it (one rounding
/// instead of two), so allow an ulp or two of values of magnitude <= 4.
const ARITH_TOL: f32 = 1e-6;

#[test]
fn unary_maps_match_cpu() {
    let gpu = gpu();
    let mut rng = Rng::new(21);
    for &n in LENS {
        let x = data(&mut rng, n);
        let shape = if n % 7 == 0 { vec![n / 7, 7] } else { vec![n] };
        let t = Tensor::from_f32(&gpu, &shape, &x).unwrap();
        let read = |y: Tensor| {
            assert_eq!(y.shape(), shape.as_slice());
            y.to_f32(&gpu).unwrap()
        };
        // Selections and clamps are exact.
        assert_eq!(read(sign(&gpu, &t).unwrap()), sign_cpu(&x), "sign n={n}");
        assert_eq!(
            read(ternary(&gpu, &t).unwrap()),
            ternary_cpu(&x),
            "ternary n={n}"
        );
        assert_eq!(
            read(step01(&gpu, &t, 0.5).unwrap()),
            step01_cpu(&x, 0.5),
            "step01 n={n}"
        );
        assert_eq!(
            read(step01(&gpu, &t, -0.25).unwrap()),
            step01_cpu(&x, -0.25),
            "step01 n={n}"
        );
        assert_eq!(
            read(hardtanh(&gpu, &t, -1.0, 1.0).unwrap()),
            clamp_cpu(&x, -1.0, 1.0),
            "hardtanh n={n}"
        );
        assert_eq!(
            read(clamp(&gpu, &t, 0.0, 1.0).unwrap()),
            clamp_cpu(&x, 0.0, 1.0),
            "clamp n={n}"
        );
        assert_eq!(
            read(scale(&gpu, &t, -0.3).unwrap()),
            scale_cpu(&x, -0.3),
            "scale n={n}"
        );
    }
}

#[test]
fn binary_maps_and_backwards_match_cpu() {
    let gpu = gpu();
    let mut rng = Rng::new(22);
    for &n in LENS {
        let x = data(&mut rng, n);
        let g = rng.vec(n);
        let xt = Tensor::from_f32(&gpu, &[n], &x).unwrap();
        let gt = Tensor::from_f32(&gpu, &[n], &g).unwrap();
        let read = |y: Tensor| y.to_f32(&gpu).unwrap();
        assert_eq!(
            read(ste_sign_backward(&gpu, &xt, &gt).unwrap()),
            ste_sign_backward_cpu(&x, &g),
            "ste n={n}"
        );
        for (lo, hi) in [(-1.0, 1.0), (0.0, 1.0)] {
            assert_eq!(
                read(hardtanh_backward(&gpu, &xt, &gt, lo, hi).unwrap()),
                hardtanh_backward_cpu(&x, &g, lo, hi),
                "hardtanh({lo}, {hi}) backward n={n}"
            );
        }
        let what = format!("approx sign backward n={n}");
        assert_close(
            &what,
            &read(approx_sign_backward(&gpu, &xt, &gt).unwrap()),
            &approx_sign_backward_cpu(&x, &g),
            ARITH_TOL,
            1e-6,
        );
        assert_eq!(
            read(add(&gpu, &xt, &gt).unwrap()),
            add_cpu(&x, &g),
            "add n={n}"
        );
        // In place, twice: the second call must see the first's result.
        let y0 = rng.vec(n);
        let yt = Tensor::from_f32(&gpu, &[n], &y0).unwrap();
        add_scaled(&gpu, &yt, &xt, 0.5);
        add_scaled(&gpu, &yt, &gt, -2.0);
        let mut want = y0.clone();
        add_scaled_cpu(&mut want, &x, 0.5);
        add_scaled_cpu(&mut want, &g, -2.0);
        assert_close(
            &format!("add_scaled n={n}"),
            &read(yt),
            &want,
            4.0 * ARITH_TOL,
            1e-6,
        );
    }
}

/// `[N, C, S]` cases: one of everything, 2-D, NCHW, a channel longer than the
/// 256-lane workgroup, many channels.
const CHANNEL_SHAPES: &[&[usize]] = &[
    &[1, 1],
    &[1, 3],
    &[7, 5],
    &[2, 3, 3, 3],
    &[4, 1, 20, 15],
    &[3, 70, 1, 5],
];

fn channel_dims(shape: &[usize]) -> [usize; 3] {
    [shape[0], shape[1], shape[2..].iter().product()]
}

/// Per-channel sums of m values of magnitude <= 2 in f32 (lanes then an
/// 8-level tree): a few ulps of the running sum, 2e-6 * m with margin.
fn sum_tol(m: usize) -> f32 {
    2e-6 * m as f32 + 1e-6
}

fn check_rsign(gpu: &bitprop::Gpu, rng: &mut Rng, shape: &[usize]) -> Box<dyn FnOnce()> {
    let dims = channel_dims(shape);
    let len = dims.iter().product();
    let (c, m) = (dims[1], dims[0] * dims[2]);
    let x = data(rng, len);
    let g = rng.vec(len);
    // Thresholds include 0 and values equal to data points (x == a: +1).
    let a: Vec<f32> = (0..c)
        .map(|i| {
            if i % 3 == 0 {
                [0.0, 0.25, -0.5][i % 9 / 3]
            } else {
                0.4 * rng.uniform()
            }
        })
        .collect();
    let xt = Tensor::from_f32(gpu, shape, &x).unwrap();
    let gt = Tensor::from_f32(gpu, shape, &g).unwrap();
    let at = Tensor::from_f32(gpu, &[c], &a).unwrap();
    let y = rsign(gpu, &xt, &at).unwrap();
    let (dx, da) = rsign_backward(gpu, &xt, &at, &gt).unwrap();
    let (y, dx, da) = (
        y.to_f32(gpu).unwrap(),
        dx.to_f32(gpu).unwrap(),
        da.to_f32(gpu).unwrap(),
    );
    let shape = shape.to_vec();
    Box::new(move || {
        assert_eq!(y, rsign_cpu(&x, &a, dims), "rsign {shape:?}");
        let (want_dx, want_da) = rsign_backward_cpu(&x, &a, &g, dims);
        assert_close(
            &format!("rsign dx {shape:?}"),
            &dx,
            &want_dx,
            ARITH_TOL,
            1e-6,
        );
        assert_close(
            &format!("rsign da {shape:?}"),
            &da,
            &want_da,
            sum_tol(m),
            1e-5,
        );
    })
}

fn check_rprelu(gpu: &bitprop::Gpu, rng: &mut Rng, shape: &[usize]) -> Box<dyn FnOnce()> {
    let dims = channel_dims(shape);
    let len = dims.iter().product();
    let (c, m) = (dims[1], dims[0] * dims[2]);
    let x = data(rng, len);
    let g = rng.vec(len);
    let beta: Vec<f32> = (0..c).map(|_| 0.25 + 0.5 * rng.uniform()).collect();
    // gamma = 0 for some channels puts exact data points on the knee.
    let gamma: Vec<f32> = (0..c)
        .map(|i| if i % 2 == 0 { 0.0 } else { 0.3 * rng.uniform() })
        .collect();
    let zeta = rng.vec(c);
    let up = |v: &[f32], s: &[usize]| Tensor::from_f32(gpu, s, v).unwrap();
    let (xt, gt) = (up(&x, shape), up(&g, shape));
    let (bt, gat, zt) = (up(&beta, &[c]), up(&gamma, &[c]), up(&zeta, &[c]));
    let y = rprelu(gpu, &xt, &bt, &gat, &zt)
        .unwrap()
        .to_f32(gpu)
        .unwrap();
    let grads = rprelu_backward(gpu, &xt, &bt, &gat, &gt).unwrap();
    let read = |t: &Tensor| t.to_f32(gpu).unwrap();
    let (dx, db, dg, dz) = (
        read(&grads.dx),
        read(&grads.dbeta),
        read(&grads.dgamma),
        read(&grads.dzeta),
    );
    let shape = shape.to_vec();
    Box::new(move || {
        assert_close(
            &format!("rprelu {shape:?}"),
            &y,
            &rprelu_cpu(&x, &beta, &gamma, &zeta, dims),
            ARITH_TOL,
            1e-6,
        );
        let (wdx, wdb, wdg, wdz) = rprelu_backward_cpu(&x, &beta, &gamma, &g, dims);
        assert_close(&format!("rprelu dx {shape:?}"), &dx, &wdx, ARITH_TOL, 1e-6);
        assert_close(
            &format!("rprelu dbeta {shape:?}"),
            &db,
            &wdb,
            sum_tol(m),
            1e-5,
        );
        assert_close(
            &format!("rprelu dgamma {shape:?}"),
            &dg,
            &wdg,
            sum_tol(m),
            1e-5,
        );
        assert_close(
            &format!("rprelu dzeta {shape:?}"),
            &dz,
            &wdz,
            sum_tol(m),
            1e-5,
        );
    })
}

#[test]
fn rsign_matches_cpu() {
    let gpu = gpu();
    let mut rng = Rng::new(23);
    for shape in CHANNEL_SHAPES {
        check_rsign(&gpu, &mut rng, shape)();
    }
}

#[test]
fn rprelu_matches_cpu() {
    let gpu = gpu();
    let mut rng = Rng::new(24);
    for shape in CHANNEL_SHAPES {
        check_rprelu(&gpu, &mut rng, shape)();
    }
}

#[test]
fn activations_across_several_dispatch_rows() {
    let gpu = gpu();
    let mut rng = Rng::new(25);
    let n = 1000;
    let x = data(&mut rng, n);
    let g = rng.vec(n);
    let xt = Tensor::from_f32(&gpu, &[n], &x).unwrap();
    let gt = Tensor::from_f32(&gpu, &[n], &g).unwrap();
    gpu.set_grid_limit(3);
    let s = sign(&gpu, &xt).unwrap().to_f32(&gpu).unwrap();
    let d = approx_sign_backward(&gpu, &xt, &gt)
        .unwrap()
        .to_f32(&gpu)
        .unwrap();
    // 70 channels: the per-channel kernels need 24 rows of 3 workgroups.
    let shape = [3, 70, 1, 5];
    let rs = check_rsign(&gpu, &mut rng, &shape);
    let rp = check_rprelu(&gpu, &mut rng, &shape);
    gpu.set_grid_limit(u32::MAX);
    assert_eq!(s, sign_cpu(&x));
    assert_close(
        "approx sign",
        &d,
        &approx_sign_backward_cpu(&x, &g),
        ARITH_TOL,
        1e-6,
    );
    rs();
    rp();
}

/// The per-channel affine map against the CPU on odd shapes, with and
/// without each vector, across several dispatch rows; and its sign-first
/// form, a binary layer's alpha * sign(W) per row.
#[test]
fn channel_affine_and_scaled_signs_match_cpu() {
    use bitprop::ops::channel::{channel_affine, channel_affine_cpu, scaled_sign_rows};
    let gpu = gpu();
    let mut rng = Rng::new(21);
    for &(outer, c, inner) in &[(1, 1, 1), (3, 5, 7), (1, 1024, 33), (2, 3, 1), (5, 64, 49)] {
        let n = outer * c * inner;
        let x = rng.vec(n);
        let scale = rng.vec(c);
        let bias = rng.vec(c);
        let t = Tensor::from_f32(&gpu, &[outer, c, inner], &x).unwrap();
        let st = Tensor::from_f32(&gpu, &[c], &scale).unwrap();
        let bt = Tensor::from_f32(&gpu, &[c], &bias).unwrap();
        for (s, b) in [(true, true), (true, false), (false, true), (false, false)] {
            let (sg, bg) = (s.then_some(&st), b.then_some(&bt));
            let (sc, bc) = (s.then_some(&scale[..]), b.then_some(&bias[..]));
            if n == 5 * 64 * 49 {
                gpu.set_grid_limit(7);
            }
            let got = channel_affine(&gpu, &t, c, inner, sg, bg).unwrap();
            let got = got.to_f32(&gpu).unwrap();
            gpu.set_grid_limit(u32::MAX);
            let what = format!("[{outer}, {c}, {inner}] scale {s} bias {b}");
            assert_eq!(got, channel_affine_cpu(&x, c, inner, sc, bc), "{what}");
        }
    }
    // Rows of a weight: odd sizes, zeros of both signs (sign +1), one row,
    // several dispatch rows.
    for &(rows, k) in &[(1, 1), (1, 33), (7, 31), (1024, 784)] {
        let mut w = rng.vec(rows * k);
        w[0] = 0.0;
        if w.len() > 1 {
            w[1] = -0.0;
        }
        let alpha: Vec<f32> = (0..rows).map(|_| rng.uniform().abs()).collect();
        let wt = Tensor::from_f32(&gpu, &[rows, k], &w).unwrap();
        let at = Tensor::from_f32(&gpu, &[rows], &alpha).unwrap();
        if rows == 1024 {
            gpu.set_grid_limit(5);
        }
        let got = scaled_sign_rows(&gpu, &wt, &at)
            .unwrap()
            .to_f32(&gpu)
            .unwrap();
        gpu.set_grid_limit(u32::MAX);
        let want = channel_affine_cpu(&sign_cpu(&w), rows, k, Some(&alpha), None);
        assert_eq!(got, want, "[{rows}, {k}]");
    }
}

/// Two modules named by the same last file (as a module assembled from
/// several files is) stay two modules in the pipeline cache: each launch runs
/// its own source.
#[test]
fn pipeline_cache_keeps_modules_with_the_same_name_apart() {
    use bitprop::gpu::{Access, Kernel};
    #[repr(C)]
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    struct Params {
        value: u32,
        _pad: [u32; 3],
    }
    macro_rules! body {
        () => {
            "struct Params { value: u32, _pad0: u32, _pad1: u32, _pad2: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(1)
fn write() { out[0] = p.value + OFFSET; }
"
        };
    }
    let first = Kernel {
        file: "same/name.wgsl",
        source: concat!("const OFFSET: u32 = 100u;\n", body!()),
        entry: "write",
        bindings: &[Access::ReadWrite],
    };
    let second = Kernel {
        source: concat!("const OFFSET: u32 = 200u;\n", body!()),
        ..first
    };
    let gpu = gpu();
    let a = Tensor::zeros(&gpu, &[1], bitprop::DType::U32).unwrap();
    let b = Tensor::zeros(&gpu, &[1], bitprop::DType::U32).unwrap();
    let params = Params {
        value: 1,
        _pad: [0; 3],
    };
    gpu.launch(&first, &[], &params, &[a.binding()], [1, 1, 1]);
    gpu.launch(&second, &[], &params, &[b.binding()], [1, 1, 1]);
    assert_eq!(a.to_u32(&gpu).unwrap(), vec![101]);
    assert_eq!(b.to_u32(&gpu).unwrap(), vec![201]);
}
