//! Packing and GEMM kernels against their CPU references on edge sizes.

mod common;

use bitprop::Tensor;
use bitprop::ops::gemm::{
    Epilogue, GemmVariant, Trans, and_gemm, and_gemm_cpu, f32_gemm, f32_gemm_cpu, words_to_u64,
    xnor_gemm, xnor_gemm_cpu, xnor_gemm_cpu_u64,
};
use bitprop::ops::pack::{
    BitLayout, pack_bits, pack_signs, pack_signs_cpu, pack_signs_strided_cpu, to_word_major_cpu,
};
use common::{Rng, assert_close, gpu};

/// (m, n, k): k not a multiple of 32, odd m and n, one row, several tiles.
const SIZES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 7, 31),
    (3, 5, 33),
    (7, 9, 64),
    (65, 130, 784),
    (130, 67, 100),
    (1, 300, 250),
    (200, 3, 1),
    // n a multiple of 4: the f32 GEMM's side-by-side columns on CPU adapters.
    (9, 36, 33),
    (66, 260, 70),
    // K past 2048: the uniform-window f32 GEMM sums K in chunks.
    (37, 70, 2500),
];

fn signs_with_zeros(rng: &mut Rng, n: usize) -> Vec<f32> {
    // Exact zeros must pack as +1, like sign(0) = +1.
    (0..n)
        .map(|i| if i % 17 == 0 { 0.0 } else { rng.uniform() })
        .collect()
}

#[test]
fn pack_signs_matches_cpu_in_both_layouts() {
    let gpu = gpu();
    let mut rng = Rng::new(1);
    for &(rows, _, k) in SIZES {
        let x = signs_with_zeros(&mut rng, rows * k);
        let t = Tensor::from_f32(&gpu, &[rows, k], &x).unwrap();
        let want = pack_signs_cpu(&x, rows, k);
        let got = pack_signs(&gpu, &t, rows, k, 1, BitLayout::RowMajor).unwrap();
        assert_eq!(
            got.words.to_u32(&gpu).unwrap(),
            want,
            "row-major pack {rows}x{k}"
        );
        let got = pack_signs(&gpu, &t, rows, k, 1, BitLayout::WordMajor).unwrap();
        assert_eq!(
            got.words.to_u32(&gpu).unwrap(),
            to_word_major_cpu(&want, rows, k.div_ceil(32)),
            "word-major pack {rows}x{k}"
        );
        // Padding bits of the last word are zero.
        if k % 32 != 0 {
            let mask = !((1u32 << (k % 32)) - 1);
            for r in 0..rows {
                assert_eq!(want[r * k.div_ceil(32) + k / 32] & mask, 0);
            }
        }
    }
}

#[test]
fn pack_signs_along_channels_matches_cpu() {
    let gpu = gpu();
    let mut rng = Rng::new(2);
    // hw % 4 == 0 packs four rows per lane (pack_signs4.wgsl).
    let shapes = [
        (1, 1, 1),
        (2, 3, 5),
        (3, 33, 7),
        (2, 64, 9),
        (2, 33, 8),
        (3, 40, 12),
        (1, 64, 4),
    ];
    for (n, c, hw) in shapes {
        let x = signs_with_zeros(&mut rng, n * c * hw);
        let t = Tensor::from_f32(&gpu, &[n, c, hw], &x).unwrap();
        let want = pack_signs_strided_cpu(&x, n, c, hw);
        let got = pack_signs(&gpu, &t, n, c, hw, BitLayout::RowMajor).unwrap();
        assert_eq!(
            got.words.to_u32(&gpu).unwrap(),
            want,
            "channel pack n={n} c={c} hw={hw}"
        );
        let got = pack_signs(&gpu, &t, n, c, hw, BitLayout::WordMajor).unwrap();
        assert_eq!(
            got.words.to_u32(&gpu).unwrap(),
            to_word_major_cpu(&want, n * hw, c.div_ceil(32)),
            "word-major channel pack n={n} c={c} hw={hw}"
        );
    }
}

