//! Training-metric counters against CPU computations.

mod common;

use bitprop::DType;
use bitprop::Tensor;
use bitprop::autograd::{Tape, ops};
use bitprop::nn::Ctx;
use bitprop::nn::build_model;
use bitprop::nn::saturation::ActSaturation;
use bitprop::ops::gemm::{Trans, f32_gemm_cpu};
use bitprop::ops::metrics::{
    SignInput, hamming_accumulate, hamming_cpu, saturation_accumulate, saturation_cpu,
};
use bitprop::ops::norm::{BN_EPS, BN_MOMENTUM, batch_norm_apply_cpu, batch_norm_train_cpu};
use bitprop::ops::pack::pack_signs_cpu;
use bitprop::train::weight_metrics::WeightMetrics;
use common::{Rng, gpu};

#[test]
fn hamming_counts_match_cpu_on_edge_sizes() {
    let gpu = gpu();
    let mut rng = Rng::new(50);
    let acc = Tensor::zeros(&gpu, &[3], DType::U32).unwrap();
    let mut want = [0u64; 3];
    for (slot, n) in [(0, 1usize), (1, 63), (1, 64), (2, 65), (2, 5000)] {
        let a: Vec<u32> = (0..n).map(|_| rng.next_u64() as u32).collect();
        let b: Vec<u32> = (0..n).map(|_| rng.next_u64() as u32).collect();
        let at = Tensor::from_u32(&gpu, &[n], &a).unwrap();
        let bt = Tensor::from_u32(&gpu, &[n], &b).unwrap();
        hamming_accumulate(&gpu, &at, &bt, &acc, slot);
        want[slot] += hamming_cpu(&a, &b);
    }
    let got: Vec<u64> = acc
        .to_u32(&gpu)
        .unwrap()
        .iter()
        .map(|v| *v as u64)
        .collect();
    assert_eq!(got, want);
}

/// Flip ratio, sign change from init, CAM and SDAM of bmlp's binary layers
/// after two hand-made "steps", against the same quantities on the CPU.
#[test]
fn weight_metrics_match_cpu() {
    let gpu = gpu();
    let mut model = build_model(&gpu, "bmlp", 1).unwrap();
    let mut wm = WeightMetrics::new(&gpu, model.as_ref()).unwrap();
    let store = model.store();
    let id = store.find("fc2.weight").unwrap();
    let w0 = store.get(id).to_f32(&gpu).unwrap();
    // Step 1 negates the first 1000 weights, step 2 negates the first 300 back.
    let mut w1 = w0.clone();
    w1[..1000].iter_mut().for_each(|v| *v = -*v);
    let mut w2 = w1.clone();
    w2[..300].iter_mut().for_each(|v| *v = -*v);
    for w in [&w1, &w2] {
        model.store_mut().entries[id.0].value = Tensor::from_f32(&gpu, &[1024, 1024], w).unwrap();
        wm.after_step(&gpu, model.as_ref()).unwrap();
    }
    let m = wm.end_of_epoch(&gpu, model.as_ref()).unwrap();
    let flips = |a: &[f32], b: &[f32]| {
        hamming_cpu(
            &pack_signs_cpu(a, 1, a.len()),
            &pack_signs_cpu(b, 1, b.len()),
        ) as f64
    };
    let n = w0.len() as f64;
    // Exact zeros flip nothing: sign(0) = sign(-0) = +1 on both sides.
    let want_fr = (flips(&w0, &w1) + flips(&w1, &w2)) / (2.0 * n);
    let got = |key: &str| m[key]["fc2"].as_f64().unwrap();
    assert!(
        (got("flip_ratio") - want_fr).abs() < 1e-12,
        "flip ratio {} vs {want_fr}",
        got("flip_ratio")
    );
    assert!((got("sign_change_from_init") - flips(&w0, &w2) / n).abs() < 1e-12);
    let per_channel: Vec<f64> = w2
        .chunks(1024)
        .map(|r| r.iter().map(|v| v.abs() as f64).sum::<f64>() / 1024.0)
        .collect();
    let cam = per_channel.iter().sum::<f64>() / 1024.0;
    let sdam = (per_channel
        .iter()
        .map(|c| (c - cam) * (c - cam))
        .sum::<f64>()
        / 1024.0)
        .sqrt();
    assert!(
        (got("cam") - cam).abs() < 1e-6 * cam,
        "cam {} vs {cam}",
        got("cam")
    );
    assert!(
        (got("sdam") - sdam).abs() < 1e-3 * sdam + 1e-7,
        "sdam {} vs {sdam}",
        got("sdam")
    );
    // fc1 did not move.
    assert_eq!(m["flip_ratio"]["fc1"].as_f64().unwrap(), 0.0);
}

