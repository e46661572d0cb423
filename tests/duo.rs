//! BinaryDuo: the channel repeat, the ternary and {0, 1} activations and
//! the layer-mean-abs weights against analytic CPU gradients, and exact
//! decoupling of the coupled bmlp and bcnn networks.

mod common;

use bitprop::Tensor;
use bitprop::autograd::ops::{self, WeightScale};
use bitprop::autograd::{Tape, Var};
use bitprop::nn::duo::{self, COUPLED, DECOUPLED, duo_width};
use bitprop::nn::{Binarization, Ctx, Model, build_model_with};
use bitprop::ops::conv::{Conv2dGeom, conv2d_backward_weights_cpu, conv2d_cpu};
use bitprop::ops::{act, gemm};
use common::{Rng, assert_close, gpu};

/// Leaves holding `inputs` (gradients wanted), the op, and the output and
/// every input's gradient for the upstream gradient `r`.
fn run(
    inputs: &[(&[usize], &[f32])],
    build: impl FnOnce(&mut Tape, &[Var]) -> Var,
) -> (
    Vec<f32>,
    Vec<f32>,
    Vec<Vec<f32>>,
    bitprop::autograd::MacCount,
) {
    let gpu = gpu();
    let mut tape = Tape::new(gpu.clone());
    let vars: Vec<Var> = inputs
        .iter()
        .map(|(shape, data)| tape.leaf(Tensor::from_f32(&gpu, shape, data).unwrap(), true))
        .collect();
    let out = build(&mut tape, &vars);
    let macs = tape.macs;
    let y = tape.value(out).clone();
    let rv = Rng::new(99).vec(y.numel());
    let seed = Tensor::from_f32(&gpu, y.shape(), &rv).unwrap();
    let grads = tape.backward(out, seed).unwrap();
    let g = vars
        .iter()
        .map(|v| grads.get(*v).expect("gradient").to_f32(&gpu).unwrap())
        .collect();
    (y.to_f32(&gpu).unwrap(), rv, g, macs)
}

/// Values on and around the thresholds 0, 0.25, 0.5, 0.75 and 1.
fn edgy(rng: &mut Rng, n: usize) -> Vec<f32> {
    let edges = [0.0, 0.25, 0.5, 0.75, 1.0, -0.01, 1.01, 0.2499, 0.7501];
    (0..n)
        .map(|i| {
            if i % 3 == 0 {
                edges[i / 3 % edges.len()]
            } else {
                1.5 * rng.uniform()
            }
        })
        .collect()
}

fn inside01(x: &[f32], g: &[f32]) -> Vec<f32> {
    x.iter()
        .zip(g)
        .map(|(x, g)| if (0.0..=1.0).contains(x) { *g } else { 0.0 })
        .collect()
}

#[test]
fn width_rule() {
    assert_eq!(
        (duo_width(1024), duo_width(128), duo_width(64)),
        (724, 91, 45)
    );
    assert!(duo::width_rule("bmlp").contains("1024 -> 724"));
}

#[test]
fn repeat_channels_and_sum_halves_match_cpu() {
    let gpu = gpu();
    let mut rng = Rng::new(3);
    for shape in [vec![3, 5, 7], vec![1, 33], vec![2, 4, 3, 3], vec![5, 1]] {
        let (outer, c) = (shape[0], shape[1]);
        let s: usize = shape[2..].iter().product();
        let x = rng.vec(shape.iter().product());
        let xt = Tensor::from_f32(&gpu, &shape, &x).unwrap();
        let y = act::repeat_channels(&gpu, &xt).unwrap();
        let mut want_shape = shape.clone();
        want_shape[1] *= 2;
        assert_eq!(y.shape(), want_shape);
        let want = act::repeat_channels_cpu(&x, outer, c, s);
        assert_eq!(y.to_f32(&gpu).unwrap(), want, "repeat {shape:?}");
        let g = rng.vec(want.len());
        let gt = Tensor::from_f32(&gpu, &want_shape, &g).unwrap();
        let dx = act::sum_halves(&gpu, &gt).unwrap();
        assert_eq!(dx.shape(), shape);
        assert_eq!(
            dx.to_f32(&gpu).unwrap(),
            act::sum_halves_cpu(&g, outer, c, s)
        );
        // The references are each other's adjoint: <repeat x, g> = <x, sum g>.
        let lhs: f64 = want.iter().zip(&g).map(|(a, b)| (a * b) as f64).sum();
        let rhs: f64 = x
            .iter()
            .zip(act::sum_halves_cpu(&g, outer, c, s))
            .map(|(a, b)| (a * b) as f64)
            .sum();
        assert!((lhs - rhs).abs() < 1e-4, "{lhs} vs {rhs}");
    }
}

