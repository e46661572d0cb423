//! ReCU (METHODS.md section 3) on the device: the weight path against its
//! CPU reference on edge sizes and against central finite differences with
//! Q held fixed; the activation path's backward against finite differences
//! of its smooth surrogate; the output scale's gradient; the sign layers
//! staying on packed XNOR kernels; the dead-weight ratio of Laplace weights
//! matching 2(1 - tau) (and Gaussian weights not); a tiny `--method recu` run
//! that lowers the loss and logs the metrics; configuration errors.

mod common;

use std::path::Path;

use bitprop::Tensor;
use bitprop::autograd::{Tape, Var, ops, recu};
use bitprop::nn::{ActRule, Binarization, WeightRule, build_model_with};
use bitprop::ops::recu as k;
use bitprop::train::TrainConfig;
use bitprop::train::config::MethodKind;
use common::{
    Rng, assert_close, checkpoint_bits, gpu, metrics_without_timing, small_fashion_mnist,
};

/// (rows, K): one row, K below/above/at multiples of 32, odd sizes, K over a workgroup.
const EDGE: &[(usize, usize)] = &[
    (1, 1),
    (1, 37),
    (3, 33),
    (5, 64),
    (7, 300),
    (16, 9),
    (2, 1100),
];

#[test]
fn recu_weights_match_the_cpu_reference_on_edge_sizes() {
    let gpu = gpu();
    let mut rng = Rng::new(10);
    for &(rows, kk) in EDGE {
        for (b_star, tau) in [(2.0, 0.85), (1.0, 0.99), (3.0, 0.7)] {
            let w: Vec<f32> = rng.vec(rows * kk).iter().map(|v| v * 0.1 + 0.02).collect();
            let wt = Tensor::from_f32(&gpu, &[rows, kk], &w).unwrap();
            let r = k::recu_weights(&gpu, &wt, b_star, tau).unwrap();
            let (w1, w2, b_hat, q) = k::recu_weights_cpu(&w, rows, kk, b_star, tau);
            let what = format!("{rows}x{kk} b*={b_star} tau={tau}");
            assert_close(
                &format!("w1 {what}"),
                &r.w1.to_f32(&gpu).unwrap(),
                &w1,
                1e-4,
                1e-4,
            );
            assert_close(
                &format!("w2 {what}"),
                &r.w2.to_f32(&gpu).unwrap(),
                &w2,
                1e-4,
                1e-4,
            );
            assert_close(
                &format!("q {what}"),
                &r.q.to_f32(&gpu).unwrap(),
                &[b_hat, q],
                1e-5,
                1e-4,
            );
            // Signs of w2 are the signs of w - mean: what the XNOR path packs.
            if kk > 1 {
                assert!(q > 0.0, "{what}: Q = {q}");
            }
        }
    }
}

/// f64 forward of the weight path with Q given: `sum_j r_j clamp(w1_j, -Q, Q)`.
fn clamped_loss(w: &[f64], rows: usize, kk: usize, b_star: f64, q: f64, r: &[f64]) -> f64 {
    let mut total = 0.0;
    for i in 0..rows {
        let row = &w[i * kk..(i + 1) * kk];
        let mean = row.iter().sum::<f64>() / kk as f64;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / kk as f64;
        let inv = std::f64::consts::SQRT_2 * b_star / (var + k::RECU_EPS as f64).sqrt();
        for j in 0..kk {
            total += r[i * kk + j] * ((row[j] - mean) * inv).clamp(-q, q);
        }
    }
    total
}

