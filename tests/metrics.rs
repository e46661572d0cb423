//! Training-metric counters against CPU computations.

mod common;

use bitprop::DType;
use bitprop::Tensor;
use bitprop::autograd::Tape;
use bitprop::nn::Ctx;
use bitprop::nn::build_model;
use bitprop::nn::saturation::ActSaturation;
use bitprop::ops::gemm::{Trans, f32_gemm_cpu};
use bitprop::ops::metrics::{
    hamming_accumulate, hamming_cpu, saturation_accumulate, saturation_cpu,
};
use bitprop::ops::norm::{BN_EPS, BN_MOMENTUM, batch_norm_train_cpu};
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
        saturation_accumulate(&gpu, &xt, biased.then_some(&at), &acc, slot);
        want[slot] += saturation_cpu(&x, biased.then_some(a.as_slice()), [shape[0], c, s]);
    }
    let words = acc.to_u32(&gpu).unwrap();
    let got: Vec<u64> = (0..4).map(|i| count64(&words, i)).collect();
    assert_eq!(got, want);
    // Slot 0 holds only x = 1.0, which is not saturated.
    assert!(want[0] == 0 && want[1..].iter().all(|&w| w > 0), "{want:?}");
}

/// The count is 64-bit: an add that wraps the low word carries into the high one.
#[test]
fn saturation_count_carries_into_the_high_word() {
    let gpu = gpu();
    let start = u32::MAX as u64 - 9;
    let acc = Tensor::from_u32(&gpu, &[4], &[0, 0, start as u32, 0]).unwrap();
    let x = Tensor::from_f32(&gpu, &[1, 300], &vec![3.0; 300]).unwrap();
    saturation_accumulate(&gpu, &x, None, &acc, 1);
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
