//! Gradient checks of every differentiable op on the device: each backward
//! against an analytic CPU computation built from the kernels' CPU
//! references, or, for straight-through ops, against the documented
//! estimator; every truly differentiable op also against central finite
//! differences of an f64 forward written here; and tape tests: shared
//! values and shortcuts accumulate, and two-layer real and binary nets
//! (with batch norm and cross-entropy) match the same nets composed on the CPU.

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
    // Binary weights on an input of signs (the bcnn pattern: sign_ste ->
    // binary conv): the forward runs XNOR and the weight gradient reads the
    // input's im2col as packed bits.
    let (y, r, grads) = run(
        &[(&g.input_shape(), &x), (&g.weight_shape(), &w)],
        |n| Rng::new(36).vec(n),
        |t, v| {
            let s = ops::sign_ste(t, v[0]).unwrap();
            assert!(t.is_signs(s));
            ops::conv2d(t, s, v[1], 1, 1, true).unwrap()
        },
    );
    let (xs, wb) = (signs(&x), binarized(&w, g.o));
    assert_close(
        "conv y on signs",
        &y,
        &conv::conv2d_cpu(&xs, &wb, g, None),
        TOL,
        1e-4,
    );
    let dx = conv::conv2d_backward_data_cpu(&r, &wb, g);
    assert_close(
        "conv dx on signs",
        &grads[0],
        &act::ste_sign_backward_cpu(&x, &dx),
        TOL,
        1e-4,
    );
    let dw = conv::conv2d_backward_weights_cpu(&xs, &r, g);
    assert_close(
        "conv dW on signs",
        &grads[1],
        &act::ste_sign_backward_cpu(&w, &dw),
        TOL,
        1e-4,
    );
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

// ---------------------------------------------------------------------------
// Central finite differences of f64 forwards: the differentiable ops'
// device gradients against the derivative itself, not against another
// implementation of the same backward formula.

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Central differences `(L(x + h e_k) - L(x - h e_k)) / 2h` of
/// `L = sum_k r_k f(inputs)_k` for every element of every input.
fn finite_differences(
    inputs: &[Vec<f64>],
    r: &[f64],
    h: f64,
    f: &dyn Fn(&[Vec<f64>]) -> Vec<f64>,
) -> Vec<Vec<f64>> {
    let loss = |xs: &[Vec<f64>]| f(xs).iter().zip(r).map(|(y, r)| y * r).sum::<f64>();
    let mut xs = inputs.to_vec();
    (0..inputs.len())
        .map(|i| {
            (0..inputs[i].len())
                .map(|k| {
                    let x0 = xs[i][k];
                    xs[i][k] = x0 + h;
                    let up = loss(&xs);
                    xs[i][k] = x0 - h;
                    let down = loss(&xs);
                    xs[i][k] = x0;
                    (up - down) / (2.0 * h)
                })
                .collect()
        })
        .collect()
}

/// A comparison to assert later (after the grid limit is restored).
struct Check {
    what: String,
    got: Vec<f32>,
    want: Vec<f32>,
    atol: f32,
    rtol: f32,
}

impl Check {
    /// Tolerance relative to the scale of `want`: the device sums at most a
    /// few hundred f32 terms (error <= ~1e-5 of the largest term) and the
    /// differences are accurate to ~1e-8 (exact on piecewise-linear pieces,
    /// O(h^2) on smooth ones), so 1e-4 of the scale plus 1e-3 relative is
    /// ten times the error, while a wrong or missing term (>= 1% of the
    /// scale for these sizes) fails.
    fn scaled(what: String, got: Vec<f32>, want: Vec<f32>) -> Check {
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
        Check {
            what,
            got,
            want,
            atol: 1e-4 * scale,
            rtol: 1e-3,
        }
    }
    /// The first element out of tolerance, described.
    fn failure(&self) -> Option<String> {
        if self.got.len() != self.want.len() {
            return Some(format!(
                "{}: length {} vs {}",
                self.what,
                self.got.len(),
                self.want.len()
            ));
        }
        let (i, (g, w)) = self
            .got
            .iter()
            .zip(&self.want)
            .enumerate()
            .find(|(_, (g, w))| {
                let diff = (*g - *w).abs();
                // A NaN anywhere fails.
                diff.is_nan() || diff > self.atol + self.rtol * w.abs()
            })?;
        Some(format!(
            "{}: element {i}: got {g}, want {w} (tolerance {})",
            self.what,
            self.atol + self.rtol * w.abs()
        ))
    }
    fn assert(&self) {
        if let Some(f) = self.failure() {
            panic!("{f}");
        }
    }
}