#[test]
fn pack_signs_across_several_dispatch_rows() {
    let gpu = gpu();
    gpu.set_grid_limit(3);
    let mut rng = Rng::new(3);
    let (rows, k) = (37, 300);
    let x = rng.vec(rows * k);
    let t = Tensor::from_f32(&gpu, &[rows, k], &x).unwrap();
    let got = pack_signs(&gpu, &t, rows, k, 1, BitLayout::RowMajor).unwrap();
    let words = got.words.to_u32(&gpu).unwrap();
    gpu.set_grid_limit(u32::MAX);
    assert_eq!(words, pack_signs_cpu(&x, rows, k));
}

fn variants() -> Vec<GemmVariant> {
    GemmVariant::candidates()
}

#[test]
fn xnor_gemm_matches_cpu_for_every_variant() {
    let gpu = gpu();
    let mut rng = Rng::new(4);
    for &(m, n, k) in SIZES {
        let a = rng.vec(m * k);
        let b = rng.vec(n * k);
        let s = rng.vec(n);
        let aw = pack_signs_cpu(&a, m, k);
        let bw = pack_signs_cpu(&b, n, k);
        let want = xnor_gemm_cpu(&aw, &bw, m, n, k, None);
        let want_scaled = xnor_gemm_cpu(&aw, &bw, m, n, k, Some(&s));
        // The integer identity against a float dot product of the signs.
        for i in 0..m.min(3) {
            for j in 0..n.min(3) {
                let dot: f32 = (0..k)
                    .map(|t| if a[i * k + t] >= 0.0 { 1.0 } else { -1.0 } * if b[j * k + t] >= 0.0 { 1.0 } else { -1.0 })
                    .sum();
                assert_eq!(want[i * n + j], dot);
            }
        }
        let at = Tensor::from_f32(&gpu, &[m, k], &a).unwrap();
        let bt = Tensor::from_f32(&gpu, &[n, k], &b).unwrap();
        let st = Tensor::from_f32(&gpu, &[n], &s).unwrap();
        let ap = pack_signs(&gpu, &at, m, k, 1, BitLayout::RowMajor).unwrap();
        for layout in [BitLayout::RowMajor, BitLayout::WordMajor] {
            let bp = pack_signs(&gpu, &bt, n, k, 1, layout).unwrap();
            for v in variants() {
                if v.b_layout() != layout {
                    continue;
                }
                let c = xnor_gemm(&gpu, &ap, &bp, None, v).unwrap();
                assert_eq!(
                    c.to_f32(&gpu).unwrap(),
                    want,
                    "xnor {m}x{n}x{k} {} {layout:?}",
                    v.name()
                );
                let c = xnor_gemm(&gpu, &ap, &bp, Some(&st), v).unwrap();
                assert_eq!(
                    c.to_f32(&gpu).unwrap(),
                    want_scaled,
                    "scaled xnor {m}x{n}x{k} {}",
                    v.name()
                );
            }
        }
        // The benchmark's u64 CPU kernel agrees with the u32 reference.
        let c64 = xnor_gemm_cpu_u64(&words_to_u64(&aw, m, k), &words_to_u64(&bw, n, k), m, n, k);
        let c64: Vec<f32> = c64.iter().map(|&v| v as f32).collect();
        assert_eq!(c64, want, "u64 cpu xnor {m}x{n}x{k}");
    }
}

/// {0, 1} activations as a binary layer sees them: exact 0s and 1s, with
/// some 0.5s (which must pack as 1, as `1[x >= 0.5]`).
fn zero_ones(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| match (i % 11, rng.uniform() >= 0.0) {
            (0, _) => 0.5,
            (_, true) => 1.0,
            (_, false) => 0.0,
        })
        .collect()
}

