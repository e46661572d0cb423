//! Reductions, argmax and accuracy counts against their CPU references.

mod common;

use bitprop::Tensor;
use bitprop::ops::reduce::{
    CHUNK, LANES_MAX_COUNT, LANES_MIN_CHANNELS, Reduction, accuracy_count, accuracy_count_cpu,
    argmax_rows, argmax_rows_cpu, reduce_all, reduce_all_cpu, reduce_channels, reduce_channels_cpu,
    reduce_rows, reduce_rows_cpu,
};
use common::{Rng, assert_close, gpu};

const OPS: [Reduction; 4] = [
    Reduction::Sum,
    Reduction::Mean,
    Reduction::MeanAbs,
    Reduction::Std,
];

/// f32 accumulation of m values in [-1, 1]: each lane adds about m / 256
/// values sequentially, then 8 tree levels, so the error is a few ulps of the
/// running sum, bounded by 1e-6 * m in absolute terms for a sum; means and
/// std divide that by m. 4x margin.
fn tol(op: Reduction, m: usize) -> f32 {
    match op {
        Reduction::Sum => 4e-6 * m as f32 + 1e-6,
        _ => 4e-6,
    }
}

/// Values in [-1, 1) with an offset, so the std pass has a mean to remove.
fn data(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.uniform() + 0.25).collect()
}

#[test]
fn reduce_rows_matches_cpu() {
    let gpu = gpu();
    let mut rng = Rng::new(11);
    // One element; one row; odd; rows longer than a workgroup; split in parts.
    // Many short rows take the one-lane-per-row kernel (odd counts, the
    // longest row it takes, more rows than one workgroup of lanes), a vec4
    // per load where rows are whole vec4s.
    for &(r, k) in &[
        (1, 1),
        (1, 7),
        (5, 1),
        (3, 257),
        (17, 1000),
        (2, CHUNK + 3),
        (LANES_MIN_CHANNELS, 1),
        (131, 33),
        (300, LANES_MAX_COUNT),
        (1024, 1023),
        // rows of whole vec4s: a vec4 per load
        (130, 8),
        (1024, 784),
    ] {
        let x = data(&mut rng, r * k);
        let t = Tensor::from_f32(&gpu, &[r, k], &x).unwrap();
        for op in OPS {
            let got = reduce_rows(&gpu, &t, op).unwrap().to_f32(&gpu).unwrap();
            assert_close(
                &format!("rows {op:?} {r}x{k}"),
                &got,
                &reduce_rows_cpu(&x, r, k, op),
                tol(op, k),
                1e-5,
            );
        }
    }
    // A 4-D weight reduces per output filter.
    let x = data(&mut rng, 3 * 2 * 3 * 3);
    let t = Tensor::from_f32(&gpu, &[3, 2, 3, 3], &x).unwrap();
    let got = reduce_rows(&gpu, &t, Reduction::MeanAbs)
        .unwrap()
        .to_f32(&gpu)
        .unwrap();
    assert_close(
        "rows of 4-D",
        &got,
        &reduce_rows_cpu(&x, 3, 18, Reduction::MeanAbs),
        4e-6,
        1e-5,
    );
}

#[test]
fn reduce_channels_matches_cpu() {
    let gpu = gpu();
    let mut rng = Rng::new(12);
    for &(n, c, s) in &[
        (1, 1, 1),
        (1, 3, 1),
        (7, 5, 1),
        (2, 3, 9),
        (4, 1, 300),
        (3, 4, 6000),
        (3, 130, 7),
        (2, 200, 1),
    ] {
        let x = data(&mut rng, n * c * s);
        let shape: Vec<usize> = if s == 1 {
            vec![n, c]
        } else {
            vec![n, c, 3, s / 3]
        };
        let shape = if s % 3 == 0 { shape } else { vec![n, c, s] };
        let t = Tensor::from_f32(&gpu, &shape, &x).unwrap();
        for op in OPS {
            let got = reduce_channels(&gpu, &t, op).unwrap().to_f32(&gpu).unwrap();
            let want = reduce_channels_cpu(&x, n, c, s, op);
            assert_close(
                &format!("channels {op:?} {n}x{c}x{s}"),
                &got,
                &want,
                tol(op, n * s),
                1e-5,
            );
        }
    }
}

#[test]
fn reduce_all_handles_a_million_elements() {
    let gpu = gpu();
    let mut rng = Rng::new(13);
    for &n in &[1usize, 2, 255, 257, 1 << 20] {
        let x = data(&mut rng, n);
        let t = Tensor::from_f32(&gpu, &[n], &x).unwrap();
        for op in OPS {
            let got = reduce_all(&gpu, &t, op).unwrap().to_f32(&gpu).unwrap();
            assert_close(
                &format!("all {op:?} n={n}"),
                &got,
                &[reduce_all_cpu(&x, op)],
                tol(op, n),
                1e-5,
            );
        }
    }
    // The sum must see every element: a single large value anywhere moves it.
    let mut x = vec![0f32; 1 << 20];
    x[(1 << 20) - 1] = 1000.0;
    x[CHUNK] = -1.0;
    let t = Tensor::from_f32(&gpu, &[x.len()], &x).unwrap();
    let got = reduce_all(&gpu, &t, Reduction::Sum)
        .unwrap()
        .to_f32(&gpu)
        .unwrap();
    assert_eq!(got, [999.0]);
}