fn count64(words: &[u32], slot: usize) -> u64 {
    words[2 * slot] as u64 | (words[2 * slot + 1] as u64) << 32
}

/// Saturated pre-sign inputs (abs(x - a_c) > 1) counted on the device
/// against the CPU, with and without RSign's threshold, on edge shapes:
/// one element, counts below and above a 64-element lane, odd channels.
#[test]
fn saturation_counts_match_cpu_on_edge_shapes() {
    let gpu = gpu();
    let mut rng = Rng::new(51);
    let acc = Tensor::zeros(&gpu, &[8], DType::U32).unwrap();
    let mut want = [0u64; 4];
    let cases: [(usize, &[usize], bool); 6] = [
        (0, &[1, 1], false),
        (1, &[3, 5, 7], true),
        (1, &[65, 1], false),
        (2, &[2, 3, 1000], true),
        (3, &[7, 33], true),
        (3, &[4, 2, 3, 3], false),
    ];
    for (slot, shape, biased) in cases {
        let n: usize = shape.iter().product();
        // Values in [-2, 2), with exact +-1 at the start: abs = 1 is not saturated.
        let mut x: Vec<f32> = rng.vec(n).iter().map(|v| 2.0 * v).collect();
        x[0] = 1.0;
        if n > 1 {
            x[1] = -1.0;
        }
        let c = shape[1];
        let s: usize = shape[2..].iter().product();
        let a: Vec<f32> = rng.vec(c).iter().map(|v| 0.5 * v).collect();
        let xt = Tensor::from_f32(&gpu, shape, &x).unwrap();
        let at = Tensor::from_f32(&gpu, &[c], &a).unwrap();
        let input = if biased {
            SignInput::Shifted(&at)
        } else {
            SignInput::Plain
        };
        saturation_accumulate(&gpu, &xt, input, &acc, slot);
        want[slot] += saturation_cpu(&x, biased.then_some(a.as_slice()), [shape[0], c, s]);
    }
    let words = acc.to_u32(&gpu).unwrap();
    let got: Vec<u64> = (0..4).map(|i| count64(&words, i)).collect();
    assert_eq!(got, want);
    // Slot 0 holds only x = 1.0, which is not saturated.
    assert!(want[0] == 0 && want[1..].iter().all(|&w| w > 0), "{want:?}");
}