/// Runs `build` on the device with a random upstream gradient (1 for a
/// loss), and queues checks of its output against `forward` and of every
/// input's gradient against central differences of `forward` with step `h`.
fn fd_case(
    checks: &mut Vec<Check>,
    name: &str,
    inputs: &[(&[usize], &[f32])],
    is_loss: bool,
    h: f64,
    forward: &dyn Fn(&[Vec<f64>]) -> Vec<f64>,
    build: impl FnOnce(&mut Tape, &[Var]) -> Var,
) {
    let seed = inputs.iter().map(|(_, d)| d.len() as u64).sum::<u64>() + 77;
    let (y, r, grads) = run(
        inputs,
        |n| {
            if is_loss {
                vec![1.0]
            } else {
                Rng::new(seed).vec(n)
            }
        },
        build,
    );
    let xs: Vec<Vec<f64>> = inputs.iter().map(|(_, d)| f64s(d)).collect();
    let want_y: Vec<f32> = forward(&xs).iter().map(|&v| v as f32).collect();
    checks.push(Check::scaled(format!("{name}: forward"), y, want_y));
    let fd = finite_differences(&xs, &f64s(&r), h, forward);
    for (i, (got, want)) in grads.into_iter().zip(fd).enumerate() {
        let want = want.iter().map(|&v| v as f32).collect();
        checks.push(Check::scaled(
            format!("{name}: gradient of input {i}"),
            got,
            want,
        ));
    }
}

fn linear_f64(
    x: &[f64],
    w: &[f64],
    b: Option<&[f64]>,
    (rows, i, o): (usize, usize, usize),
) -> Vec<f64> {
    let mut y = vec![0.0; rows * o];
    for r in 0..rows {
        for c in 0..o {
            y[r * o + c] =
                (0..i).map(|k| x[r * i + k] * w[c * i + k]).sum::<f64>() + b.map_or(0.0, |b| b[c]);
        }
    }
    y
}

fn conv2d_f64(x: &[f64], w: &[f64], g: conv::Conv2dGeom) -> Vec<f64> {
    let (oh, ow) = (g.out_h(), g.out_w());
    let mut y = vec![0.0; g.n * g.o * oh * ow];
    for n in 0..g.n {
        for o in 0..g.o {
            for i in 0..oh {
                for j in 0..ow {
                    let mut s = 0.0;
                    for c in 0..g.c {
                        for a in 0..g.kh {
                            for b in 0..g.kw {
                                let (yy, xx) = (
                                    (i * g.stride + a) as isize - g.pad as isize,
                                    (j * g.stride + b) as isize - g.pad as isize,
                                );
                                if yy < 0 || xx < 0 || yy >= g.h as isize || xx >= g.w as isize {
                                    continue;
                                }
                                s += x[((n * g.c + c) * g.h + yy as usize) * g.w + xx as usize]
                                    * w[((o * g.c + c) * g.kh + a) * g.kw + b];
                            }
                        }
                    }
                    y[((n * g.o + o) * oh + i) * ow + j] = s;
                }
            }
        }
    }
    y
}

/// 2x2 stride-2 pooling (floor for odd sizes) of `[n, c, h, w]` with `f` over each window.
fn pool_f64(x: &[f64], [_, _, h, w]: [usize; 4], f: fn([f64; 4]) -> f64) -> Vec<f64> {
    let mut y = Vec::new();
    for p in x.chunks(h * w) {
        for i in 0..h / 2 {
            for j in 0..w / 2 {
                let at = |a: usize, b: usize| p[(2 * i + a) * w + 2 * j + b];
                y.push(f([at(0, 0), at(0, 1), at(1, 0), at(1, 1)]));
            }
        }
    }
    y
}

/// Training-mode batch norm of `[n, c, s]` (biased variance, eps 1e-5).
fn batch_norm_f64(x: &[f64], gamma: &[f64], beta: &[f64], [n, c, s]: [usize; 3]) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    let idx = |b: usize, ch: usize, k: usize| (b * c + ch) * s + k;
    for ch in 0..c {
        let all = || (0..n).flat_map(move |b| (0..s).map(move |k| idx(b, ch, k)));
        let count = (n * s) as f64;
        let mean = all().map(|i| x[i]).sum::<f64>() / count;
        let var = all().map(|i| (x[i] - mean).powi(2)).sum::<f64>() / count;
        for i in all() {
            y[i] = gamma[ch] * (x[i] - mean) / (var + 1e-5).sqrt() + beta[ch];
        }
    }
    y
}

