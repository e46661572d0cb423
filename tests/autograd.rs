//! Gradient checks of every differentiable op on the device: each backward
//! against an analytic CPU computation built from the kernels' CPU
//! references (whose own backwards are checked by finite differences in the
//! ops' unit tests), or, for straight-through ops, against the documented
//! estimator; and a tape test with shared values and a two-layer net.

mod common;

use bitprop::Tensor;
use bitprop::autograd::{Tape, Var, ops};
use bitprop::ops::{act, conv, gemm, loss, norm, pool};
use common::{Rng, assert_close, gpu};

/// Runs `build` on leaves holding `inputs`, seeds the output's gradient with
/// `r`, and returns the output and every input's gradient.
fn run(
    inputs: &[(&[usize], &[f32])],
    r: impl FnOnce(usize) -> Vec<f32>,
    build: impl FnOnce(&mut Tape, &[Var]) -> Var,
) -> (Vec<f32>, Vec<f32>, Vec<Vec<f32>>) {
    let gpu = gpu();
    let mut tape = Tape::new(gpu.clone());
    let vars: Vec<Var> = inputs
        .iter()
        .map(|(shape, data)| tape.leaf(Tensor::from_f32(&gpu, shape, data).unwrap(), true))
        .collect();
    let out = build(&mut tape, &vars);
    let y = tape.value(out).clone();
    let rv = r(y.numel());
    let seed = Tensor::from_f32(&gpu, y.shape(), &rv).unwrap();
    let grads = tape.backward(out, seed).unwrap();
    let g = vars
        .iter()
        .map(|v| grads.get(*v).expect("gradient").to_f32(&gpu).unwrap())
        .collect();
    (y.to_f32(&gpu).unwrap(), rv, g)
}

fn signs(v: &[f32]) -> Vec<f32> {
    act::sign_cpu(v)
}

fn matmul(
    a: &[f32],
    ash: [usize; 2],
    ta: gemm::Trans,
    b: &[f32],
    bsh: [usize; 2],
    tb: gemm::Trans,
) -> Vec<f32> {
    gemm::f32_gemm_cpu(a, ash, ta, b, bsh, tb, None, None)
}

const TOL: f32 = 2e-4;

#[test]
fn linear_backward_is_the_matrix_calculus() {
    use gemm::Trans::{N, T};
    let mut rng = Rng::new(30);
    let (b, i, o) = (5, 7, 3);
    let (x, w, bias) = (rng.vec(b * i), rng.vec(o * i), rng.vec(o));
    let (y, r, g) = run(
        &[(&[b, i], &x), (&[o, i], &w), (&[o], &bias)],
        |n| Rng::new(31).vec(n),
        |t, v| ops::linear(t, v[0], v[1], Some(v[2])).unwrap(),
    );
    let want_y: Vec<f32> = matmul(&x, [b, i], N, &w, [o, i], T)
        .iter()
        .enumerate()
        .map(|(k, v)| v + bias[k % o])
        .collect();
    assert_close("linear y", &y, &want_y, TOL, 1e-4);
    assert_close(
        "linear dx",
        &g[0],
        &matmul(&r, [b, o], N, &w, [o, i], N),
        TOL,
        1e-4,
    );
    assert_close(
        "linear dw",
        &g[1],
        &matmul(&r, [b, o], T, &x, [b, i], N),
        TOL,
        1e-4,
    );
    let db: Vec<f32> = (0..o).map(|c| (0..b).map(|k| r[k * o + c]).sum()).collect();
    assert_close("linear db", &g[2], &db, TOL, 1e-4);
}

/// `alpha_o * sign(W)` on the CPU.
fn binarized(w: &[f32], rows: usize) -> Vec<f32> {
    let per = w.len() / rows;
    w.chunks(per)
        .flat_map(|row| {
            let alpha = row.iter().map(|v| v.abs()).sum::<f32>() / per as f32;
            row.iter()
                .map(move |v| if *v >= 0.0 { alpha } else { -alpha })
        })
        .collect()
}