#[test]
fn reductions_across_several_dispatch_rows() {
    let gpu = gpu();
    let mut rng = Rng::new(14);
    let (n, c, s) = (3, 11, 5);
    let x = data(&mut rng, n * c * s);
    let big = data(&mut rng, 5 * CHUNK + 1);
    let t = Tensor::from_f32(&gpu, &[n, c, s], &x).unwrap();
    let tb = Tensor::from_f32(&gpu, &[big.len()], &big).unwrap();
    gpu.set_grid_limit(3);
    let ch = reduce_channels(&gpu, &t, Reduction::Std).unwrap();
    let rows = reduce_rows(&gpu, &t, Reduction::Mean).unwrap();
    let all = reduce_all(&gpu, &tb, Reduction::Sum).unwrap();
    let am = argmax_rows(&gpu, &t.reshape(&[n * c, s])).unwrap();
    // Many short rows: the one-lane-per-row kernel over a 2-D grid.
    let (lr, lk) = (LANES_MIN_CHANNELS * 5 + 3, 9);
    let lx = data(&mut rng, lr * lk);
    let lt = Tensor::from_f32(&gpu, &[lr, lk], &lx).unwrap();
    let lanes = reduce_rows(&gpu, &lt, Reduction::Std).unwrap();
    let (ch, rows, all, am, lanes) = (
        ch.to_f32(&gpu).unwrap(),
        rows.to_f32(&gpu).unwrap(),
        all.to_f32(&gpu).unwrap(),
        am.to_u32(&gpu).unwrap(),
        lanes.to_f32(&gpu).unwrap(),
    );
    gpu.set_grid_limit(u32::MAX);
    assert_close(
        "many short rows std",
        &lanes,
        &reduce_rows_cpu(&lx, lr, lk, Reduction::Std),
        4e-6,
        1e-5,
    );
    assert_close(
        "channels std",
        &ch,
        &reduce_channels_cpu(&x, n, c, s, Reduction::Std),
        4e-6,
        1e-5,
    );
    assert_close(
        "rows mean",
        &rows,
        &reduce_rows_cpu(&x, n, c * s, Reduction::Mean),
        4e-6,
        1e-5,
    );
    assert_close(
        "all sum",
        &all,
        &[reduce_all_cpu(&big, Reduction::Sum)],
        tol(Reduction::Sum, big.len()),
        1e-5,
    );
    assert_eq!(am, argmax_rows_cpu(&x, n * c, s));
}

#[test]
fn argmax_and_accuracy_match_cpu() {
    let gpu = gpu();
    let mut rng = Rng::new(15);
    for &(r, c) in &[(1, 1), (1, 10), (7, 3), (130, 10), (600, 7), (3, 1000)] {
        // Coarse values so ties are common: the first maximum must win.
        let x: Vec<f32> = (0..r * c).map(|_| (rng.uniform() * 3.0).round()).collect();
        let labels: Vec<u32> = (0..r).map(|_| rng.below(c + 1) as u32).collect();
        let t = Tensor::from_f32(&gpu, &[r, c], &x).unwrap();
        let lt = Tensor::from_u32(&gpu, &[r], &labels).unwrap();
        let want = argmax_rows_cpu(&x, r, c);
        assert_eq!(
            argmax_rows(&gpu, &t).unwrap().to_u32(&gpu).unwrap(),
            want,
            "argmax {r}x{c}"
        );
        let count = accuracy_count(&gpu, &t, &lt).unwrap().to_u32(&gpu).unwrap();
        assert_eq!(
            count,
            [accuracy_count_cpu(&x, &labels, r, c)],
            "accuracy {r}x{c}"
        );
    }
    // Labels equal to the argmax count every row; out-of-range labels none.
    let x = vec![0.0, 2.0, 2.0, 5.0, 1.0, 1.0];
    let t = Tensor::from_f32(&gpu, &[2, 3], &x).unwrap();
    assert_eq!(argmax_rows(&gpu, &t).unwrap().to_u32(&gpu).unwrap(), [1, 0]);
    let lt = Tensor::from_u32(&gpu, &[2], &[1, 0]).unwrap();
    assert_eq!(
        accuracy_count(&gpu, &t, &lt).unwrap().to_u32(&gpu).unwrap(),
        [2]
    );
    let lt = Tensor::from_u32(&gpu, &[2], &[3, u32::MAX]).unwrap();
    assert_eq!(
        accuracy_count(&gpu, &t, &lt).unwrap().to_u32(&gpu).unwrap(),
        [0]
    );
}