fn log_softmax(z: &[f64]) -> Vec<f64> {
    let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = z.iter().map(|v| (v - m).exp()).sum::<f64>().ln() + m;
    z.iter().map(|v| v - lse).collect()
}

/// Per-channel index of every element of `[n, c, s]`.
fn channel_of(i: usize, c: usize, s: usize) -> usize {
    (i / s) % c
}

/// Inputs in `[-spread, spread]` kept at least `margin` away from every point in `kinks`.
fn away_from(rng: &mut Rng, n: usize, spread: f32, kinks: &[f32], margin: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            loop {
                let v = rng.uniform() * spread;
                if kinks.iter().all(|k| (v - k).abs() > margin) {
                    break v;
                }
            }
        })
        .collect()
}

/// Distinct values 0.01 apart in random order: no ties within a pooling
/// window, even after a step of h = 1e-3.
fn distinct(rng: &mut Rng, n: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..n).map(|k| k as f32 * 0.01 - n as f32 * 0.005).collect();
    for k in (1..n).rev() {
        v.swap(k, rng.below(k + 1));
    }
    v
}

/// Every differentiable op against finite differences, on odd sizes, batch
/// 1, one channel, more elements than one workgroup, and (second pass) with
/// the dispatch split into rows of 3 workgroups.
#[test]
fn differentiable_ops_match_finite_differences() {
    let gpu = gpu();
    for grid_limit in [u32::MAX, 3] {
        let mut rng = Rng::new(50);
        let mut checks = Vec::new();
        let c = &mut checks;
        let tag = if grid_limit == 3 {
            " (grid rows of 3)"
        } else {
            ""
        };
        gpu.set_grid_limit(grid_limit);

        // Piecewise-linear or linear ops are exact on a piece: h = 1e-3.
        for (rows, i, o) in [(5, 7, 3), (1, 70, 3), (9, 13, 67)] {
            let (x, w, b) = (rng.vec(rows * i), rng.vec(o * i), rng.vec(o));
            fd_case(
                c,
                &format!("linear {rows}x{i}->{o}{tag}"),
                &[(&[rows, i], &x), (&[o, i], &w), (&[o], &b)],
                false,
                1e-3,
                &|v| linear_f64(&v[0], &v[1], Some(&v[2]), (rows, i, o)),
                |t, v| ops::linear(t, v[0], v[1], Some(v[2])).unwrap(),
            );
        }
        for (n, ch, hw, o, k, stride, pad) in [
            (2, 3, (7, 6), 4, 3, 1, 1),
            (2, 3, (7, 6), 4, 3, 2, 1),
            (1, 1, (5, 5), 2, 1, 1, 0),
            (1, 2, (6, 9), 3, 3, 2, 0),
        ] {
            let g = conv::Conv2dGeom {
                n,
                c: ch,
                h: hw.0,
                w: hw.1,
                o,
                kh: k,
                kw: k,
                stride,
                pad,
            };
            let x = rng.vec(g.input_shape().iter().product());
            let w = rng.vec(g.weight_shape().iter().product());
            fd_case(
                c,
                &format!("conv2d {g:?}{tag}"),
                &[(&g.input_shape(), &x), (&g.weight_shape(), &w)],
                false,
                1e-3,
                &|v| conv2d_f64(&v[0], &v[1], g),
                |t, v| ops::conv2d(t, v[0], v[1], stride, pad, false).unwrap(),
            );
        }
        for (lo, hi) in [(-1.0f32, 1.0f32), (-0.5, 0.8)] {
            let x = away_from(&mut rng, 150, 1.6, &[lo, hi], 0.01);
            fd_case(
                c,
                &format!("hardtanh [{lo}, {hi}]{tag}"),
                &[(&[3, 50], &x)],
                false,
                1e-3,
                &|v| {
                    v[0].iter()
                        .map(|&x| x.clamp(lo as f64, hi as f64))
                        .collect()
                },
                |t, v| ops::hardtanh(t, v[0], lo, hi).unwrap(),
            );
        }
        for shape in [[2usize, 3, 5, 4], [4, 1, 7, 1]] {
            let (ch, s) = (shape[1], shape[2] * shape[3]);
            let n: usize = shape.iter().product();
            let (beta, gamma, zeta) = (rng.vec(ch), rng.vec(ch), rng.vec(ch));
            // Keep x - gamma_c away from the kink at 0.
            let x: Vec<f32> = away_from(&mut rng, n, 1.5, &[0.0], 0.01)
                .iter()
                .enumerate()
                .map(|(i, v)| v + gamma[channel_of(i, ch, s)])
                .collect();
            fd_case(
                c,
                &format!("rprelu {shape:?}{tag}"),
                &[
                    (&shape, &x),
                    (&[ch], &beta),
                    (&[ch], &gamma),
                    (&[ch], &zeta),
                ],
                false,
                1e-3,
                &|v| {
                    (0..v[0].len())
                        .map(|i| {
                            let k = channel_of(i, ch, s);
                            let t = v[0][i] - v[2][k];
                            (if t > 0.0 { t } else { v[1][k] * t }) + v[3][k]
                        })
                        .collect()
                },
                |t, v| ops::rprelu(t, v[0], v[1], v[2], v[3]).unwrap(),
            );
        }
        let (a, b) = (rng.vec(105), rng.vec(105));
        fd_case(
            c,
            &format!("add{tag}"),
            &[(&[3, 5, 7], &a), (&[3, 5, 7], &b)],
            false,
            1e-3,
            &|v| v[0].iter().zip(&v[1]).map(|(a, b)| a + b).collect(),
            |t, v| ops::add(t, v[0], v[1]).unwrap(),
        );
        let x = rng.vec(24);
        fd_case(
            c,
            &format!("reshape{tag}"),
            &[(&[2, 3, 4], &x)],
            false,
            1e-3,
            &|v| v[0].clone(),
            |t, v| ops::reshape(t, v[0], &[6, 4]),
        );
        for shape in [[2usize, 3, 5, 7], [1, 1, 4, 4]] {
            let x = distinct(&mut rng, shape.iter().product());
            fd_case(
                c,
                &format!("max pool {shape:?}{tag}"),
                &[(&shape, &x)],
                false,
                1e-3,
                &|v| pool_f64(&v[0], shape, |w| w.iter().cloned().fold(f64::MIN, f64::max)),
                |t, v| ops::max_pool2x2(t, v[0]).unwrap(),
            );
            let x = rng.vec(shape.iter().product());
            fd_case(
                c,
                &format!("avg pool {shape:?}{tag}"),
                &[(&shape, &x)],
                false,
                1e-3,
                &|v| pool_f64(&v[0], shape, |w| w.iter().sum::<f64>() / 4.0),
                |t, v| ops::avg_pool2x2(t, v[0]).unwrap(),
            );
        }
        for shape in [[2usize, 3, 5, 4], [1, 1, 3, 3], [2, 70, 1, 1]] {
            let plane = shape[2] * shape[3];
            let x = rng.vec(shape.iter().product());
            fd_case(
                c,
                &format!("global avg pool {shape:?}{tag}"),
                &[(&shape, &x)],
                false,
                1e-3,
                &|v| {
                    v[0].chunks(plane)
                        .map(|p| p.iter().sum::<f64>() / plane as f64)
                        .collect()
                },
                |t, v| ops::global_avg_pool(t, v[0]).unwrap(),
            );
        }

        // Smooth ops: h = 1e-4 makes the O(h^2) truncation ~1e-8.
        for shape in [vec![4usize, 3, 2, 3], vec![7, 5], vec![3, 1, 9, 10]] {
            let (ch, s) = (shape[1], shape[2..].iter().product::<usize>());
            let n = shape[0];
            let x = rng.vec(n * ch * s);
            let gamma: Vec<f32> = rng.vec(ch).iter().map(|v| v + 1.5).collect();
            let beta = rng.vec(ch);
            let rm = Tensor::from_f32(&gpu, &[ch], &vec![0.0; ch]).unwrap();
            let rv = Tensor::from_f32(&gpu, &[ch], &vec![1.0; ch]).unwrap();
            fd_case(
                c,
                &format!("batch norm {shape:?}{tag}"),
                &[(&shape, &x), (&[ch], &gamma), (&[ch], &beta)],
                false,
                1e-4,
                &|v| batch_norm_f64(&v[0], &v[1], &v[2], [n, ch, s]),
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
        }
        for (rows, classes) in [(5, 10), (1, 10), (3, 3), (70, 7)] {
            let z: Vec<f32> = rng.vec(rows * classes).iter().map(|v| 3.0 * v).collect();
            let labels: Vec<u32> = (0..rows).map(|_| rng.below(classes) as u32).collect();
            let lt = Tensor::from_u32(&gpu, &[rows], &labels).unwrap();
            let ls = labels.clone();
            fd_case(
                c,
                &format!("cross-entropy {rows}x{classes}{tag}"),
                &[(&[rows, classes], &z)],
                true,
                1e-4,
                &move |v| {
                    let total: f64 = v[0]
                        .chunks(classes)
                        .zip(&ls)
                        .map(|(row, &l)| -log_softmax(row)[l as usize])
                        .sum();
                    vec![total / rows as f64]
                },
                |t, v| ops::softmax_cross_entropy(t, v[0], &lt).unwrap(),
            );
            let teacher: Vec<f32> = rng.vec(rows * classes).iter().map(|v| 3.0 * v).collect();
            let tt = Tensor::from_f32(&gpu, &[rows, classes], &teacher).unwrap();
            let temp = if classes == 10 { 2.0 } else { 1.0 };
            let tf = f64s(&teacher);
            fd_case(
                c,
                &format!("kd loss {rows}x{classes} T={temp}{tag}"),
                &[(&[rows, classes], &z)],
                true,
                1e-4,
                &move |v| {
                    let t = temp as f64;
                    let total: f64 = v[0]
                        .chunks(classes)
                        .zip(tf.chunks(classes))
                        .map(|(s, te)| {
                            let ls = log_softmax(&s.iter().map(|x| x / t).collect::<Vec<_>>());
                            let lt = log_softmax(&te.iter().map(|x| x / t).collect::<Vec<_>>());
                            -lt.iter().zip(&ls).map(|(a, b)| a.exp() * b).sum::<f64>()
                        })
                        .sum();
                    vec![total / rows as f64]
                },
                |t, v| ops::kd_loss(t, v[0], &tt, temp).unwrap(),
            );
        }
        gpu.set_grid_limit(u32::MAX);
        // Every failing check at once: which ops fail says more than the first.
        let failures: Vec<String> = checks.iter().filter_map(Check::failure).collect();
        assert!(
            failures.is_empty(),
            "{} of {} checks failed:\n{}",
            failures.len(),
            checks.len(),
            failures.join("\n")
        );
    }
}

/// The STE masks are `1[|x| <= 1]`, boundary included, and sign(0) = sign(-0) = +1;
/// written out by hand so the CPU references cannot share a mistake with the device.
#[test]
fn straight_through_masks_include_the_boundary() {
    let x = [-1.5f32, -1.0, -0.5, -0.0, 0.0, 0.5, 1.0, 1.5];
    let g = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
    let (y, _, grads) = run(
        &[(&[2, 4], &x)],
        |_| g.to_vec(),
        |t, v| ops::sign_ste(t, v[0]).unwrap(),
    );
    assert_eq!(
        y,
        [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
        "sign_ste forward"
    );
    assert_eq!(
        grads[0],
        [0.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 0.0],
        "sign_ste backward"
    );

    // One output row: W = x, alpha = mean |W| = 6/8, W_b = alpha * sign(W).
    let input = [0.5f32, -2.0, 1.0, 0.25, -1.0, 3.0, 0.0, 1.0];
    let (y, _, grads) = run(
        &[(&[1, 8], &input), (&[1, 8], &x)],
        |_| vec![2.0],
        |t, v| ops::binary_linear(t, v[0], v[1]).unwrap(),
    );
    let alpha = 0.75f32;
    let sw = [-1.0f32, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
    let dot: f32 = input.iter().zip(&sw).map(|(a, b)| a * b).sum();
    assert_close("binary_linear y", &y, &[alpha * dot], 1e-6, 1e-6);
    let dx: Vec<f32> = sw.iter().map(|s| 2.0 * alpha * s).collect();
    assert_close("binary_linear dx", &grads[0], &dx, 1e-6, 1e-6);
    let mask = [0.0f32, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0];
    let dw: Vec<f32> = input.iter().zip(&mask).map(|(a, m)| 2.0 * a * m).collect();
    assert_close("binary_linear dW", &grads[1], &dw, 1e-6, 1e-6);
}

/// Device tensors and gradients of a net, read back by name.
struct NetRun {
    loss: f32,
    grads: Vec<(&'static str, Vec<f32>)>,
    running: Vec<Vec<f32>>,
}

/// linear(+b) -> batch norm -> hardtanh -> linear(+b) -> cross-entropy on
/// the device against the same net composed from the CPU references, with
/// the running statistics and the input left without a gradient.
#[test]
fn two_layer_real_net_matches_the_cpu_composition() {
    use gemm::Trans::{N, T};
    let gpu = gpu();
    let mut rng = Rng::new(60);
    let (b, i, h, o) = (6, 13, 67, 10);
    let x = rng.vec(b * i);
    let (w1, b1) = (rng.vec(h * i), rng.vec(h));
    let (g1, be1) = (
        rng.vec(h).iter().map(|v| v + 1.5).collect::<Vec<f32>>(),
        rng.vec(h),
    );
    let (w2, b2) = (rng.vec(o * h), rng.vec(o));
    let labels: Vec<u32> = (0..b).map(|_| rng.below(o) as u32).collect();

    let dev = {
        let mut tape = Tape::new(gpu.clone());
        let leaf = |t: &mut Tape, shape: &[usize], v: &[f32], g: bool| {
            t.leaf(Tensor::from_f32(&gpu, shape, v).unwrap(), g)
        };
        let xv = leaf(&mut tape, &[b, i], &x, false);
        let params = [
            ("W1", leaf(&mut tape, &[h, i], &w1, true)),
            ("b1", leaf(&mut tape, &[h], &b1, true)),
            ("gamma", leaf(&mut tape, &[h], &g1, true)),
            ("beta", leaf(&mut tape, &[h], &be1, true)),
            ("W2", leaf(&mut tape, &[o, h], &w2, true)),
            ("b2", leaf(&mut tape, &[o], &b2, true)),
        ];
        let p = |k: usize| params[k].1;
        let rm = Tensor::from_f32(&gpu, &[h], &vec![0.5; h]).unwrap();
        let rv = Tensor::from_f32(&gpu, &[h], &vec![2.0; h]).unwrap();
        let lt = Tensor::from_u32(&gpu, &[b], &labels).unwrap();
        let z = ops::linear(&mut tape, xv, p(0), Some(p(1))).unwrap();
        let state = ops::BnState {
            running_mean: &rm,
            running_var: &rv,
            eps: 1e-5,
            momentum: 0.1,
        };
        let z = ops::batch_norm(&mut tape, z, p(2), p(3), state, true).unwrap();
        let a = ops::hardtanh(&mut tape, z, -1.0, 1.0).unwrap();
        let logits = ops::linear(&mut tape, a, p(4), Some(p(5))).unwrap();
        let loss = ops::softmax_cross_entropy(&mut tape, logits, &lt).unwrap();
        let loss_value = tape.value(loss).to_f32(&gpu).unwrap()[0];
        let seed = ops::loss_seed(&tape).unwrap();
        let grads = tape.backward(loss, seed).unwrap();
        assert!(grads.get(xv).is_none(), "an input must get no gradient");
        NetRun {
            loss: loss_value,
            grads: params
                .iter()
                .map(|(name, v)| (*name, grads.get(*v).unwrap().to_f32(&gpu).unwrap()))
                .collect(),
            running: vec![rm.to_f32(&gpu).unwrap(), rv.to_f32(&gpu).unwrap()],
        }
    };

    let h1 = gemm::f32_gemm_cpu(&x, [b, i], N, &w1, [h, i], T, None, Some(&b1));
    let (mut rm, mut rv) = (vec![0.5; h], vec![2.0; h]);
    let dims = [b, h, 1];
    let (z, mean, invstd) =
        norm::batch_norm_train_cpu(&h1, dims, &g1, &be1, &mut rm, &mut rv, 1e-5, 0.1);
    let a = act::clamp_cpu(&z, -1.0, 1.0);
    let logits = gemm::f32_gemm_cpu(&a, [b, h], N, &w2, [o, h], T, None, Some(&b2));
    let (loss, probs) = loss::softmax_cross_entropy_cpu(&logits, &labels, o);
    let dlogits = loss::softmax_cross_entropy_backward_cpu(&probs, &labels, o);
    let col_sums = |g: &[f32], cols: usize| -> Vec<f32> {
        (0..cols)
            .map(|c| g.iter().skip(c).step_by(cols).sum())
            .collect()
    };
    let dw2 = matmul(&dlogits, [b, o], T, &a, [b, h], N);
    let db2 = col_sums(&dlogits, o);
    let da = matmul(&dlogits, [b, o], N, &w2, [o, h], N);
    let dz = act::hardtanh_backward_cpu(&z, &da, -1.0, 1.0);
    let (dh1, dg1, dbe1) = norm::batch_norm_backward_cpu(&h1, &dz, dims, &g1, &mean, &invstd);
    let dw1 = matmul(&dh1, [b, h], T, &x, [b, i], N);
    let db1 = col_sums(&dh1, h);

    assert_close("real net loss", &[dev.loss], &[loss], 1e-5, 1e-5);
    for ((name, got), want) in dev.grads.iter().zip([dw1, db1, dg1, dbe1, dw2, db2]) {
        Check::scaled(format!("real net d{name}"), got.clone(), want).assert();
    }
    assert_close("running mean", &dev.running[0], &rm, 1e-5, 1e-5);
    assert_close("running var", &dev.running[1], &rv, 1e-5, 1e-5);
}

/// The bmlp pattern: binary_linear -> batch norm -> sign_ste ->
/// binary_linear (on signs: the XNOR path) -> batch norm -> cross-entropy,
/// with batch norm and sign_ste as two ops and as the one fused op.
#[test]
fn two_layer_binary_net_matches_the_cpu_composition() {
    use gemm::Trans::{N, T};
    let gpu = gpu();
    let mut rng = Rng::new(61);
    let (b, i, h, o) = (8, 45, 37, 10);
    let x = rng.vec(b * i);
    // Latent weights partly beyond 1, so the STE mask on W matters.
    let w1: Vec<f32> = rng.vec(h * i).iter().map(|v| 1.4 * v).collect();
    let w2: Vec<f32> = rng.vec(o * h).iter().map(|v| 1.4 * v).collect();
    let (g1, be1) = (
        rng.vec(h).iter().map(|v| v + 1.5).collect::<Vec<f32>>(),
        rng.vec(h),
    );
    let (g2, be2) = (
        rng.vec(o).iter().map(|v| v + 1.5).collect::<Vec<f32>>(),
        rng.vec(o),
    );
    let labels: Vec<u32> = (0..b).map(|_| rng.below(o) as u32).collect();

    let run_device = |fused: bool| {
        let mut tape = Tape::new(gpu.clone());
        let leaf = |t: &mut Tape, shape: &[usize], v: &[f32], g: bool| {
            t.leaf(Tensor::from_f32(&gpu, shape, v).unwrap(), g)
        };
        let xv = leaf(&mut tape, &[b, i], &x, false);
        let params = [
            ("W1", leaf(&mut tape, &[h, i], &w1, true)),
            ("gamma1", leaf(&mut tape, &[h], &g1, true)),
            ("beta1", leaf(&mut tape, &[h], &be1, true)),
            ("W2", leaf(&mut tape, &[o, h], &w2, true)),
            ("gamma2", leaf(&mut tape, &[o], &g2, true)),
            ("beta2", leaf(&mut tape, &[o], &be2, true)),
        ];
        let p = |k: usize| params[k].1;
        let stats: Vec<Tensor> = [h, h, o, o]
            .iter()
            .enumerate()
            .map(|(k, &n)| Tensor::from_f32(&gpu, &[n], &vec![(k % 2) as f32; n]).unwrap())
            .collect();
        let bn = |s: usize| ops::BnState {
            running_mean: &stats[s],
            running_var: &stats[s + 1],
            eps: 1e-5,
            momentum: 0.1,
        };
        let lt = Tensor::from_u32(&gpu, &[b], &labels).unwrap();
        let z = ops::binary_linear(&mut tape, xv, p(0)).unwrap();
        let s = if fused {
            ops::batch_norm_sign_ste(&mut tape, z, p(1), p(2), bn(0))
                .unwrap()
                .0
        } else {
            let z = ops::batch_norm(&mut tape, z, p(1), p(2), bn(0), true).unwrap();
            ops::sign_ste(&mut tape, z).unwrap()
        };
        assert!(tape.is_signs(s), "sign_ste output must take the XNOR path");
        let z = ops::binary_linear(&mut tape, s, p(3)).unwrap();
        let z = ops::batch_norm(&mut tape, z, p(4), p(5), bn(2), true).unwrap();
        let loss = ops::softmax_cross_entropy(&mut tape, z, &lt).unwrap();
        let loss_value = tape.value(loss).to_f32(&gpu).unwrap()[0];
        let seed = ops::loss_seed(&tape).unwrap();
        let grads = tape.backward(loss, seed).unwrap();
        NetRun {
            loss: loss_value,
            grads: params
                .iter()
                .map(|(name, v)| (*name, grads.get(*v).unwrap().to_f32(&gpu).unwrap()))
                .collect(),
            running: stats.iter().map(|t| t.to_f32(&gpu).unwrap()).collect(),
        }
    };

    let (w1b, w2b) = (binarized(&w1, h), binarized(&w2, o));
    let mut run_stats: Vec<Vec<f32>> = [h, h, o, o]
        .iter()
        .enumerate()
        .map(|(k, &n)| vec![(k % 2) as f32; n])
        .collect();
    let (rs1, rs2) = run_stats.split_at_mut(2);
    let (rm1, rv1) = rs1.split_at_mut(1);
    let (rm2, rv2) = rs2.split_at_mut(1);
    let h1 = matmul(&x, [b, i], N, &w1b, [h, i], T);
    let (z1, m1, is1) = norm::batch_norm_train_cpu(
        &h1,
        [b, h, 1],
        &g1,
        &be1,
        &mut rm1[0],
        &mut rv1[0],
        1e-5,
        0.1,
    );
    let s = signs(&z1);
    let h2 = matmul(&s, [b, h], N, &w2b, [o, h], T);
    let (z2, m2, is2) = norm::batch_norm_train_cpu(
        &h2,
        [b, o, 1],
        &g2,
        &be2,
        &mut rm2[0],
        &mut rv2[0],
        1e-5,
        0.1,
    );
    let (loss, probs) = loss::softmax_cross_entropy_cpu(&z2, &labels, o);
    let dz2 = loss::softmax_cross_entropy_backward_cpu(&probs, &labels, o);
    let (dh2, dg2, dbe2) = norm::batch_norm_backward_cpu(&h2, &dz2, [b, o, 1], &g2, &m2, &is2);
    let dw2 = act::ste_sign_backward_cpu(&w2, &matmul(&dh2, [b, o], T, &s, [b, h], N));
    let ds = matmul(&dh2, [b, o], N, &w2b, [o, h], N);
    let dz1 = act::ste_sign_backward_cpu(&z1, &ds);
    let (dh1, dg1, dbe1) = norm::batch_norm_backward_cpu(&h1, &dz1, [b, h, 1], &g1, &m1, &is1);
    let dw1 = act::ste_sign_backward_cpu(&w1, &matmul(&dh1, [b, h], T, &x, [b, i], N));

    let wants = [dw1, dg1, dbe1, dw2, dg2, dbe2];
    for fused in [false, true] {
        let dev = run_device(fused);
        let what = if fused { "fused" } else { "two ops" };
        assert_close(
            &format!("binary net loss ({what})"),
            &[dev.loss],
            &[loss],
            1e-5,
            1e-5,
        );
        for ((name, got), want) in dev.grads.iter().zip(&wants) {
            Check::scaled(
                format!("binary net d{name} ({what})"),
                got.clone(),
                want.clone(),
            )
            .assert();
        }
        for (k, (got, want)) in dev.running.iter().zip(&run_stats).enumerate() {
            assert_close(
                &format!("running statistic {k} ({what})"),
                got,
                want,
                1e-5,
                1e-5,
            );
        }
    }
}

/// A weight used by two layers and a residual shortcut: both paths'
/// gradients add up, for the parameter and for the input.
#[test]
fn shared_weight_and_shortcut_accumulate() {
    use gemm::Trans::{N, T};
    let mut rng = Rng::new(62);
    let (b, n) = (3, 11);
    let x = rng.vec(b * n);
    let w = rng.vec(n * n);
    // out = (hardtanh(x W^T) + x) W^T
    let (_, r, g) = run(
        &[(&[b, n], &x), (&[n, n], &w)],
        |k| Rng::new(63).vec(k),
        |t, v| {
            let h1 = ops::linear(t, v[0], v[1], None).unwrap();
            let a = ops::hardtanh(t, h1, -0.5, 0.5).unwrap();
            let s = ops::add(t, a, v[0]).unwrap();
            ops::linear(t, s, v[1], None).unwrap()
        },
    );
    let h1 = matmul(&x, [b, n], N, &w, [n, n], T);
    let s = act::add_cpu(&act::clamp_cpu(&h1, -0.5, 0.5), &x);
    let ds = matmul(&r, [b, n], N, &w, [n, n], N);
    let dh1 = act::hardtanh_backward_cpu(&h1, &ds, -0.5, 0.5);
    let dx = act::add_cpu(&matmul(&dh1, [b, n], N, &w, [n, n], N), &ds);
    let dw = act::add_cpu(
        &matmul(&r, [b, n], T, &s, [b, n], N),
        &matmul(&dh1, [b, n], T, &x, [b, n], N),
    );
    Check::scaled("shortcut dx".into(), g[0].clone(), dx).assert();
    Check::scaled("shared dW".into(), g[1].clone(), dw).assert();
}