#[test]
fn binary_linear_uses_the_straight_through_estimator_on_both_paths() {
    use gemm::Trans::{N, T};
    let mut rng = Rng::new(32);
    let (b, i, o) = (6, 45, 9);
    // Weights beyond 1 in magnitude, so the mask 1[|W| <= 1] matters.
    let x = rng.vec(b * i);
    let w: Vec<f32> = rng.vec(o * i).iter().map(|v| v * 1.5).collect();
    let wb = binarized(&w, o);
    for through_sign in [false, true] {
        let (y, r, g) = run(
            &[(&[b, i], &x), (&[o, i], &w)],
            |n| Rng::new(33).vec(n),
            |t, v| {
                let input = if through_sign {
                    ops::sign_ste(t, v[0]).unwrap()
                } else {
                    v[0]
                };
                ops::binary_linear(t, input, v[1]).unwrap()
            },
        );
        let xin = if through_sign { signs(&x) } else { x.clone() };
        let what = if through_sign {
            "XNOR path"
        } else {
            "real input"
        };
        assert_close(
            &format!("binary_linear y, {what}"),
            &y,
            &matmul(&xin, [b, i], N, &wb, [o, i], T),
            TOL,
            1e-4,
        );
        let dxin = matmul(&r, [b, o], N, &wb, [o, i], N);
        let dx = if through_sign {
            act::ste_sign_backward_cpu(&x, &dxin)
        } else {
            dxin
        };
        assert_close(&format!("binary_linear dx, {what}"), &g[0], &dx, TOL, 1e-4);
        let dwb = matmul(&r, [b, o], T, &xin, [b, i], N);
        assert_close(
            &format!("binary_linear dW, {what}"),
            &g[1],
            &act::ste_sign_backward_cpu(&w, &dwb),
            TOL,
            1e-4,
        );
    }
}

#[test]
fn conv2d_backward_matches_the_cpu_references() {
    let mut rng = Rng::new(34);
    let g = conv::Conv2dGeom {
        n: 2,
        c: 5,
        h: 7,
        w: 6,
        o: 4,
        kh: 3,
        kw: 3,
        stride: 1,
        pad: 1,
    };
    let x = rng.vec(g.input_shape().iter().product());
    let w: Vec<f32> = rng
        .vec(g.weight_shape().iter().product())
        .iter()
        .map(|v| v * 1.5)
        .collect();
    for binary in [false, true] {
        let (y, r, grads) = run(
            &[(&g.input_shape(), &x), (&g.weight_shape(), &w)],
            |n| Rng::new(35).vec(n),
            |t, v| ops::conv2d(t, v[0], v[1], 1, 1, binary).unwrap(),
        );
        let weff = if binary {
            binarized(&w, g.o)
        } else {
            w.clone()
        };
        assert_close(
            &format!("conv y binary={binary}"),
            &y,
            &conv::conv2d_cpu(&x, &weff, g, None),
            TOL,
            1e-4,
        );
        assert_close(
            &format!("conv dx binary={binary}"),
            &grads[0],
            &conv::conv2d_backward_data_cpu(&r, &weff, g),
            TOL,
            1e-4,
        );
        let dw = conv::conv2d_backward_weights_cpu(&x, &r, g);
        let dw = if binary {
            act::ste_sign_backward_cpu(&w, &dw)
        } else {
            dw
        };
        assert_close(
            &format!("conv dW binary={binary}"),
            &grads[1],
            &dw,
            TOL,
            1e-4,
        );
    }
}