#[test]
fn and_gemm_matches_cpu_for_every_variant() {
    let gpu = gpu();
    let mut rng = Rng::new(14);
    // K = 784 and the odd / one-row / several-tile sizes of SIZES.
    for &(m, n, k) in SIZES {
        let a = zero_ones(&mut rng, m * k);
        let b = signs_with_zeros(&mut rng, n * k);
        let s = rng.vec(n);
        let aw = pack_signs_cpu(&a.iter().map(|v| v - 0.5).collect::<Vec<_>>(), m, k);
        let bw = pack_signs_cpu(&b, n, k);
        let want = and_gemm_cpu(&aw, &bw, m, n, k, None);
        let want_scaled = and_gemm_cpu(&aw, &bw, m, n, k, Some(&s));
        // The AND identity against a float dot product of {0, 1} and signs.
        for i in 0..m.min(3) {
            for j in 0..n.min(3) {
                let dot: f32 = (0..k)
                    .map(|t| {
                        let x = if a[i * k + t] >= 0.5 { 1.0 } else { 0.0 };
                        x * if b[j * k + t] >= 0.0 { 1.0 } else { -1.0 }
                    })
                    .sum();
                assert_eq!(want[i * n + j], dot, "and identity {m}x{n}x{k}");
            }
        }
        let at = Tensor::from_f32(&gpu, &[m, k], &a).unwrap();
        let bt = Tensor::from_f32(&gpu, &[n, k], &b).unwrap();
        let st = Tensor::from_f32(&gpu, &[n], &s).unwrap();
        let ap = pack_bits(&gpu, &at, m, k, 1, BitLayout::RowMajor, 0.5).unwrap();
        assert_eq!(ap.words.to_u32(&gpu).unwrap(), aw, "pack at 0.5 {m}x{k}");
        for layout in [BitLayout::RowMajor, BitLayout::WordMajor] {
            let bp = pack_signs(&gpu, &bt, n, k, 1, layout).unwrap();
            for v in variants() {
                if v.b_layout() != layout {
                    continue;
                }
                let c = and_gemm(&gpu, &ap, &bp, None, v).unwrap();
                assert_eq!(
                    c.to_f32(&gpu).unwrap(),
                    want,
                    "and {m}x{n}x{k} {} {layout:?}",
                    v.name()
                );
                let c = and_gemm(&gpu, &ap, &bp, Some(&st), v).unwrap();
                assert_eq!(
                    c.to_f32(&gpu).unwrap(),
                    want_scaled,
                    "scaled and {m}x{n}x{k} {}",
                    v.name()
                );
                // The XNOR pipeline of the same variant is unaffected.
                let x = xnor_gemm(&gpu, &ap, &bp, None, v).unwrap();
                assert_eq!(
                    x.to_f32(&gpu).unwrap(),
                    xnor_gemm_cpu(&aw, &bw, m, n, k, None)
                );
            }
        }
    }
}

#[test]
fn xnor_gemm_across_several_dispatch_rows() {
    let gpu = gpu();
    let mut rng = Rng::new(5);
    let (m, n, k) = (70, 300, 95);
    let a = rng.vec(m * k);
    let b = rng.vec(n * k);
    let want = xnor_gemm_cpu(
        &pack_signs_cpu(&a, m, k),
        &pack_signs_cpu(&b, n, k),
        m,
        n,
        k,
        None,
    );
    let at = Tensor::from_f32(&gpu, &[m, k], &a).unwrap();
    let bt = Tensor::from_f32(&gpu, &[n, k], &b).unwrap();
    gpu.set_grid_limit(4);
    let ap = pack_signs(&gpu, &at, m, k, 1, BitLayout::RowMajor).unwrap();
    let bp = pack_signs(&gpu, &bt, n, k, 1, BitLayout::WordMajor).unwrap();
    let c = xnor_gemm(&gpu, &ap, &bp, None, GemmVariant::Vec4 { wg: 32, rm: 8 }).unwrap();
    let got = c.to_f32(&gpu).unwrap();
    gpu.set_grid_limit(u32::MAX);
    assert_eq!(got, want);
}