#[test]
fn recu_weight_backward_matches_finite_differences_with_q_fixed() {
    let gpu = gpu();
    let mut rng = Rng::new(11);
    for &(rows, kk) in &[(1, 5), (3, 37), (4, 70)] {
        let b_star = 2.0;
        // tau 0.8 clamps a good share of the weights, so the mask matters.
        let tau = 0.8;
        let w: Vec<f32> = rng.vec(rows * kk).iter().map(|v| v * 0.3).collect();
        let r: Vec<f32> = rng.vec(rows * kk);
        let mut tape = Tape::new(gpu.clone());
        let wv = tape.leaf(Tensor::from_f32(&gpu, &[rows, kk], &w).unwrap(), true);
        let (w2, saved) = recu::recu_weight(&mut tape, wv, b_star, tau).unwrap();
        let q = saved.q.to_f32(&gpu).unwrap()[1];
        let seed = Tensor::from_f32(&gpu, &[rows, kk], &r).unwrap();
        let grads = tape.backward(w2, seed).unwrap();
        let got = grads.get(wv).unwrap().to_f32(&gpu).unwrap();
        let cpu = k::recu_weights_backward_cpu(&w, rows, kk, b_star, q, &r);
        assert_close(&format!("dw vs CPU {rows}x{kk}"), &got, &cpu, 1e-4, 1e-3);
        let (wd, rd): (Vec<f64>, Vec<f64>) = (
            w.iter().map(|&v| v as f64).collect(),
            r.iter().map(|&v| v as f64).collect(),
        );
        let h = 1e-6;
        let fd: Vec<f32> = (0..w.len())
            .map(|i| {
                let (mut p, mut m) = (wd.clone(), wd.clone());
                p[i] += h;
                m[i] -= h;
                let lp = clamped_loss(&p, rows, kk, b_star as f64, q as f64, &rd);
                let lm = clamped_loss(&m, rows, kk, b_star as f64, q as f64, &rd);
                ((lp - lm) / (2.0 * h)) as f32
            })
            .collect();
        let clamped = saved
            .w1
            .to_f32(&gpu)
            .unwrap()
            .iter()
            .filter(|v| v.abs() > q)
            .count();
        assert!(
            clamped > 0 || kk < 10,
            "{rows}x{kk}: the clamp is not exercised"
        );
        let scale = fd.iter().fold(0f32, |a, v| a.max(v.abs()));
        assert_close(
            &format!("dw vs finite differences {rows}x{kk}"),
            &got,
            &fd,
            2e-3 * scale,
            2e-3,
        );
    }
}

/// b* scales w1 and Q alike: sign(w2) and the mask do not depend on it, and
/// the latent gradient scales by b* (which is why Adam makes b* a no-op).
#[test]
fn b_star_scales_w2_and_the_gradient_only() {
    let gpu = gpu();
    let mut rng = Rng::new(17);
    let (rows, kk) = (3, 45);
    let w = rng.vec(rows * kk);
    let g = rng.vec(rows * kk);
    let at = |b_star: f32| {
        let mut tape = Tape::new(gpu.clone());
        let wv = tape.leaf(Tensor::from_f32(&gpu, &[rows, kk], &w).unwrap(), true);
        let (w2, _) = recu::recu_weight(&mut tape, wv, b_star, 0.9).unwrap();
        let y = tape.value(w2).to_f32(&gpu).unwrap();
        let grads = tape
            .backward(w2, Tensor::from_f32(&gpu, &[rows, kk], &g).unwrap())
            .unwrap();
        (y, grads.get(wv).unwrap().to_f32(&gpu).unwrap())
    };
    let (y1, d1) = at(1.0);
    let (y2, d2) = at(2.0);
    let double = |v: &[f32]| v.iter().map(|x| 2.0 * x).collect::<Vec<f32>>();
    assert_close("w2 at b*=2 vs 2 w2 at b*=1", &y2, &double(&y1), 1e-5, 1e-5);
    assert_close("dw at b*=2 vs 2 dw at b*=1", &d2, &double(&d1), 1e-4, 1e-4);
}

/// ApproxSign's antiderivative: `A'(u) = max(0, 2 - 2|u|)`.
fn approx_sign_primitive(u: f64) -> f64 {
    if u.abs() >= 1.0 {
        u.signum()
    } else {
        2.0 * u - u * u.abs()
    }
}