#[test]
fn activations_and_pools_backward() {
    let mut rng = Rng::new(36);
    let shape = [2usize, 3, 5, 4];
    let x: Vec<f32> = rng.vec(120).iter().map(|v| v * 1.6).collect();
    let (_, r, g) = run(
        &[(&shape, &x)],
        |n| Rng::new(37).vec(n),
        |t, v| ops::sign_ste(t, v[0]).unwrap(),
    );
    assert_close(
        "sign_ste",
        &g[0],
        &act::ste_sign_backward_cpu(&x, &r),
        0.0,
        0.0,
    );
    let (_, r, g) = run(
        &[(&shape, &x)],
        |n| Rng::new(38).vec(n),
        |t, v| ops::hardtanh(t, v[0], -1.0, 1.0).unwrap(),
    );
    assert_close(
        "hardtanh",
        &g[0],
        &act::hardtanh_backward_cpu(&x, &r, -1.0, 1.0),
        0.0,
        0.0,
    );
    let a = rng.vec(3);
    let (_, r, g) = run(
        &[(&shape, &x), (&[3], &a)],
        |n| Rng::new(39).vec(n),
        |t, v| ops::rsign(t, v[0], v[1]).unwrap(),
    );
    let (dx, da) = act::rsign_backward_cpu(&x, &a, &r, [2, 3, 20]);
    assert_close("rsign dx", &g[0], &dx, 1e-6, 1e-5);
    assert_close("rsign da", &g[1], &da, 1e-5, 1e-4);
    let (beta, gamma, zeta) = (rng.vec(3), rng.vec(3), rng.vec(3));
    let (_, r, g) = run(
        &[(&shape, &x), (&[3], &beta), (&[3], &gamma), (&[3], &zeta)],
        |n| Rng::new(40).vec(n),
        |t, v| ops::rprelu(t, v[0], v[1], v[2], v[3]).unwrap(),
    );
    let (dx, db, dg, dz) = act::rprelu_backward_cpu(&x, &beta, &gamma, &r, [2, 3, 20]);
    assert_close("rprelu dx", &g[0], &dx, 1e-6, 1e-5);
    for (name, got, want) in [
        ("dbeta", &g[1], &db),
        ("dgamma", &g[2], &dg),
        ("dzeta", &g[3], &dz),
    ] {
        assert_close(&format!("rprelu {name}"), got, want, 1e-5, 1e-4);
    }
    let (_, r, g) = run(
        &[(&shape, &x)],
        |n| Rng::new(41).vec(n),
        |t, v| ops::max_pool2x2(t, v[0]).unwrap(),
    );
    let (_, arg) = pool::max_pool2x2_cpu(&x, shape);
    assert_close(
        "max pool",
        &g[0],
        &pool::max_pool2x2_backward_cpu(&r, &arg, shape),
        0.0,
        0.0,
    );
    let (_, r, g) = run(
        &[(&shape, &x)],
        |n| Rng::new(42).vec(n),
        |t, v| ops::avg_pool2x2(t, v[0]).unwrap(),
    );
    assert_close(
        "avg pool",
        &g[0],
        &pool::avg_pool2x2_backward_cpu(&r, shape),
        0.0,
        0.0,
    );
    let (y, r, g) = run(
        &[(&shape, &x)],
        |n| Rng::new(43).vec(n),
        |t, v| ops::global_avg_pool(t, v[0]).unwrap(),
    );
    let want_y: Vec<f32> = x.chunks(20).map(|p| p.iter().sum::<f32>() / 20.0).collect();
    assert_close("global avg pool y", &y, &want_y, 1e-6, 1e-5);
    let dx: Vec<f32> = (0..120).map(|k| r[k / 20] / 20.0).collect();
    assert_close("global avg pool dx", &g[0], &dx, 1e-7, 1e-5);
}