#[test]
fn f32_gemm_matches_cpu_for_every_transpose_and_variant() {
    let gpu = gpu();
    let mut rng = Rng::new(6);
    for &(m, n, k) in SIZES {
        for (ta, tb) in [
            (Trans::N, Trans::N),
            (Trans::T, Trans::N),
            (Trans::N, Trans::T),
        ] {
            let a_shape = if ta == Trans::N { [m, k] } else { [k, m] };
            let b_shape = if tb == Trans::N { [k, n] } else { [n, k] };
            let a = rng.vec(m * k);
            let b = rng.vec(n * k);
            let s = rng.vec(n);
            let bias = rng.vec(n);
            let at = Tensor::from_f32(&gpu, &a_shape, &a).unwrap();
            let bt = Tensor::from_f32(&gpu, &b_shape, &b).unwrap();
            let st = Tensor::from_f32(&gpu, &[n], &s).unwrap();
            let biast = Tensor::from_f32(&gpu, &[n], &bias).unwrap();
            let want = f32_gemm_cpu(&a, a_shape, ta, &b, b_shape, tb, Some(&s), Some(&bias));
            let plain = f32_gemm_cpu(&a, a_shape, ta, &b, b_shape, tb, None, None);
            // f32 sums of k products in [-1, 1]: error grows like sqrt(k) ulps.
            let atol = 1e-5 * (k as f32).sqrt() * 4.0;
            for v in bitprop::ops::tune::f32_candidates() {
                let ep = Epilogue {
                    scale: Some(&st),
                    bias: Some(&biast),
                    accumulate: false,
                };
                let c = f32_gemm(&gpu, &at, ta, &bt, tb, ep, None, v).unwrap();
                let what = format!("f32 gemm {m}x{n}x{k} {ta:?}{tb:?} {}", v.name());
                assert_close(&what, &c.to_f32(&gpu).unwrap(), &want, atol, 1e-5);
                // Accumulate adds the plain product onto what is there.
                let ep = Epilogue {
                    accumulate: true,
                    ..Default::default()
                };
                f32_gemm(&gpu, &at, ta, &bt, tb, ep, Some(&c), v).unwrap();
                let sum: Vec<f32> = want.iter().zip(&plain).map(|(x, y)| x + y).collect();
                assert_close(
                    &format!("{what} accumulate"),
                    &c.to_f32(&gpu).unwrap(),
                    &sum,
                    2.0 * atol,
                    1e-5,
                );
            }
        }
    }
}

/// The strided copy that lays GEMM operands out K-contiguous: row copies
/// and transposes, padded to a multiple of 4 (four outputs a lane) or not
/// (one a lane), against the same indexing on the CPU. Values are copied,
/// so the match is exact.
#[test]
fn relayout_matches_cpu_for_copies_and_transposes() {
    use bitprop::ops::gemm::relayout;
    let gpu = gpu();
    let mut rng = Rng::new(12);
    for &(rows, cols) in &[(1, 1), (1, 7), (3, 5), (7, 33), (65, 130), (130, 9)] {
        let x = rng.vec(rows * cols);
        let xt = Tensor::from_f32(&gpu, &[rows * cols], &x).unwrap();
        // (s_r, s_k): row-major [rows, cols], and its transpose stored [cols, rows].
        for (s_r, s_k) in [(cols, 1), (1, rows)] {
            for kp in [
                cols,
                cols.next_multiple_of(4),
                cols.next_multiple_of(32) + 32,
            ] {
                let got = relayout(&gpu, &xt, rows, cols, kp, s_r, s_k)
                    .unwrap()
                    .to_f32(&gpu)
                    .unwrap();
                let want: Vec<f32> = (0..rows * kp)
                    .map(|i| {
                        let (r, k) = (i / kp, i % kp);
                        if k < cols { x[r * s_r + k * s_k] } else { 0.0 }
                    })
                    .collect();
                assert_eq!(
                    got, want,
                    "relayout {rows}x{cols} strides ({s_r}, {s_k}) to width {kp}"
                );
            }
        }
    }
}