#[test]
fn ternary_and_step01_have_the_clipped_ste() {
    let mut rng = Rng::new(5);
    let x = edgy(&mut rng, 67);
    let (y, r, g, _) = run(&[(&[67], &x)], |t, v| ops::ternary_ste(t, v[0]).unwrap());
    assert_eq!(y, act::ternary_cpu(&x));
    assert_eq!(g[0], inside01(&x, &r));
    let (y, r, g, _) = run(&[(&[67], &x)], |t, v| ops::step01_ste(t, v[0]).unwrap());
    assert_eq!(y, act::step01_cpu(&x, 0.5));
    assert_eq!(g[0], inside01(&x, &r));
    // The decoupled pair equals the ternary value, ties included.
    let pair: Vec<f32> = x
        .iter()
        .map(|v| {
            let b1 = act::step01_cpu(&[v - 0.25], 0.5)[0];
            let b2 = act::step01_cpu(&[v + 0.25], 0.5)[0];
            (b1 + b2) / 2.0
        })
        .collect();
    assert_eq!(pair, act::ternary_cpu(&x));
}

#[test]
fn repeat_channels_backward_sums_the_halves() {
    let x = Rng::new(6).vec(2 * 3 * 4);
    let (y, r, g, _) = run(&[(&[2, 3, 4], &x)], |t, v| {
        ops::repeat_channels(t, v[0]).unwrap()
    });
    assert_eq!(y, act::repeat_channels_cpu(&x, 2, 3, 4));
    assert_eq!(g[0], act::sum_halves_cpu(&r, 2, 3, 4));
}

/// `alpha * sign(w)` with alpha = mean |w| over the whole tensor.
fn layer_binarized(w: &[f32]) -> Vec<f32> {
    let alpha = w.iter().map(|v| v.abs() as f64).sum::<f64>() / w.len() as f64;
    w.iter()
        .map(|v| {
            if *v >= 0.0 {
                alpha as f32
            } else {
                -alpha as f32
            }
        })
        .collect()
}

/// Latent weights with some beyond [-1, 1], whose gradient is masked.
fn latent(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| rng.uniform() * if i % 5 == 0 { 1.6 } else { 0.6 })
        .collect()
}

fn masked(w: &[f32], g: &[f32]) -> Vec<f32> {
    w.iter()
        .zip(g)
        .map(|(w, g)| if w.abs() <= 1.0 { *g } else { 0.0 })
        .collect()
}

