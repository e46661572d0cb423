//! Cross-entropy and distillation losses against their CPU references.

mod common;

use bitprop::Tensor;
use bitprop::ops::loss::*;
use common::{Rng, assert_close, gpu};

/// (rows, classes): one of each, odd, more rows than a workgroup, wide rows.
const SIZES: &[(usize, usize)] = &[(1, 1), (1, 10), (3, 7), (65, 10), (130, 100), (2, 1000)];

/// Logits in [-4, 4) plus one row with +-80 (its exp(-160) underflows: the
/// row max must be subtracted for anything to stay finite).
fn logits(rng: &mut Rng, n: usize, c: usize) -> Vec<f32> {
    let mut z: Vec<f32> = (0..n * c).map(|_| 4.0 * rng.uniform()).collect();
    if n > 1 && c > 1 {
        // The max is not the row's first element, so an unstable softmax
        // that subtracts z[0] overflows.
        z[c] = -80.0;
        z[2 * c - 1] = 80.0;
    }
    z
}

// Vulkan allows exp an error of 3 + 2|x| ulp (x - max >= -160 here: the
// big row's small terms are 0 either way, the others have |x| <= 8, about
// 2e-6 relative) and log 2^-21 absolute near 1 or 3 ulp elsewhere; the sums
// of C terms add a few ulps. Probabilities: 2e-5 relative; losses (|loss| up
// to 160): 1e-5 relative plus 1e-5.
const PROB_RTOL: f32 = 2e-5;
const LOSS_TOL: (f32, f32) = (1e-5, 1e-5);

fn labels(rng: &mut Rng, n: usize, c: usize) -> Vec<u32> {
    let mut l: Vec<u32> = (0..n).map(|_| rng.below(c) as u32).collect();
    if n > 1 && c > 1 {
        l[1] = 0; // the -80 logit of the big row: loss 160.
    }
    l
}

fn check_cross_entropy(
    gpu: &bitprop::Gpu,
    z: &[f32],
    l: &[u32],
    n: usize,
    c: usize,
) -> Box<dyn FnOnce()> {
    let zt = Tensor::from_f32(gpu, &[n, c], z).unwrap();
    let lt = Tensor::from_u32(gpu, &[n], l).unwrap();
    let (loss, probs) = softmax_cross_entropy(gpu, &zt, &lt).unwrap();
    let dz = softmax_cross_entropy_backward(gpu, &probs, &lt).unwrap();
    assert_eq!(
        (loss.shape(), probs.shape(), dz.shape()),
        ([1].as_slice(), [n, c].as_slice(), [n, c].as_slice())
    );
    let (loss, probs, dz) = (
        loss.to_f32(gpu).unwrap(),
        probs.to_f32(gpu).unwrap(),
        dz.to_f32(gpu).unwrap(),
    );
    let (z, l) = (z.to_vec(), l.to_vec());
    Box::new(move || {
        let (want_loss, want_probs) = softmax_cross_entropy_cpu(&z, &l, c);
        assert_close(
            &format!("ce loss {n}x{c}"),
            &loss,
            &[want_loss],
            LOSS_TOL.0,
            LOSS_TOL.1,
        );
        assert_close(
            &format!("ce probs {n}x{c}"),
            &probs,
            &want_probs,
            1e-7,
            PROB_RTOL,
        );
        // From the device's own probs the backward is one subtraction and one
        // multiply by 1/N (the CPU divides): an ulp.
        let want_dz = softmax_cross_entropy_backward_cpu(&probs, &l, c);
        assert_close(&format!("ce backward {n}x{c}"), &dz, &want_dz, 1e-8, 1e-6);
    })
}

#[test]
fn cross_entropy_matches_cpu() {
    let gpu = gpu();
    let mut rng = Rng::new(31);
    for &(n, c) in SIZES {
        let z = logits(&mut rng, n, c);
        let l = labels(&mut rng, n, c);
        check_cross_entropy(&gpu, &z, &l, n, c)();
    }
}