#[test]
fn std_sign_matches_cpu_and_finite_differences_of_its_surrogate() {
    let gpu = gpu();
    let mut rng = Rng::new(12);
    for &[n, c, s] in &[[1, 1, 33], [3, 5, 7], [2, 4, 81], [4, 37, 1]] {
        for with_bias in [false, true] {
            let x: Vec<f32> = rng.vec(n * c * s).iter().map(|v| v * 2.0 + 0.3).collect();
            let bias: Vec<f32> = rng.vec(c).iter().map(|v| v * 0.2).collect();
            let g: Vec<f32> = rng.vec(n * c * s);
            let shape = if s == 1 { vec![n, c] } else { vec![n, c, 1, s] };
            let mut tape = Tape::new(gpu.clone());
            let xv = tape.leaf(Tensor::from_f32(&gpu, &shape, &x).unwrap(), true);
            let bv =
                with_bias.then(|| tape.leaf(Tensor::from_f32(&gpu, &[c], &bias).unwrap(), true));
            let y = recu::std_sign(&mut tape, xv, bv).unwrap();
            assert!(
                tape.is_signs(y),
                "std_sign's output must feed the XNOR path"
            );
            let yv = tape.value(y).to_f32(&gpu).unwrap();
            let grads = tape
                .backward(y, Tensor::from_f32(&gpu, &shape, &g).unwrap())
                .unwrap();
            let dx = grads.get(xv).unwrap().to_f32(&gpu).unwrap();
            let b = with_bias.then_some(&bias[..]);
            let (y_cpu, dx_cpu, db_cpu) = k::std_sign_cpu(&x, b, [n, c, s], &g);
            let what = format!("[{n},{c},{s}] bias {with_bias}");
            assert_eq!(yv, y_cpu, "{what}: signs");
            assert_close(&format!("dx {what}"), &dx, &dx_cpu, 1e-4, 1e-3);
            if let Some(bv) = bv {
                let db = grads.get(bv).unwrap().to_f32(&gpu).unwrap();
                assert_close(&format!("dbias {what}"), &db, &db_cpu, 1e-3, 1e-3);
            }
            // The backward is the exact gradient of sum g * A((x - b) / sigma(x - b)).
            let l = c * s;
            let surrogate = |xs: &[f64]| -> f64 {
                let mut t = 0.0;
                for i in 0..n {
                    let z: Vec<f64> = (0..l)
                        .map(|j| xs[i * l + j] - b.map_or(0.0, |b| b[j / s] as f64))
                        .collect();
                    let mean = z.iter().sum::<f64>() / l as f64;
                    let var = z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / l as f64;
                    let sigma = (var + k::RECU_EPS as f64).sqrt();
                    t += (0..l)
                        .map(|j| g[i * l + j] as f64 * approx_sign_primitive(z[j] / sigma))
                        .sum::<f64>();
                }
                t
            };
            let xd: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            let h = 1e-6;
            let fd: Vec<f32> = (0..xd.len())
                .map(|i| {
                    let (mut p, mut m) = (xd.clone(), xd.clone());
                    p[i] += h;
                    m[i] -= h;
                    ((surrogate(&p) - surrogate(&m)) / (2.0 * h)) as f32
                })
                .collect();
            assert_close(
                &format!("dx vs finite differences {what}"),
                &dx,
                &fd,
                1e-3,
                2e-3,
            );
        }
    }
}