#[test]
fn layer_mean_abs_linear_gradients_real_and_zero_one_inputs() {
    use gemm::Trans::{N, T};
    let mut rng = Rng::new(7);
    let (b, k, o) = (5, 37, 3);
    let x = rng.vec(b * k);
    let w = latent(&mut rng, o * k);
    let wb = layer_binarized(&w);
    // Real input: float GEMM.
    let (y, r, g, macs) = run(&[(&[b, k], &x), (&[o, k], &w)], |t, v| {
        ops::binary_linear_scaled(t, v[0], v[1], WeightScale::Layer).unwrap()
    });
    assert_close(
        "y",
        &y,
        &gemm::f32_gemm_cpu(&x, [b, k], N, &wb, [o, k], T, None, None),
        1e-5,
        1e-5,
    );
    let dx = gemm::f32_gemm_cpu(&r, [b, o], N, &wb, [o, k], N, None, None);
    assert_close("dx", &g[0], &dx, 1e-5, 1e-5);
    let dwb = gemm::f32_gemm_cpu(&r, [b, o], T, &x, [b, k], N, None, None);
    assert_close("dw", &g[1], &masked(&w, &dwb), 1e-5, 1e-5);
    assert_eq!(macs.forward_binary, 0);
    // {0, 1} input from the step: AND-popcount forward, the same backward.
    let x01 = act::step01_cpu(&x.iter().map(|v| v + 0.5).collect::<Vec<_>>(), 0.5);
    let (y, r, g, macs) = run(&[(&[b, k], &x), (&[o, k], &w)], |t, v| {
        let half = Tensor::from_f32(t.gpu(), &[b, k], &vec![0.5; b * k]).unwrap();
        let half = t.leaf(half, false);
        let s = ops::add(t, v[0], half).unwrap();
        let a = ops::step01_ste(t, s).unwrap();
        ops::binary_linear_scaled(t, a, v[1], WeightScale::Layer).unwrap()
    });
    assert_eq!(macs.forward_binary, (b * k * o) as u64, "AND-popcount path");
    assert_close(
        "y01",
        &y,
        &gemm::f32_gemm_cpu(&x01, [b, k], N, &wb, [o, k], T, None, None),
        1e-5,
        1e-5,
    );
    let da = gemm::f32_gemm_cpu(&r, [b, o], N, &wb, [o, k], N, None, None);
    let shifted: Vec<f32> = x.iter().map(|v| v + 0.5).collect();
    assert_close("dx01", &g[0], &inside01(&shifted, &da), 1e-5, 1e-5);
    let dwb = gemm::f32_gemm_cpu(&r, [b, o], T, &x01, [b, k], N, None, None);
    assert_close("dw01", &g[1], &masked(&w, &dwb), 1e-5, 1e-5);
}

#[test]
fn layer_mean_abs_conv_on_zero_one_input() {
    let geom = Conv2dGeom {
        n: 2,
        c: 35,
        h: 5,
        w: 6,
        o: 3,
        kh: 3,
        kw: 3,
        stride: 1,
        pad: 1,
    };
    let mut rng = Rng::new(8);
    let x = rng.vec(geom.input_shape().iter().product());
    let w = latent(&mut rng, geom.weight_shape().iter().product());
    let wb = layer_binarized(&w);
    let (y, r, g, macs) = run(
        &[(&geom.input_shape(), &x), (&geom.weight_shape(), &w)],
        |t, v| {
            let a = ops::step01_ste(t, v[0]).unwrap();
            ops::conv2d_scaled(t, a, v[1], 1, 1, Some(WeightScale::Layer)).unwrap()
        },
    );
    assert!(macs.forward_binary > 0, "AND-popcount conv path");
    let x01 = act::step01_cpu(&x, 0.5);
    assert_close("y", &y, &conv2d_cpu(&x01, &wb, geom, None), 1e-5, 1e-5);
    let dwb = conv2d_backward_weights_cpu(&x01, &r, geom);
    assert_close("dw", &g[1], &masked(&w, &dwb), 1e-4, 1e-4);
    // A stored scale replaces mean |W|.
    let (y2, ..) = run(
        &[(&geom.input_shape(), &x), (&geom.weight_shape(), &w)],
        |t, v| {
            let a = ops::step01_ste(t, v[0]).unwrap();
            let s = Tensor::from_f32(t.gpu(), &[1], &[2.0]).unwrap();
            ops::conv2d_scaled(t, a, v[1], 1, 1, Some(WeightScale::Fixed(s))).unwrap()
        },
    );
    let signs: Vec<f32> = w
        .iter()
        .map(|v| if *v >= 0.0 { 2.0 } else { -2.0 })
        .collect();
    assert_close(
        "fixed",
        &y2,
        &conv2d_cpu(&x01, &signs, geom, None),
        1e-5,
        1e-5,
    );
}