/// The count for a sign fused into batch norm: abs > 1 of batch norm's
/// output, recomputed from its input and per-channel values; a lane's 64
/// values crossing planes and images, planes of one value, odd channels.
/// Values within 1e-4 of abs 1 may round either way and bound the
/// difference.
#[test]
fn saturation_counts_of_a_fused_batch_norm_match_cpu() {
    let gpu = gpu();
    let mut rng = Rng::new(53);
    let shapes: [&[usize]; 4] = [&[3, 5, 7], &[2, 3, 1000], &[65, 1], &[4, 6, 5, 5]];
    for shape in shapes {
        let acc = Tensor::zeros(&gpu, &[2], DType::U32).unwrap();
        let n: usize = shape.iter().product();
        let (c, s) = (shape[1], shape[2..].iter().product::<usize>());
        let x: Vec<f32> = rng.vec(n).iter().map(|v| 3.0 * v + 1.0).collect();
        let mean = rng.vec(c).iter().map(|v| v + 1.0).collect::<Vec<f32>>();
        let invstd = rng.vec(c).iter().map(|v| v + 1.5).collect::<Vec<f32>>();
        let (gamma, beta) = (rng.vec(c), rng.vec(c));
        let t = |v: &[f32], sh: &[usize]| Tensor::from_f32(&gpu, sh, v).unwrap();
        let per = |v: &[f32]| t(v, &[c]);
        let (mt, it, gt, bt) = (per(&mean), per(&invstd), per(&gamma), per(&beta));
        let input = SignInput::Normalised {
            mean: &mt,
            invstd: &it,
            gamma: &gt,
            beta: &bt,
        };
        saturation_accumulate(&gpu, &t(&x, shape), input, &acc, 0);
        let z = batch_norm_apply_cpu(&x, [shape[0], c, s], &mean, &invstd, &gamma, &beta);
        let want = z.iter().filter(|v| v.abs() > 1.0).count() as u64;
        let near = z.iter().filter(|v| (v.abs() - 1.0).abs() < 1e-4).count() as u64;
        let got = count64(&acc.to_u32(&gpu).unwrap(), 0);
        assert!(
            got.abs_diff(want) <= near && want > 0 && want < n as u64,
            "{shape:?}: counted {got}, the CPU {want} ({near} within 1e-4 of 1)"
        );
    }
}

/// The count is 64-bit: an add that wraps the low word carries into the high one.
#[test]
fn saturation_count_carries_into_the_high_word() {
    let gpu = gpu();
    let start = u32::MAX as u64 - 9;
    let acc = Tensor::from_u32(&gpu, &[4], &[0, 0, start as u32, 0]).unwrap();
    let x = Tensor::from_f32(&gpu, &[1, 300], &vec![3.0; 300]).unwrap();
    saturation_accumulate(&gpu, &x, SignInput::Plain, &acc, 1);
    let words = acc.to_u32(&gpu).unwrap();
    assert_eq!(count64(&words, 1), start + 300);
    assert_eq!(count64(&words, 0), 0);
}

/// The recorder in a training forward of bmlp-f32: the input of fc2's
/// activation is bn1(x fc1^T) with batch statistics, so its share of
/// abs > 1 is computed on the CPU; fc3's site is there too; an eval forward
/// records nothing; the epoch's figure resets the counters.
#[test]
fn act_saturation_of_a_training_forward_matches_cpu() {
    let gpu = gpu();
    let model = build_model(&gpu, "bmlp-f32", 4).unwrap();
    let mut rng = Rng::new(52);
    let n = 24;
    let x = rng.vec(n * 784);
    let sat = ActSaturation::new(&gpu).unwrap();
    for train in [false, true] {
        let mut tape = Tape::new(gpu.clone());
        let mut ctx = Ctx::for_model(&mut tape, model.as_ref(), train);
        ctx.saturation = Some(&sat);
        let xv = ctx
            .tape
            .leaf(Tensor::from_f32(&gpu, &[n, 784], &x).unwrap(), false);
        model.forward(&mut ctx, xv).unwrap();
        if !train {
            assert!(
                sat.counts(&gpu).unwrap().is_empty(),
                "eval passes do not count"
            );
        }
    }
    let store = model.store();
    let w1 = store
        .get(store.find("fc1.weight").unwrap())
        .to_f32(&gpu)
        .unwrap();
    let h = f32_gemm_cpu(
        &x,
        [n, 784],
        Trans::N,
        &w1,
        [1024, 784],
        Trans::T,
        None,
        None,
    );
    let (mut rm, mut rv) = (vec![0.0; 1024], vec![1.0; 1024]);
    let (y, ..) = batch_norm_train_cpu(
        &h,
        [n, 1024, 1],
        &vec![1.0; 1024],
        &vec![0.0; 1024],
        &mut rm,
        &mut rv,
        BN_EPS,
        BN_MOMENTUM,
    );
    let want = saturation_cpu(&y, None, [n, 1024, 1]);
    let counts = sat.counts(&gpu).unwrap();
    assert_eq!(
        counts.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
        ["fc2", "fc3"]
    );
    let (_, got, seen) = &counts[0];
    assert_eq!(*seen, (n * 1024) as u64);
    // Values within rounding of abs = 1 may land on either side.
    assert!(got.abs_diff(want) <= 3, "fc2: {got} vs CPU {want}");
    assert!(want > 100, "the test needs saturated inputs, got {want}");
    let m = sat.end_of_epoch(&gpu).unwrap();
    assert!((m["fc2"].as_f64().unwrap() - *got as f64 / *seen as f64).abs() < 1e-12);
    assert!(
        sat.counts(&gpu).unwrap().is_empty(),
        "reset after the epoch"
    );
}