#[test]
fn scale_grad_and_layer_stats_match_cpu() {
    let gpu = gpu();
    let mut rng = Rng::new(13);
    for &[n, c, s] in &[[1, 1, 1], [3, 5, 7], [2, 33, 49], [5, 10, 1]] {
        let dy = rng.vec(n * c * s);
        let y0 = rng.vec(n * c * s);
        let t = |v: &[f32]| Tensor::from_f32(&gpu, &[n, c, s], v).unwrap();
        let got = k::scale_grad(&gpu, &t(&dy), &t(&y0))
            .unwrap()
            .to_f32(&gpu)
            .unwrap();
        assert_close(
            &format!("scale_grad [{n},{c},{s}]"),
            &got,
            &k::scale_grad_cpu(&dy, &y0, [n, c, s]),
            1e-4,
            1e-4,
        );
    }
    for &(rows, kk) in EDGE {
        let w = rng.vec(rows * kk);
        let wt = Tensor::from_f32(&gpu, &[rows, kk], &w).unwrap();
        let r = k::recu_weights(&gpu, &wt, 2.0, 0.9).unwrap();
        let alpha: Vec<f32> = rng.vec(rows).iter().map(|v| v.abs()).collect();
        let at = Tensor::from_f32(&gpu, &[rows], &alpha).unwrap();
        let got = k::layer_stats(&gpu, &r, &at).unwrap().to_f32(&gpu).unwrap();
        let (w1, w2) = (r.w1.to_f32(&gpu).unwrap(), r.w2.to_f32(&gpu).unwrap());
        let q = r.q.to_f32(&gpu).unwrap()[1];
        let want = k::layer_stats_cpu(&w1, &w2, &alpha, kk, q);
        assert_eq!(got[0], want[0], "{rows}x{kk}: dead count");
        assert_close(
            &format!("quant error {rows}x{kk}"),
            &got[1..2],
            &want[1..2],
            1e-3,
            1e-4,
        );
        assert_eq!(got[2..], want[2..], "{rows}x{kk}: histogram");
        assert_eq!(got[2..].iter().sum::<f32>() as usize, rows * kk);
    }
}

#[test]
fn recu_layer_runs_on_xnor_kernels_and_matches_the_float_path() {
    let gpu = gpu();
    let mut rng = Rng::new(14);
    let (n, inp, out) = (5, 70, 9);
    let x = rng.vec(n * inp);
    let w = rng.vec(out * inp);
    let alpha: Vec<f32> = rng.vec(out).iter().map(|v| v.abs() + 0.1).collect();
    let g = rng.vec(n * out);
    let run = |packed: bool| {
        let mut tape = Tape::new(gpu.clone());
        let xl = tape.leaf(Tensor::from_f32(&gpu, &[n, inp], &x).unwrap(), true);
        let xv = if packed {
            ops::sign_ste(&mut tape, xl).unwrap()
        } else {
            xl
        };
        let wv = tape.leaf(Tensor::from_f32(&gpu, &[out, inp], &w).unwrap(), true);
        let av = tape.leaf(Tensor::from_f32(&gpu, &[out], &alpha).unwrap(), true);
        let (w2, _) = recu::recu_weight(&mut tape, wv, 2.0, 0.9).unwrap();
        let y0 = recu::sign_linear(&mut tape, xv, w2).unwrap();
        let y = recu::channel_scale(&mut tape, y0, av).unwrap();
        let macs = tape.macs;
        let yv = tape.value(y).to_f32(&gpu).unwrap();
        let grads = tape
            .backward(y, Tensor::from_f32(&gpu, &[n, out], &g).unwrap())
            .unwrap();
        let get = |v: Var| grads.get(v).unwrap().to_f32(&gpu).unwrap();
        (yv, get(wv), get(av), macs)
    };
    let (y_bits, dw_bits, da_bits, macs) = run(true);
    assert_eq!(
        macs.forward_float, 0,
        "a binary input must stay on the XNOR kernels"
    );
    assert!(macs.forward_binary > 0);
    // CPU: y = alpha_o * sum_k sign(x) sign(w2), and the gradients of the chain.
    let xs = bitprop::ops::act::sign_cpu(&x);
    let (_, w2, _, q) = k::recu_weights_cpu(&w, out, inp, 2.0, 0.9);
    let ws = bitprop::ops::act::sign_cpu(&w2);
    let mut y = vec![0f32; n * out];
    let mut da = vec![0f32; out];
    let mut dwb = vec![0f32; out * inp];
    for i in 0..n {
        for o in 0..out {
            let dot: f32 = (0..inp).map(|j| xs[i * inp + j] * ws[o * inp + j]).sum();
            y[i * out + o] = alpha[o] * dot;
            da[o] += g[i * out + o] * dot;
            for j in 0..inp {
                dwb[o * inp + j] += g[i * out + o] * alpha[o] * xs[i * inp + j];
            }
        }
    }
    assert_close("y on bits", &y_bits, &y, 1e-4, 1e-5);
    assert_close("dalpha", &da_bits, &da, 1e-3, 1e-4);
    let dw = k::recu_weights_backward_cpu(&w, out, inp, 2.0, q, &dwb);
    assert_close("dw through the identity STE", &dw_bits, &dw, 1e-3, 1e-3);
    // The float path (real input) on the same signs gives the same output.
    let xs_real = xs.clone();
    let _ = xs_real;
    let (y_float, ..) = {
        let mut tape = Tape::new(gpu.clone());
        let xv = tape.leaf(Tensor::from_f32(&gpu, &[n, inp], &xs).unwrap(), false);
        let wv = tape.leaf(Tensor::from_f32(&gpu, &[out, inp], &w).unwrap(), true);
        let av = tape.leaf(Tensor::from_f32(&gpu, &[out], &alpha).unwrap(), false);
        let (w2, _) = recu::recu_weight(&mut tape, wv, 2.0, 0.9).unwrap();
        let y0 = recu::sign_linear(&mut tape, xv, w2).unwrap();
        let y = recu::channel_scale(&mut tape, y0, av).unwrap();
        assert!(tape.macs.forward_float > 0);
        (tape.value(y).to_f32(&gpu).unwrap(), ())
    };
    assert_close("float path vs bits", &y_float, &y_bits, 1e-4, 1e-5);
}