/// Gives a model's batch norms random affine parameters and running
/// statistics, so the thresholds matter.
fn randomize_norms(gpu: &bitprop::Gpu, model: &mut dyn Model, rng: &mut Rng) {
    let store = model.store_mut();
    for e in store.entries.iter_mut() {
        if !e.name.starts_with("bn") {
            continue;
        }
        let n = e.value.numel();
        let v: Vec<f32> = match e.name.rsplit('.').next().unwrap() {
            "weight" => (0..n).map(|_| 1.0 + 0.5 * rng.uniform()).collect(),
            "bias" => (0..n).map(|_| 0.3 + 0.4 * rng.uniform()).collect(),
            "running_mean" => (0..n).map(|_| 0.2 * rng.uniform()).collect(),
            _ => (0..n).map(|_| 0.3 + 0.2 * rng.uniform()).collect(),
        };
        e.value = Tensor::from_f32(gpu, e.value.shape(), &v).unwrap();
    }
}

/// Eval-mode logits and the forward's multiply-add counts.
fn logits(model: &dyn Model, x: &[f32], n: usize) -> (Vec<f32>, bitprop::autograd::MacCount) {
    let gpu = gpu();
    let mut tape = Tape::new(gpu.clone());
    let mut ctx = Ctx::for_model(&mut tape, model, false);
    let mut shape = vec![n];
    shape.extend(model.input_shape());
    let xv = ctx
        .tape
        .leaf(Tensor::from_f32(&gpu, &shape, x).unwrap(), false);
    let y = model.forward(&mut ctx, xv).unwrap();
    (tape.value(y).to_f32(&gpu).unwrap(), tape.macs)
}

fn argmax(v: &[f32]) -> Vec<usize> {
    v.chunks(10)
        .map(|r| {
            (0..10)
                .max_by(|a, b| r[*a].partial_cmp(&r[*b]).unwrap())
                .unwrap()
        })
        .collect()
}

fn check_decoupling(name: &str, n: usize, seed: u64) {
    let gpu = gpu();
    let mut rng = Rng::new(seed);
    let mut coupled = build_model_with(&gpu, name, seed, COUPLED).unwrap();
    randomize_norms(&gpu, coupled.as_mut(), &mut rng);
    let dec = duo::decouple(&gpu, coupled.as_ref()).unwrap();
    assert_eq!(dec.binarization(), DECOUPLED);
    let x = rng.vec(n * coupled.input_shape().iter().product::<usize>());
    let (a, ma) = logits(coupled.as_ref(), &x, n);
    let (b, mb) = logits(dec.as_ref(), &x, n);
    assert_close(&format!("{name} decoupled logits"), &b, &a, 1e-4, 1e-4);
    assert_eq!(argmax(&a), argmax(&b), "{name} predictions");
    // Not a trivial network: the logits differ across inputs.
    assert!(a[..10] != a[10..20], "{name}: constant logits");
    // The coupled net multiplies ternary values in f32 (by its weights'
    // packed signs, or by alpha sign(W) in the f32 convolutions); the
    // decoupled one runs its binary layers on AND-popcount.
    assert_eq!(ma.forward_binary, 0);
    let float = |m: &bitprop::autograd::MacCount| m.forward_float + m.forward_signs;
    assert!(
        mb.forward_binary > 0 && float(&mb) < float(&ma),
        "{ma:?} {mb:?}"
    );
    // Rebuildable from checkpoint metadata: same tensors, names and shapes.
    let mut meta = std::collections::BTreeMap::new();
    dec.binarization().write_metadata(&mut meta);
    let again =
        build_model_with(&gpu, name, 1, Binarization::from_metadata(&meta).unwrap()).unwrap();
    let shapes = |m: &dyn Model| -> Vec<(String, Vec<usize>)> {
        m.store()
            .entries
            .iter()
            .map(|e| (e.name.clone(), e.value.shape().to_vec()))
            .collect()
    };
    assert_eq!(shapes(again.as_ref()), shapes(dec.as_ref()));
}

#[test]
fn decoupling_preserves_bmlp_outputs() {
    check_decoupling("bmlp", 16, 21);
}