#[test]
fn out_of_range_labels_flag_the_loss_and_read_nothing_outside() {
    let gpu = gpu();
    let (n, c) = (3, 4);
    let z: Vec<f32> = (0..n * c).map(|i| i as f32 * 0.1).collect();
    let l = [1, 4, u32::MAX];
    let zt = Tensor::from_f32(&gpu, &[n, c], &z).unwrap();
    let lt = Tensor::from_u32(&gpu, &[n], &l).unwrap();
    let (loss, probs) = softmax_cross_entropy(&gpu, &zt, &lt).unwrap();
    assert!(loss.to_f32(&gpu).unwrap()[0].is_nan());
    let dz = softmax_cross_entropy_backward(&gpu, &probs, &lt)
        .unwrap()
        .to_f32(&gpu)
        .unwrap();
    let probs = probs.to_f32(&gpu).unwrap();
    // Rows with bad labels get probs / N: no one-hot term anywhere.
    assert_close(
        "bad-label backward",
        &dz,
        &softmax_cross_entropy_backward_cpu(&probs, &l, c),
        1e-8,
        1e-6,
    );
    for (i, &d) in dz.iter().enumerate().skip(c) {
        assert!(d > 0.0, "element {i}: {d}");
    }
}

fn check_kd(
    gpu: &bitprop::Gpu,
    s: &[f32],
    t: &[f32],
    n: usize,
    c: usize,
    temp: f32,
) -> Box<dyn FnOnce()> {
    let st = Tensor::from_f32(gpu, &[n, c], s).unwrap();
    let tt = Tensor::from_f32(gpu, &[n, c], t).unwrap();
    let loss = kd_loss(gpu, &st, &tt, temp).unwrap();
    let ds = kd_loss_backward(gpu, &st, &tt, temp).unwrap();
    assert_eq!(
        (loss.shape(), ds.shape()),
        ([1].as_slice(), [n, c].as_slice())
    );
    let (loss, ds) = (loss.to_f32(gpu).unwrap(), ds.to_f32(gpu).unwrap());
    let (s, t) = (s.to_vec(), t.to_vec());
    Box::new(move || {
        let what = format!("kd {n}x{c} T={temp}");
        assert_close(
            &format!("{what} loss"),
            &loss,
            &[kd_loss_cpu(&s, &t, c, temp)],
            LOSS_TOL.0,
            LOSS_TOL.1,
        );
        // Differences of two probabilities, each within PROB_RTOL, over N*T:
        // bound the error by the larger probability / (N*T).
        let want = kd_loss_backward_cpu(&s, &t, c, temp);
        assert_close(
            &format!("{what} backward"),
            &ds,
            &want,
            PROB_RTOL / (n as f32 * temp),
            PROB_RTOL,
        );
    })
}

#[test]
fn kd_loss_matches_cpu() {
    let gpu = gpu();
    let mut rng = Rng::new(32);
    for &(n, c) in SIZES {
        let s = logits(&mut rng, n, c);
        let t = logits(&mut rng, n, c);
        for temp in [1.0, 2.5] {
            check_kd(&gpu, &s, &t, n, c, temp)();
        }
    }
}

#[test]
fn losses_across_several_dispatch_rows() {
    let gpu = gpu();
    let mut rng = Rng::new(33);
    // 300 rows: 5 workgroups of rows, 47 of elements for the backward.
    let (n, c) = (300, 10);
    let z = logits(&mut rng, n, c);
    let t = logits(&mut rng, n, c);
    let l = labels(&mut rng, n, c);
    gpu.set_grid_limit(3);
    let ce = check_cross_entropy(&gpu, &z, &l, n, c);
    let kd = check_kd(&gpu, &z, &t, n, c, 2.0);
    gpu.set_grid_limit(u32::MAX);
    ce();
    kd();
}