/// Dead-weight ratio measured on the device for `w` at `tau`.
fn dead_ratio(w: &[f32], rows: usize, tau: f32) -> f64 {
    let gpu = gpu();
    let kk = w.len() / rows;
    let wt = Tensor::from_f32(&gpu, &[rows, kk], w).unwrap();
    let r = k::recu_weights(&gpu, &wt, 2.0, tau).unwrap();
    let alpha = Tensor::from_f32(&gpu, &[rows], &vec![1.0; rows]).unwrap();
    let stats = k::layer_stats(&gpu, &r, &alpha)
        .unwrap()
        .to_f32(&gpu)
        .unwrap();
    stats[0] as f64 / w.len() as f64
}

#[test]
fn dead_weight_ratio_of_laplace_weights_is_two_times_one_minus_tau() {
    let mut rng = Rng::new(15);
    let (rows, kk) = (64, 2048);
    let n = (rows * kk) as f64;
    let u = |rng: &mut Rng| ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    // Laplace(0, 0.05) by inverse CDF; Gaussian(0, 0.05) by Box-Muller.
    let laplace: Vec<f32> = (0..rows * kk)
        .map(|_| {
            let v = u(&mut rng) - 0.5;
            (-0.05 * v.signum() * (1.0 - 2.0 * v.abs()).ln()) as f32
        })
        .collect();
    let gauss: Vec<f32> = (0..rows * kk)
        .map(|_| {
            (0.05 * (-2.0 * u(&mut rng).ln()).sqrt() * (std::f64::consts::TAU * u(&mut rng)).cos())
                as f32
        })
        .collect();
    for tau in [0.85f32, 0.9, 0.95, 0.99] {
        let want = 2.0 * (1.0 - tau as f64);
        let sd = (want * (1.0 - want) / n).sqrt();
        let got = dead_ratio(&laplace, rows, tau);
        // Four binomial standard deviations, plus 2% of the ratio for b_hat's
        // and the row means' own sampling error.
        assert!(
            (got - want).abs() <= 4.0 * sd + 0.02 * want,
            "Laplace, tau {tau}: dead-weight ratio {got:.5}, 2(1 - tau) = {want:.5} (sd {sd:.5})"
        );
        let g = dead_ratio(&gauss, rows, tau);
        eprintln!("tau {tau}: Laplace {got:.5}, Gaussian {g:.5}, 2(1 - tau) {want:.5}");
        if tau != 0.9 {
            // The identity is Laplace's: a Gaussian's ratio is off by many
            // standard deviations (its curve crosses 2(1 - tau) near tau 0.9).
            assert!(
                (g - want).abs() > 10.0 * sd,
                "Gaussian, tau {tau}: {g:.5} vs {want:.5}"
            );
        }
    }
}