#[test]
fn decoupling_preserves_bcnn_outputs() {
    check_decoupling("bcnn", 3, 22);
}

#[test]
fn probe_gives_a_cosine_for_sign_and_ternary_activations() {
    use bitprop::methods::probe::{ProbeConfig, probe};
    let gpu = gpu();
    let mut rng = Rng::new(31);
    let n = 16;
    let x = Tensor::from_f32(&gpu, &[n, 784], &rng.vec(n * 784)).unwrap();
    let labels: Vec<u32> = (0..n as u32).map(|i| i % 10).collect();
    let y = Tensor::from_u32(&gpu, &[n], &labels).unwrap();
    let cfg = ProbeConfig {
        every: 1,
        sigma: 0.0,
        pairs: 3,
        weights: 8,
        batch: n,
        seed: 1,
    };
    for bin in [Binarization::default(), COUPLED, DECOUPLED] {
        let mut model = build_model_with(&gpu, "bmlp", 3, bin).unwrap();
        let before = model
            .store()
            .get(model.store().binary_weights()[0])
            .to_f32(&gpu)
            .unwrap();
        let running = model.store().find("bn1.running_mean").unwrap();
        let rm = model.store().get(running).to_f32(&gpu).unwrap();
        let p = probe(&gpu, model.as_mut(), &x, &y, &cfg).unwrap();
        assert!(p.cos.is_finite() && p.cos.abs() <= 1.0, "{bin:?}: {p:?}");
        assert!(p.sigma > 0.0 && p.weights == 8 && p.layer == "fc1.weight");
        // The probe leaves the model as it was.
        let w = model.store().get(model.store().binary_weights()[0]);
        assert_eq!(w.to_f32(&gpu).unwrap(), before);
        assert_eq!(model.store().get(running).to_f32(&gpu).unwrap(), rm);
    }
}

#[test]
fn two_stage_run_writes_both_stages_and_rebuilds_from_checkpoints() {
    use bitprop::train::TrainConfig;
    use bitprop::train::config::MethodKind;
    let gpu = gpu();
    let dir = std::env::temp_dir().join(format!("bitprop-duo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = TrainConfig {
        model: "bmlp".into(),
        method: MethodKind::Binaryduo,
        epochs: 1,
        duo_finetune_epochs: 1,
        batch: 128,
        limit_train: 512,
        val: Some(128),
        probe_every: 1,
        probe_samples: 2,
        probe_weights: 8,
        out: dir.clone(),
        ..TrainConfig::default()
    };
    let run = bitprop::methods::duo::train_binaryduo(gpu.clone(), &cfg, false, false).unwrap();
    assert_eq!(run.coupled.epochs, 1);
    assert_eq!(run.finetuned.epochs, 1);
    // Decoupling keeps the predictions (a tie within an ulp of a threshold
    // could move one image; none is expected).
    let d = &run.decoupling;
    assert!(
        (d.decoupled_test_acc - d.coupled_test_acc).abs() <= 1e-4,
        "{d:?}"
    );
    let line = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let m: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert!(m["grad_mismatch_cos"].as_f64().is_some(), "{m}");
    assert_eq!(m["grad_mismatch_pairs"], 2);
    let test = bitprop::data::load_fashion_mnist(&cfg.data)
        .unwrap()
        .1
        .limit(500);
    for (ck, want) in [
        (dir.join("coupled/best.safetensors"), COUPLED),
        (dir.join("best.safetensors"), DECOUPLED),
    ] {
        let meta = bitprop::checkpoint::load(&ck).unwrap().metadata;
        let bin = Binarization::from_metadata(&meta).unwrap();
        assert_eq!(bin, want, "{}", ck.display());
        let mut model = build_model_with(&gpu, &meta["model"], 0, bin).unwrap();
        bitprop::train::files::load_model(&gpu, model.store_mut(), &ck).unwrap();
        let e = bitprop::train::evaluate(&gpu, model.as_ref(), &test, 500).unwrap();
        assert!(e.acc > 0.3, "{}: {e:?}", ck.display());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
