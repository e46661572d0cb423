//! Training-metric counters against CPU computations.

mod common;

use bitprop::DType;
use bitprop::Tensor;
use bitprop::nn::build_model;
use bitprop::ops::metrics::{hamming_accumulate, hamming_cpu};
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