#[test]
fn recu_run_lowers_the_loss_and_logs_its_metrics() {
    let tmp = std::env::temp_dir().join(format!("bitprop-recu-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let cfg = TrainConfig {
        model: "bmlp".into(),
        epochs: 3,
        batch: 64,
        val: Some(0),
        method: MethodKind::Recu,
        data: small_fashion_mnist(&tmp, 512, 128),
        out: tmp.join("run"),
        ..TrainConfig::default()
    };
    bitprop::train::train(gpu(), &cfg, false).expect("a recu run trains");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(cfg.out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    let loss = |i: usize| lines[i]["train_loss"].as_f64().unwrap();
    assert!(
        loss(2) < loss(0),
        "train loss did not fall: {} -> {}",
        loss(0),
        loss(2)
    );
    let taus: Vec<f64> = lines
        .iter()
        .map(|l| l["recu_tau"].as_f64().unwrap())
        .collect();
    assert!(
        (taus[0] - 0.85).abs() < 1e-6 && taus[1] > taus[0] && taus[2] > taus[1],
        "{taus:?}"
    );
    for l in &lines {
        for layer in ["fc1", "fc2", "fc3"] {
            let dead = l["dead_weight_ratio"][layer].as_f64().unwrap();
            assert!((0.0..1.0).contains(&dead), "{l}");
            assert!(l["quant_error"][layer].as_f64().unwrap().is_finite());
            assert!(
                l["weight_entropy"][layer]["closed_form"]
                    .as_f64()
                    .unwrap()
                    .is_finite()
            );
            assert!(
                l["weight_entropy"][layer]["histogram"]
                    .as_f64()
                    .unwrap()
                    .is_finite()
            );
            assert!(l["dead_weight_expected"][layer].as_f64().is_some());
        }
    }
    // The checkpoint holds the learnable scales and the rules.
    let gpu = gpu();
    let mut m = build_model_with(&gpu, "bmlp", 0, cfg.binarization()).unwrap();
    let meta =
        bitprop::train::files::load_model(&gpu, m.store_mut(), &cfg.out.join("last.safetensors"))
            .unwrap();
    assert_eq!(
        Binarization::from_metadata(&meta).unwrap(),
        cfg.binarization()
    );
    assert!(m.store().find("fc2.scale").is_some());
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn conv_models_take_a_recu_step() {
    let gpu = gpu();
    let bin = Binarization {
        weights: WeightRule::Recu {
            b_star: 2.0,
            learnable_scale: true,
        },
        acts: ActRule::RecuStd,
    };
    for name in ["bcnn", "reactnet-s"] {
        let model = build_model_with(&gpu, name, 0, bin).unwrap();
        let scales = model
            .store()
            .entries
            .iter()
            .filter(|e| e.name.ends_with(".scale"))
            .count();
        assert_eq!(
            scales,
            model.store().binary_weights().len(),
            "{name}: one scale per binary layer"
        );
        let (x, labels) = {
            let mut rng = Rng::new(16);
            let x = Tensor::from_f32(&gpu, &[2, 1, 28, 28], &rng.vec(2 * 784)).unwrap();
            (x, Tensor::from_u32(&gpu, &[2], &[3, 7]).unwrap())
        };
        let mut opt = bitprop::optim::Optimizer::new(
            &gpu,
            bitprop::optim::OptimizerConfig {
                kind: bitprop::optim::OptimizerKind::Adam,
                weight_decay: 0.1,
                decay_scope: bitprop::optim::DecayScope::All,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                momentum: 0.9,
                nesterov: false,
            },
        )
        .unwrap();
        assert!(
            !opt.config.decays(bitprop::nn::ParamKind::Scale),
            "scales are not decayed"
        );
        let (loss, _) =
            bitprop::train::train_step(&gpu, model.as_ref(), &mut opt, x, &labels, 1e-3).unwrap();
        assert!(loss.to_f32(&gpu).unwrap()[0].is_finite(), "{name}");
    }
}

#[test]
fn recu_config_errors_name_the_field() {
    let base = TrainConfig {
        method: MethodKind::Recu,
        ..TrainConfig::default()
    };
    assert!(base.validate().is_ok());
    let err = |c: TrainConfig| c.validate().unwrap_err().to_string();
    let e = err(TrainConfig {
        recu_b_star: 0.0,
        ..base.clone()
    });
    assert!(e.contains("'recu_b_star' (--recu-b-star)"), "{e}");
    let e = err(TrainConfig {
        recu_tau_end: 1.0,
        ..base.clone()
    });
    assert!(
        e.contains("'recu_tau_end' (--recu-tau-end)") && e.contains("(0.5, 1)"),
        "{e}"
    );
    let e = err(TrainConfig {
        recu_tau_start: 0.4,
        ..base.clone()
    });
    assert!(e.contains("recu_tau_start"), "{e}");
    let e = err(TrainConfig {
        model: "bmlp-f32".into(),
        ..base.clone()
    });
    assert!(e.contains("'method'") && e.contains("bmlp-f32"), "{e}");
    let c = TrainConfig::from_toml_str(
        "method = \"recu\"\nrecu_b_star = 3.0\nrecu_scale = \"mean-abs\"\nrecu_tau_start = 0.9\n",
        Path::new("r.toml"),
    )
    .unwrap();
    assert_eq!(
        c.binarization(),
        Binarization {
            weights: WeightRule::Recu {
                b_star: 3.0,
                learnable_scale: false
            },
            acts: ActRule::RecuStd
        }
    );
    let e = TrainConfig::from_toml_str("recu_scale = \"fixed\"", Path::new("r.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("recu_scale"), "{e}");
    // The CLI flag names its values.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bitprop"))
        .args(["train", "--method", "recu", "--recu-scale", "fixed"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("expected learnable or mean-abs"),
        "{stderr}"
    );
}

/// A run stopped in its second epoch and resumed ends as the uninterrupted
/// run does: tau is recomputed from the epoch, the scales come back with
/// the checkpoint.
#[test]
fn a_resumed_recu_run_matches_an_uninterrupted_one() {
    let tmp = std::env::temp_dir().join(format!("bitprop-recu-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let data = small_fashion_mnist(&tmp, 256, 64);
    let train = |out: &Path, nan_at: Option<&str>| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_bitprop"));
        c.args([
            "train", "--model", "bmlp", "--method", "recu", "--epochs", "2",
        ])
        .args(["--batch", "64", "--val", "0", "--seed", "3"])
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(out);
        if let Some(step) = nan_at {
            // Step 6 is in the second epoch (4 steps per epoch): the run stops there.
            c.env("BITPROP_INJECT_NAN_AT_STEP", step);
        }
        c.output().unwrap()
    };
    let full = tmp.join("full");
    assert!(train(&full, None).status.success());
    let cut = tmp.join("cut");
    let out = train(&cut, Some("6"));
    assert!(!out.status.success(), "the injected NaN must stop the run");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bitprop"))
        .args(["train", "--resume"])
        .arg(&cut)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (a, b) = (metrics_without_timing(&full), metrics_without_timing(&cut));
    assert_eq!(a.len(), 2);
    assert_eq!(a, b, "resumed metrics differ from the uninterrupted run's");
    let tensors = |dir: &Path| checkpoint_bits(&dir.join("last.safetensors"));
    let (ta, tb) = (tensors(&full), tensors(&cut));
    assert!(ta.iter().any(|(n, _)| n == "fc2.scale"));
    for (x, y) in ta.iter().zip(&tb) {
        assert!(x == y, "resumed tensor {} differs", x.0);
    }
    assert_eq!(ta.len(), tb.len());
    let _ = std::fs::remove_dir_all(&tmp);
}