/// The K-split f32 GEMM (what GPUs run for a weight gradient's long K):
/// every nt4 variant, transposes, more slices than K steps, and accumulate;
/// a scaled product takes the unsplit path under the same request.
#[test]
fn f32_gemm_split_k_matches_cpu_and_accumulates() {
    use bitprop::ops::split_k::with_k_slices;
    let gpu = gpu();
    let mut rng = Rng::new(16);
    for &(m, n, k) in SIZES {
        for (ta, tb) in [(Trans::N, Trans::T), (Trans::T, Trans::N)] {
            let a_shape = if ta == Trans::N { [m, k] } else { [k, m] };
            let b_shape = if tb == Trans::N { [k, n] } else { [n, k] };
            let a = rng.vec(m * k);
            let b = rng.vec(n * k);
            let s = rng.vec(n);
            let start = rng.vec(m * n);
            let at = Tensor::from_f32(&gpu, &a_shape, &a).unwrap();
            let bt = Tensor::from_f32(&gpu, &b_shape, &b).unwrap();
            let st = Tensor::from_f32(&gpu, &[n], &s).unwrap();
            let plain = f32_gemm_cpu(&a, a_shape, ta, &b, b_shape, tb, None, None);
            let scaled = f32_gemm_cpu(&a, a_shape, ta, &b, b_shape, tb, Some(&s), None);
            let atol = 1e-5 * (k as f32).sqrt() * 4.0;
            for v in bitprop::ops::tune::f32_candidates() {
                if !v.name().starts_with("nt4") || v.name().starts_with("nt4u") {
                    continue;
                }
                for slices in [2, 3, 1000] {
                    let what = format!(
                        "f32 gemm {m}x{n}x{k} {ta:?}{tb:?} {} in {slices} k slices",
                        v.name()
                    );
                    with_k_slices(slices, || {
                        let c =
                            f32_gemm(&gpu, &at, ta, &bt, tb, Epilogue::default(), None, v).unwrap();
                        assert_close(&what, &c.to_f32(&gpu).unwrap(), &plain, atol, 1e-5);
                        let c = Tensor::from_f32(&gpu, &[m, n], &start).unwrap();
                        let ep = Epilogue {
                            accumulate: true,
                            ..Default::default()
                        };
                        f32_gemm(&gpu, &at, ta, &bt, tb, ep, Some(&c), v).unwrap();
                        let sum: Vec<f32> = plain.iter().zip(&start).map(|(x, y)| x + y).collect();
                        assert_close(
                            &format!("{what} accumulate"),
                            &c.to_f32(&gpu).unwrap(),
                            &sum,
                            atol,
                            1e-5,
                        );
                        let ep = Epilogue {
                            scale: Some(&st),
                            ..Default::default()
                        };
                        let c = f32_gemm(&gpu, &at, ta, &bt, tb, ep, None, v).unwrap();
                        assert_close(
                            &format!("{what} scaled"),
                            &c.to_f32(&gpu).unwrap(),
                            &scaled,
                            atol,
                            1e-5,
                        );
                    });
                }
            }
        }
    }
}

/// `bitprop bench gemm --json` prints one object with the keys other tools
/// read, on an odd small shape, with its bound analysis.
#[test]
fn bench_gemm_json_has_its_keys() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bitprop"))
        .args(["bench", "gemm", "--m", "33", "--n", "65", "--k", "100"])
        .args(["--reps", "1", "--json"])
        .output()
        .expect("bitprop runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    for key in [
        "adapter",
        "timing",
        "m",
        "n",
        "k",
        "xnor_ms",
        "f32_ms",
        "cpu_xnor_ms",
        "xnor_ops_per_s",
        "peak_ops_per_s",
        "f32_flops_per_s",
        "fma_peak_flops_per_s",
        "xnor_vs_f32",
        "sign_gemm_ms",
        "sign_vs_f32",
        "xnor_pct_of_peak",
        "f32_pct_of_peak",
        "device_vs_cpu",
        "roundtrip_ms",
    ] {
        assert!(v.get(key).is_some(), "missing key {key}: {v}");
    }
    assert_eq!(v["m"], 33);
    assert!(v["xnor_ms"].as_f64().unwrap() > 0.0);
    let timing = v["timing"].as_str().unwrap();
    assert!(timing == "timestamp" || timing == "wall", "{timing}");
    assert_eq!(v["xnor_bound"].as_array().unwrap().len(), 7, "{v}");
}