/// bmlp and bcnn's training step with batch norm and the sign fused
/// (the default) and as two ops: the same loss, gradients, running
/// statistics and act_saturation counts.
#[test]
fn fused_norm_sign_matches_the_two_ops_in_bmlp_and_bcnn() {
    let gpu = gpu();
    for (name, shape) in [("bmlp", vec![6, 784]), ("bcnn", vec![2, 1, 28, 28])] {
        let mut rng = Rng::new(54);
        let n = shape[0];
        let x = rng.vec(shape.iter().product());
        let labels: Vec<u32> = (0..n).map(|_| rng.below(10) as u32).collect();
        let run = |fuse: bool| {
            let model = build_model(&gpu, name, 7).unwrap();
            let sat = ActSaturation::new(&gpu).unwrap();
            let mut tape = Tape::new(gpu.clone());
            let mut ctx = Ctx::for_model(&mut tape, model.as_ref(), true);
            ctx.saturation = Some(&sat);
            ctx.fuse_norm_sign = fuse;
            let xv = ctx
                .tape
                .leaf(Tensor::from_f32(&gpu, &shape, &x).unwrap(), false);
            let logits = model.forward(&mut ctx, xv).unwrap();
            let leaves = ctx.leaves();
            let lt = Tensor::from_u32(&gpu, &[n], &labels).unwrap();
            let loss = ops::softmax_cross_entropy(&mut tape, logits, &lt).unwrap();
            let loss_value = tape.value(loss).to_f32(&gpu).unwrap();
            let seed = ops::loss_seed(&tape).unwrap();
            let grads = tape.backward(loss, seed).unwrap();
            let mut values: Vec<(String, Vec<f32>)> = vec![("loss".into(), loss_value)];
            let store = model.store();
            for (id, v) in leaves {
                let pname = format!("d {}", store.entry(id).name);
                values.push((pname, grads.get(v).unwrap().to_f32(&gpu).unwrap()));
            }
            for e in store.entries.iter().filter(|e| e.name.contains("running")) {
                values.push((e.name.clone(), e.value.to_f32(&gpu).unwrap()));
            }
            values.sort_by(|a, b| a.0.cmp(&b.0));
            (values, sat.counts(&gpu).unwrap())
        };
        let (fused, fused_sat) = run(true);
        let (two, two_sat) = run(false);
        assert_eq!(fused.len(), two.len());
        for ((name_f, got), (name_t, want)) in fused.iter().zip(&two) {
            assert_eq!(name_f, name_t);
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
            common::assert_close(&format!("{name} {name_f}"), got, want, 1e-5 * scale, 1e-4);
        }
        assert_eq!(fused_sat.len(), two_sat.len(), "{name}: activation sites");
        assert!(!fused_sat.is_empty(), "{name}: saturation recorded");
        for (f, t) in fused_sat.iter().zip(&two_sat) {
            assert_eq!((&f.0, f.2), (&t.0, t.2), "{name}: site and inputs counted");
            assert!(f.1.abs_diff(t.1) <= 2, "{name} {}: {} vs {}", f.0, f.1, t.1);
        }
    }
}