#[test]
fn batch_norm_and_losses_backward() {
    let mut rng = Rng::new(44);
    let gpu = gpu();
    let (n, c, s) = (4, 3, 6);
    let x = rng.vec(n * c * s);
    let (gamma, beta) = (rng.vec(c), rng.vec(c));
    let rm = Tensor::from_f32(&gpu, &[c], &[0.0; 3]).unwrap();
    let rv = Tensor::from_f32(&gpu, &[c], &[1.0; 3]).unwrap();
    let (_, r, g) = run(
        &[(&[n, c, 2, 3], &x), (&[c], &gamma), (&[c], &beta)],
        |k| Rng::new(45).vec(k),
        |t, v| {
            let state = ops::BnState {
                running_mean: &rm,
                running_var: &rv,
                eps: 1e-5,
                momentum: 0.1,
            };
            ops::batch_norm(t, v[0], v[1], v[2], state, true).unwrap()
        },
    );
    let (mean, var) = norm::batch_norm_stats_cpu(&x, [n, c, s]);
    let invstd: Vec<f32> = var.iter().map(|v| 1.0 / (v + 1e-5).sqrt()).collect();
    let (dx, dg, db) = norm::batch_norm_backward_cpu(&x, &r, [n, c, s], &gamma, &mean, &invstd);
    assert_close("bn dx", &g[0], &dx, 1e-4, 1e-3);
    assert_close("bn dgamma", &g[1], &dg, 1e-4, 1e-3);
    assert_close("bn dbeta", &g[2], &db, 1e-5, 1e-4);

    let (rows, classes) = (5, 10);
    let z = rng.vec(rows * classes);
    let labels: Vec<u32> = (0..rows as u32).map(|i| (i * 3) % 10).collect();
    let lt = Tensor::from_u32(&gpu, &[rows], &labels).unwrap();
    let (l, _, g) = run(
        &[(&[rows, classes], &z)],
        |_| vec![1.0],
        |t, v| ops::softmax_cross_entropy(t, v[0], &lt).unwrap(),
    );
    let (want_l, probs) = loss::softmax_cross_entropy_cpu(&z, &labels, classes);
    assert_close("ce loss", &l, &[want_l], 1e-5, 1e-5);
    assert_close(
        "ce dz",
        &g[0],
        &loss::softmax_cross_entropy_backward_cpu(&probs, &labels, classes),
        1e-6,
        1e-4,
    );
    let teacher = rng.vec(rows * classes);
    let tt = Tensor::from_f32(&gpu, &[rows, classes], &teacher).unwrap();
    let (l, _, g) = run(
        &[(&[rows, classes], &z)],
        |_| vec![1.0],
        |t, v| ops::kd_loss(t, v[0], &tt, 2.0).unwrap(),
    );
    assert_close(
        "kd loss",
        &l,
        &[loss::kd_loss_cpu(&z, &teacher, classes, 2.0)],
        1e-5,
        1e-5,
    );
    assert_close(
        "kd dz",
        &g[0],
        &loss::kd_loss_backward_cpu(&z, &teacher, classes, 2.0),
        1e-6,
        1e-4,
    );
}

/// A value used twice accumulates both gradients; a two-layer binary net's
/// gradients match the same net composed on the CPU.
#[test]
fn tape_accumulates_and_matches_a_cpu_two_layer_net() {
    use gemm::Trans::{N, T};
    let mut rng = Rng::new(46);
    let x = rng.vec(12);
    let (_, r, g) = run(
        &[(&[3, 4], &x)],
        |n| Rng::new(47).vec(n),
        |t, v| {
            let doubled = ops::add(t, v[0], v[0]).unwrap();
            let y = ops::hardtanh(t, doubled, -10.0, 10.0).unwrap();
            ops::add(t, y, v[0]).unwrap()
        },
    );
    assert_close(
        "x + x + x",
        &g[0],
        &r.iter().map(|v| 3.0 * v).collect::<Vec<_>>(),
        1e-6,
        1e-6,
    );

    // y = W2_b sign(W1_b x) with clipped STE, on the CPU by hand.
    let (b, i, h, o) = (4, 33, 7, 5);
    let (x, w1, w2) = (rng.vec(b * i), rng.vec(h * i), rng.vec(o * h));
    let (y, r, g) = run(
        &[(&[b, i], &x), (&[h, i], &w1), (&[o, h], &w2)],
        |n| Rng::new(48).vec(n),
        |t, v| {
            let z = ops::binary_linear(t, v[0], v[1]).unwrap();
            let s = ops::sign_ste(t, z).unwrap();
            ops::binary_linear(t, s, v[2]).unwrap()
        },
    );
    let (w1b, w2b) = (binarized(&w1, h), binarized(&w2, o));
    let z = matmul(&x, [b, i], N, &w1b, [h, i], T);
    let s = signs(&z);
    assert_close(
        "net y",
        &y,
        &matmul(&s, [b, h], N, &w2b, [o, h], T),
        TOL,
        1e-4,
    );
    let ds = matmul(&r, [b, o], N, &w2b, [o, h], N);
    let dw2 = act::ste_sign_backward_cpu(&w2, &matmul(&r, [b, o], T, &s, [b, h], N));
    let dz = act::ste_sign_backward_cpu(&z, &ds);
    let dw1 = act::ste_sign_backward_cpu(&w1, &matmul(&dz, [b, h], T, &x, [b, i], N));
    let dx = matmul(&dz, [b, h], N, &w1b, [h, i], N);
    assert_close("net dx", &g[0], &dx, TOL, 1e-4);
    assert_close("net dW1", &g[1], &dw1, TOL, 1e-4);
    assert_close("net dW2", &g[2], &dw2, TOL, 1e-4);
}