/// With and without a k scale, a transposed, and split in K (what GPUs run
/// for a weight gradient's long K: each slice count, more slices than words
/// included, written or added to what c holds).
#[test]
fn sign_gemm_matches_cpu_with_and_without_scale_transposed_and_split_in_k() {
    use bitprop::ops::sign_gemm::{SignScale, sign_gemm, sign_gemm_cpu, sign_gemm_into};
    use bitprop::ops::split_k::with_k_slices;
    let gpu = gpu();
    let mut rng = Rng::new(9);
    for &(m, n, k) in SIZES {
        let a = rng.vec(m * k);
        let s = signs_with_zeros(&mut rng, n * k);
        let ks: Vec<f32> = rng.vec(k).iter().map(|v| v.abs() + 0.1).collect();
        let st = Tensor::from_f32(&gpu, &[n, k], &s).unwrap();
        let bits = pack_signs(&gpu, &st, n, k, 1, BitLayout::RowMajor).unwrap();
        let at = Tensor::from_f32(&gpu, &[m, k], &a).unwrap();
        let a_t: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
        let att = Tensor::from_f32(&gpu, &[k, m], &a_t).unwrap();
        let kst = Tensor::from_f32(&gpu, &[k], &ks).unwrap();
        let atol = 1e-5 * (k as f32).sqrt() * 4.0;
        for scale in [false, true] {
            let want = sign_gemm_cpu(&a, &s, scale.then_some(&ks[..]), [m, n, k]);
            let kscale = scale.then_some(&kst);
            let got = sign_gemm(&gpu, &at, [m, k, 1], &bits, kscale).unwrap();
            let what = format!("sign gemm {m}x{n}x{k} scale {scale}");
            assert_close(&what, &got.to_f32(&gpu).unwrap(), &want, atol, 1e-5);
            let got = sign_gemm(&gpu, &att, [m, 1, m], &bits, kscale).unwrap();
            assert_close(
                &format!("{what} transposed a"),
                &got.to_f32(&gpu).unwrap(),
                &want,
                atol,
                1e-5,
            );
            let start = rng.vec(m * n);
            for slices in [2, 3, 7, 1000] {
                for accumulate in [false, true] {
                    let c = Tensor::from_f32(&gpu, &[m, n], &start).unwrap();
                    let scale = kscale.map(SignScale::K);
                    with_k_slices(slices, || {
                        sign_gemm_into(&gpu, &at, [m, k, 1], &bits, scale, &c, accumulate)
                    })
                    .unwrap();
                    let want: Vec<f32> = if accumulate {
                        want.iter().zip(&start).map(|(w, s)| w + s).collect()
                    } else {
                        want.clone()
                    };
                    let what = format!("{what} in {slices} k slices, accumulate {accumulate}");
                    assert_close(&what, &c.to_f32(&gpu).unwrap(), &want, atol, 1e-5);
                }
            }
        }
    }
}

/// The forward of a binary layer on a real input: x (alpha sign(W))^T with
/// alpha scaling the output columns, on the sign GEMM.
#[test]
fn sign_gemm_with_column_scale_matches_cpu() {
    use bitprop::ops::sign_gemm::{sign_gemm_cpu, sign_gemm_scaled_columns};
    let gpu = gpu();
    let mut rng = Rng::new(91);
    // n = 36 and 260: columns side by side on CPU adapters.
    for (m, n, k) in [
        (1, 1, 1),
        (3, 5, 33),
        (8, 257, 100),
        (17, 9, 784),
        (9, 36, 33),
        (11, 260, 70),
    ] {
        let a = rng.vec(m * k);
        let w = rng.vec(n * k);
        let alpha: Vec<f32> = (0..n).map(|j| 0.25 + j as f32 * 0.125).collect();
        let at = Tensor::from_f32(&gpu, &[m, k], &a).unwrap();
        let wt = Tensor::from_f32(&gpu, &[n, k], &w).unwrap();
        let alpha_t = Tensor::from_f32(&gpu, &[n], &alpha).unwrap();
        let bits = pack_signs(&gpu, &wt, n, k, 1, BitLayout::RowMajor).unwrap();
        let got = sign_gemm_scaled_columns(&gpu, &at, [m, k, 1], &bits, &alpha_t).unwrap();
        let want: Vec<f32> = sign_gemm_cpu(&a, &w, None, [m, n, k])
            .iter()
            .enumerate()
            .map(|(i, v)| v * alpha[i % n])
            .collect();
        assert_close(
            &format!("sign_gemm_scaled_columns {m}x{n}x{k}"),
            &got.to_f32(&gpu).unwrap(),
            &want,
            1e-4 * (k as f32).sqrt(),
            1e-5,
        );
    }
}
