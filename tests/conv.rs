//! Convolution kernels against their CPU references on edge geometries.

mod common;

use bitprop::Tensor;
use bitprop::ops::conv::{
    Conv2dGeom, ConvBlock, PadMode, binary_conv2d, binary_conv2d_01, binary_conv2d_01_cpu,
    binary_conv2d_cpu, binary_conv2d_with, conv2d, conv2d_backward_data, conv2d_backward_data_cpu,
    conv2d_backward_data_with, conv2d_backward_weights, conv2d_backward_weights_cpu, conv2d_cpu,
    conv2d_with,
};
use bitprop::ops::pack::{BitLayout, pack_bits, pack_signs};
use common::{Rng, assert_close, gpu};

#[allow(clippy::too_many_arguments)]
fn geom(
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    k: usize,
    stride: usize,
    pad: usize,
) -> Conv2dGeom {
    Conv2dGeom {
        n,
        c,
        h,
        w,
        o,
        kh: k,
        kw: k,
        stride,
        pad,
    }
}

/// C = 1, 3, 33 (not multiples of 32) and 64, odd O, batch 1 and > 1, odd
/// H x W, 3x3 pad 1 stride 1 and 2, 1x1 pad 0, an unpadded 3x3, a
/// non-square kernel; the last has more pixels and channels than one block.
fn geoms() -> Vec<Conv2dGeom> {
    vec![
        geom(1, 1, 7, 5, 3, 3, 1, 1),
        geom(2, 3, 7, 5, 5, 3, 2, 1),
        geom(2, 33, 6, 7, 7, 3, 1, 1),
        geom(1, 64, 5, 5, 9, 1, 1, 0),
        geom(3, 64, 8, 7, 17, 3, 2, 1),
        geom(2, 33, 7, 5, 1, 1, 2, 0),
        geom(1, 3, 9, 9, 4, 3, 1, 0),
        Conv2dGeom {
            kh: 2,
            kw: 3,
            ..geom(2, 5, 6, 5, 3, 1, 1, 1)
        },
        geom(2, 96, 13, 11, 19, 3, 1, 1),
        // 2700 output pixels: the weight gradient's K past 2048.
        geom(3, 2, 30, 30, 5, 3, 1, 1),
    ]
}

/// Uniform values with some exact zeros, which must act as +1 in the binary path.
fn values(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| if i % 13 == 0 { 0.0 } else { rng.uniform() })
        .collect()
}

/// Binary weights `alpha_o * sign(W)` of weights `w` [O, ...].
fn binarized(w: &[f32], alpha: &[f32]) -> Vec<f32> {
    let per_o = w.len() / alpha.len();
    w.iter()
        .enumerate()
        .map(|(i, v)| {
            if *v >= 0.0 {
                alpha[i / per_o]
            } else {
                -alpha[i / per_o]
            }
        })
        .collect()
}

fn numel(shape: [usize; 4]) -> usize {
    shape.iter().product()
}

#[test]
fn binary_conv2d_matches_cpu_for_both_paddings() {
    let gpu = gpu();
    let mut rng = Rng::new(11);
    let blocks = [
        ConvBlock::DEFAULT,
        ConvBlock {
            wg: 32,
            rc: 3,
            rp: 1,
        },
        ConvBlock {
            wg: 64,
            rc: 16,
            rp: 4,
        },
    ];
    for g in geoms() {
        let x = values(&mut rng, numel(g.input_shape()));
        let w = values(&mut rng, numel(g.weight_shape()));
        let s = rng.vec(g.o);
        let xt = Tensor::from_f32(&gpu, &g.input_shape(), &x).unwrap();
        let wt = Tensor::from_f32(&gpu, &g.weight_shape(), &w).unwrap();
        let st = Tensor::from_f32(&gpu, &[g.o], &s).unwrap();
        let xp = pack_signs(&gpu, &xt, g.n, g.c, g.h * g.w, BitLayout::RowMajor).unwrap();
        let wp = pack_signs(&gpu, &wt, g.o, g.c, g.taps(), BitLayout::RowMajor).unwrap();
        let xp_wm = pack_signs(&gpu, &xt, g.n, g.c, g.h * g.w, BitLayout::WordMajor).unwrap();
        let wp_wm = pack_signs(&gpu, &wt, g.o, g.c, g.taps(), BitLayout::WordMajor).unwrap();
        for padding in [PadMode::Zero, PadMode::One] {
            let want = binary_conv2d_cpu(&x, &w, g, None, padding);
            // Integer results times one f32 multiply on both sides: exact.
            let want_scaled = binary_conv2d_cpu(&x, &w, g, Some(&s), padding);
            let y = binary_conv2d(&gpu, &xp, &wp, g, None, padding).unwrap();
            assert_eq!(y.shape(), g.output_shape());
            assert_eq!(
                y.to_f32(&gpu).unwrap(),
                want,
                "binary conv {g:?} {padding:?}"
            );
            for block in blocks {
                let y = binary_conv2d_with(&gpu, &xp, &wp, g, Some(&st), padding, block).unwrap();
                assert_eq!(
                    y.to_f32(&gpu).unwrap(),
                    want_scaled,
                    "scaled binary conv {g:?} {padding:?} {block:?}"
                );
            }
            // The convolution as an XNOR GEMM (zero padding, row-major
            // operands), in one chunk and in one image per chunk.
            if padding == PadMode::Zero {
                use bitprop::ops::conv_gemm::binary_conv2d_gemm;
                in_one_and_several_chunks(|chunk_bytes| {
                    for (scale, want) in [(None, &want), (Some(&st), &want_scaled)] {
                        let y = binary_conv2d_gemm(&gpu, &xp, &wp, g, scale).unwrap();
                        assert_eq!(
                            &y.to_f32(&gpu).unwrap(),
                            want,
                            "binary conv as XNOR GEMM {g:?} scaled {} chunk budget {chunk_bytes}",
                            scale.is_some()
                        );
                    }
                });
            }
            // Word-major operands read the same words through other strides.
            for (xq, wq) in [(&xp_wm, &wp), (&xp, &wp_wm), (&xp_wm, &wp_wm)] {
                let y = binary_conv2d(&gpu, xq, wq, g, None, padding).unwrap();
                assert_eq!(
                    y.to_f32(&gpu).unwrap(),
                    want,
                    "binary conv {g:?} {padding:?} x {:?} w {:?}",
                    xq.layout,
                    wq.layout
                );
            }
        }
        // Zero and one padding differ wherever a padded tap is used, so
        // comparing both can catch a kernel that ignores the mode.
        if g.pad > 0 {
            assert_ne!(
                binary_conv2d_cpu(&x, &w, g, None, PadMode::Zero),
                binary_conv2d_cpu(&x, &w, g, None, PadMode::One)
            );
        }
    }
}

#[test]
fn binary_conv2d_01_matches_cpu() {
    let gpu = gpu();
    let mut rng = Rng::new(12);
    for g in geoms() {
        // {0, 1} inputs (0.5 packs as 1), sign weights with exact zeros (+1).
        let x: Vec<f32> = (0..numel(g.input_shape()))
            .map(|i| match (i % 7, rng.uniform() >= 0.0) {
                (0, _) => 0.5,
                (_, b) => b as u8 as f32,
            })
            .collect();
        let w = values(&mut rng, numel(g.weight_shape()));
        let s = rng.vec(g.o);
        let xt = Tensor::from_f32(&gpu, &g.input_shape(), &x).unwrap();
        let wt = Tensor::from_f32(&gpu, &g.weight_shape(), &w).unwrap();
        let st = Tensor::from_f32(&gpu, &[g.o], &s).unwrap();
        let wp = pack_signs(&gpu, &wt, g.o, g.c, g.taps(), BitLayout::RowMajor).unwrap();
        let want = binary_conv2d_01_cpu(&x, &w, g, None);
        let want_scaled = binary_conv2d_01_cpu(&x, &w, g, Some(&s));
        for layout in [BitLayout::RowMajor, BitLayout::WordMajor] {
            let xp = pack_bits(&gpu, &xt, g.n, g.c, g.h * g.w, layout, 0.5).unwrap();
            let y = binary_conv2d_01(&gpu, &xp, &wp, g, None).unwrap();
            assert_eq!(y.to_f32(&gpu).unwrap(), want, "01 conv {g:?} {layout:?}");
            let y = binary_conv2d_01(&gpu, &xp, &wp, g, Some(&st)).unwrap();
            assert_eq!(y.to_f32(&gpu).unwrap(), want_scaled, "scaled 01 conv {g:?}");
        }
    }
}

/// f32 sums of `terms` products of values in [-1, 1]: the error grows like
/// sqrt(terms) ulps of the partial sums; the gemm tests use the same bound.
fn atol(terms: usize) -> f32 {
    4e-5 * (terms as f32).sqrt()
}

#[test]
fn conv2d_forward_matches_cpu() {
    let gpu = gpu();
    let mut rng = Rng::new(12);
    for g in geoms() {
        let x = rng.vec(numel(g.input_shape()));
        let w = rng.vec(numel(g.weight_shape()));
        let b = rng.vec(g.o);
        let xt = Tensor::from_f32(&gpu, &g.input_shape(), &x).unwrap();
        let wt = Tensor::from_f32(&gpu, &g.weight_shape(), &w).unwrap();
        let bt = Tensor::from_f32(&gpu, &[g.o], &b).unwrap();
        let tol = atol(g.c * g.taps());
        let y = conv2d(&gpu, &xt, &wt, g, None).unwrap();
        assert_eq!(y.shape(), g.output_shape());
        assert_close(
            &format!("conv2d {g:?}"),
            &y.to_f32(&gpu).unwrap(),
            &conv2d_cpu(&x, &w, g, None),
            tol,
            1e-5,
        );
        let want = conv2d_cpu(&x, &w, g, Some(&b));
        for block in [
            ConvBlock::DEFAULT,
            ConvBlock {
                wg: 32,
                rc: 5,
                rp: 3,
            },
        ] {
            let y = conv2d_with(&gpu, &xt, &wt, g, Some(&bt), block).unwrap();
            assert_close(
                &format!("conv2d + bias {g:?} {block:?}"),
                &y.to_f32(&gpu).unwrap(),
                &want,
                tol,
                1e-5,
            );
        }
    }
}

#[test]
fn conv2d_backward_data_matches_cpu() {
    let gpu = gpu();
    let mut rng = Rng::new(13);
    for g in geoms() {
        let gy = rng.vec(numel(g.output_shape()));
        let w = rng.vec(numel(g.weight_shape()));
        let gt = Tensor::from_f32(&gpu, &g.output_shape(), &gy).unwrap();
        let wt = Tensor::from_f32(&gpu, &g.weight_shape(), &w).unwrap();
        let want = conv2d_backward_data_cpu(&gy, &w, g);
        let tol = atol(g.o * g.taps());
        let dx = conv2d_backward_data(&gpu, &gt, &wt, g).unwrap();
        assert_eq!(dx.shape(), g.input_shape());
        assert_close(
            &format!("conv2d backward data {g:?}"),
            &dx.to_f32(&gpu).unwrap(),
            &want,
            tol,
            1e-5,
        );
        let block = ConvBlock {
            wg: 32,
            rc: 3,
            rp: 4,
        };
        let dx = conv2d_backward_data_with(&gpu, &gt, &wt, g, block).unwrap();
        assert_close(
            &format!("conv2d backward data {g:?} {block:?}"),
            &dx.to_f32(&gpu).unwrap(),
            &want,
            tol,
            1e-5,
        );
    }
}

#[test]
fn conv2d_backward_weights_matches_cpu() {
    let gpu = gpu();
    let mut rng = Rng::new(14);
    for g in geoms() {
        let x = rng.vec(numel(g.input_shape()));
        let gy = rng.vec(numel(g.output_shape()));
        let xt = Tensor::from_f32(&gpu, &g.input_shape(), &x).unwrap();
        let gt = Tensor::from_f32(&gpu, &g.output_shape(), &gy).unwrap();
        let dw = conv2d_backward_weights(&gpu, &xt, &gt, g).unwrap();
        assert_eq!(dw.shape(), g.weight_shape());
        let want = conv2d_backward_weights_cpu(&x, &gy, g);
        let tol = atol(g.n * g.out_h() * g.out_w());
        assert_close(
            &format!("conv2d backward weights {g:?}"),
            &dw.to_f32(&gpu).unwrap(),
            &want,
            tol,
            1e-5,
        );
    }
}

#[test]
fn conv_kernels_across_several_dispatch_rows() {
    let gpu = gpu();
    let mut rng = Rng::new(15);
    let g = geom(2, 33, 9, 7, 21, 3, 1, 1);
    let x = values(&mut rng, numel(g.input_shape()));
    let w = values(&mut rng, numel(g.weight_shape()));
    let gy = rng.vec(numel(g.output_shape()));
    let xt = Tensor::from_f32(&gpu, &g.input_shape(), &x).unwrap();
    let wt = Tensor::from_f32(&gpu, &g.weight_shape(), &w).unwrap();
    let gt = Tensor::from_f32(&gpu, &g.output_shape(), &gy).unwrap();
    gpu.set_grid_limit(3);
    let block = ConvBlock {
        wg: 32,
        rc: 4,
        rp: 1,
    };
    let xp = pack_signs(&gpu, &xt, g.n, g.c, g.h * g.w, BitLayout::RowMajor).unwrap();
    let wp = pack_signs(&gpu, &wt, g.o, g.c, g.taps(), BitLayout::RowMajor).unwrap();
    let bin_zero = binary_conv2d_with(&gpu, &xp, &wp, g, None, PadMode::Zero, block).unwrap();
    let bin_one = binary_conv2d_with(&gpu, &xp, &wp, g, None, PadMode::One, block).unwrap();
    let y = conv2d_with(&gpu, &xt, &wt, g, None, block).unwrap();
    let dx = conv2d_backward_data_with(&gpu, &gt, &wt, g, block).unwrap();
    let dw = conv2d_backward_weights(&gpu, &xt, &gt, g).unwrap();
    let got: Vec<Vec<f32>> = [bin_zero, bin_one, y, dx, dw]
        .iter()
        .map(|t| t.to_f32(&gpu).unwrap())
        .collect();
    gpu.set_grid_limit(u32::MAX);
    assert_eq!(got[0], binary_conv2d_cpu(&x, &w, g, None, PadMode::Zero));
    assert_eq!(got[1], binary_conv2d_cpu(&x, &w, g, None, PadMode::One));
    assert_close(
        "conv2d",
        &got[2],
        &conv2d_cpu(&x, &w, g, None),
        atol(g.c * g.taps()),
        1e-5,
    );
    assert_close(
        "backward data",
        &got[3],
        &conv2d_backward_data_cpu(&gy, &w, g),
        atol(g.o * g.taps()),
        1e-5,
    );
    let terms = g.n * g.out_h() * g.out_w();
    assert_close(
        "backward weights",
        &got[4],
        &conv2d_backward_weights_cpu(&x, &gy, g),
        atol(terms),
        1e-5,
    );
}

#[test]
fn gemm_convolutions_match_cpu_in_one_and_several_chunks() {
    use bitprop::ops::conv_gemm::{
        conv2d_backward_data_gemm, conv2d_backward_data_signs, conv2d_backward_weights_gemm,
        conv2d_gemm, set_chunk_bytes,
    };
    use bitprop::ops::tune::{GemmFamily, f32_candidates, set_variant};
    let gpu = gpu();
    let mut rng = Rng::new(16);
    let nt4 = f32_candidates()
        .into_iter()
        .filter(|v| v.name().starts_with("nt4"));
    for (variant, chunk_bytes) in nt4.flat_map(|v| [(v, 48 << 20), (v, 1)]) {
        set_variant(&gpu, GemmFamily::F32, variant);
        // A budget of one byte forces one image per chunk.
        set_chunk_bytes(chunk_bytes);
        for g in geoms() {
            let x = rng.vec(numel(g.input_shape()));
            let w = rng.vec(numel(g.weight_shape()));
            let gy = rng.vec(numel(g.output_shape()));
            let xt = Tensor::from_f32(&gpu, &g.input_shape(), &x).unwrap();
            let wt = Tensor::from_f32(&gpu, &g.weight_shape(), &w).unwrap();
            let gt = Tensor::from_f32(&gpu, &g.output_shape(), &gy).unwrap();
            let y = conv2d_gemm(&gpu, &xt, &wt, g).unwrap();
            let dx = conv2d_backward_data_gemm(&gpu, &gt, &wt, g).unwrap();
            let dw = conv2d_backward_weights_gemm(&gpu, &xt, &gt, g).unwrap();
            let what = format!("{g:?} {} chunk budget {chunk_bytes}", variant.name());
            // Binary weights alpha_o * sign(W), read as packed signs.
            let alpha: Vec<f32> = (0..g.o).map(|o| 0.5 + o as f32 * 0.25).collect();
            let wb = binarized(&w, &alpha);
            let at = Tensor::from_f32(&gpu, &[g.o], &alpha).unwrap();
            let dx_signs = conv2d_backward_data_signs(&gpu, &gt, &wt, &at, g).unwrap();
            assert_close(
                &format!("conv2d_backward_data_signs {what}"),
                &dx_signs.to_f32(&gpu).unwrap(),
                &conv2d_backward_data_cpu(&gy, &wb, g),
                atol(g.o * g.taps()) * 3.0,
                1e-5,
            );
            assert_close(
                &format!("conv2d_gemm {what}"),
                &y.to_f32(&gpu).unwrap(),
                &conv2d_cpu(&x, &w, g, None),
                atol(g.c * g.taps()),
                1e-5,
            );
            assert_close(
                &format!("conv2d_backward_data_gemm {what}"),
                &dx.to_f32(&gpu).unwrap(),
                &conv2d_backward_data_cpu(&gy, &w, g),
                atol(g.o * g.taps()),
                1e-5,
            );
            assert_close(
                &format!("conv2d_backward_weights_gemm {what}"),
                &dw.to_f32(&gpu).unwrap(),
                &conv2d_backward_weights_cpu(&x, &gy, g),
                atol(g.n * g.out_h() * g.out_w()),
                1e-5,
            );
        }
    }
    set_chunk_bytes(48 << 20);
}

#[test]
fn conv_weight_gradient_on_packed_signs_matches_cpu_in_one_and_several_chunks() {
    use bitprop::ops::conv_gemm::conv2d_backward_weights_signs;
    let gpu = gpu();
    let mut rng = Rng::new(17);
    // Stride 1, output the input's size, planes of whole vec4s: the tap rows
    // are shifts of the input's pixel bits (im2col_bits_shifted.wgsl); images
    // that start mid-word, 1x1, 5x5 with pad 2 (shifts of two rows), 8x8
    // planes (images in whole words), and 1,024 pixels, which GPUs split
    // along K.
    let shifted = [
        geom(2, 33, 8, 6, 5, 3, 1, 1),
        geom(3, 4, 4, 4, 3, 1, 1, 0),
        geom(2, 3, 6, 10, 4, 5, 1, 2),
        geom(3, 4, 8, 8, 5, 3, 1, 1),
        geom(16, 4, 8, 8, 5, 3, 1, 1),
    ];
    in_one_and_several_chunks(|chunk_bytes| {
        for g in geoms().into_iter().chain(shifted) {
            // Signs as the sign activation writes them (+-1); the padding
            // taps are zeros the bits cannot hold, taken out after the GEMM.
            let x: Vec<f32> = rng
                .vec(numel(g.input_shape()))
                .iter()
                .map(|v| if *v >= 0.0 { 1.0 } else { -1.0 })
                .collect();
            let gy = rng.vec(numel(g.output_shape()));
            let xt = Tensor::from_f32(&gpu, &g.input_shape(), &x).unwrap();
            let gt = Tensor::from_f32(&gpu, &g.output_shape(), &gy).unwrap();
            let dw = conv2d_backward_weights_signs(&gpu, &xt, &gt, g).unwrap();
            assert_close(
                &format!("conv2d_backward_weights_signs {g:?} chunk budget {chunk_bytes}"),
                &dw.to_f32(&gpu).unwrap(),
                &conv2d_backward_weights_cpu(&x, &gy, g),
                // The padding correction subtracts sums as large as the result.
                atol(g.n * g.out_h() * g.out_w()) * 4.0,
                1e-5,
            );
        }
    });
}

/// Runs `f` with the conv GEMMs' chunk budget at its default (one chunk on
/// these sizes) and at one byte (one image per chunk), then restores it.
fn in_one_and_several_chunks(mut f: impl FnMut(usize)) {
    use bitprop::ops::conv_gemm::set_chunk_bytes;
    for chunk_bytes in [48 << 20, 1] {
        set_chunk_bytes(chunk_bytes);
        f(chunk_bytes);
    }
    set_chunk_bytes(48 << 20);
}

#[test]
fn direct_one_channel_3x3_convolution_matches_cpu() {
    use bitprop::ops::conv_gemm::{conv2d_backward_weights_gemm, conv2d_gemm};
    use bitprop::ops::conv3x3_c1::{applies, backward_weights, forward};
    let gpu = gpu();
    let mut rng = Rng::new(31);
    for g in [
        // odd output height (the last lane writes one row), one row of groups
        geom(2, 1, 7, 8, 8, 3, 1, 1),
        geom(3, 1, 6, 6, 4, 3, 1, 0),
        geom(1, 1, 9, 10, 12, 3, 1, 2),
        // bcnn's conv1 on 5 images
        geom(5, 1, 28, 28, 64, 3, 1, 1),
        // 520 row pairs, several per weight-gradient lane, each image's last
        // pair one row
        geom(130, 1, 7, 8, 4, 3, 1, 1),
    ] {
        assert!(applies(&gpu, &g), "{g:?} should run direct");
        let x = rng.vec(numel(g.input_shape()));
        let w = rng.vec(numel(g.weight_shape()));
        let gy = rng.vec(numel(g.output_shape()));
        let xt = Tensor::from_f32(&gpu, &g.input_shape(), &x).unwrap();
        let wt = Tensor::from_f32(&gpu, &g.weight_shape(), &w).unwrap();
        let gt = Tensor::from_f32(&gpu, &g.output_shape(), &gy).unwrap();
        let want_y = conv2d_cpu(&x, &w, g, None);
        let want_dw = conv2d_backward_weights_cpu(&x, &gy, g);
        let pixels = g.n * g.out_h() * g.out_w();
        for (what, y, dw) in [
            (
                "direct",
                forward(&gpu, &xt, &wt, g).unwrap(),
                backward_weights(&gpu, &xt, &gt, g).unwrap(),
            ),
            (
                "through conv_gemm",
                conv2d_gemm(&gpu, &xt, &wt, g).unwrap(),
                conv2d_backward_weights_gemm(&gpu, &xt, &gt, g).unwrap(),
            ),
        ] {
            assert_eq!(y.shape(), g.output_shape());
            assert_eq!(dw.shape(), g.weight_shape());
            assert_close(
                &format!("{what} forward {g:?}"),
                &y.to_f32(&gpu).unwrap(),
                &want_y,
                atol(9),
                1e-5,
            );
            assert_close(
                &format!("{what} weight gradient {g:?}"),
                &dw.to_f32(&gpu).unwrap(),
                &want_dw,
                atol(pixels),
                1e-5,
            );
        }
    }
    for g in [
        geom(1, 1, 7, 5, 4, 3, 1, 1),   // output width not a multiple of 4
        geom(1, 3, 8, 8, 4, 3, 1, 1),   // three input channels
        geom(1, 1, 8, 8, 6, 3, 1, 1),   // output channels not in fours
        geom(1, 1, 16, 16, 4, 3, 2, 1), // stride 2
        geom(1, 1, 8, 8, 4, 1, 1, 0),   // 1x1
    ] {
        assert!(!applies(&gpu, &g), "{g:?} should not run direct");
    }
}

#[test]
fn binary_conv_data_gradient_as_implicit_gemm_matches_cpu_in_one_and_several_chunks() {
    use bitprop::ops::conv_gemm::{conv2d_backward_data_signs, implicit_data_gradient};
    let gpu = gpu();
    let mut rng = Rng::new(33);
    // Stride 1, same-size output, O in 32s: C odd and in fours (columns past
    // C clamp), 1x1, 5x5 pad 2, several row blocks straddling images. On a
    // CPU adapter C = 64 runs four columns a lane and the others two (on a
    // GPU with 32-lane subgroups C = 64 runs two too).
    let shapes = [
        geom(2, 5, 6, 7, 32, 3, 1, 1),
        geom(3, 64, 5, 4, 64, 3, 1, 1),
        geom(2, 3, 4, 4, 32, 1, 1, 0),
        geom(1, 12, 7, 9, 32, 5, 1, 2),
    ];
    for g in shapes {
        assert!(implicit_data_gradient(&g), "{g:?}");
    }
    assert!(!implicit_data_gradient(&geom(1, 4, 8, 8, 48, 3, 1, 1)));
    assert!(!implicit_data_gradient(&geom(1, 4, 8, 8, 32, 3, 2, 1)));
    assert!(!implicit_data_gradient(&geom(1, 4, 8, 8, 32, 3, 1, 0)));
    in_one_and_several_chunks(|chunk_bytes| {
        for g in shapes {
            let w = rng.vec(numel(g.weight_shape()));
            let gy = rng.vec(numel(g.output_shape()));
            let alpha: Vec<f32> = (0..g.o).map(|o| 0.5 + o as f32 * 0.01).collect();
            let wb = binarized(&w, &alpha);
            let wt = Tensor::from_f32(&gpu, &g.weight_shape(), &w).unwrap();
            let gt = Tensor::from_f32(&gpu, &g.output_shape(), &gy).unwrap();
            let at = Tensor::from_f32(&gpu, &[g.o], &alpha).unwrap();
            let dx = conv2d_backward_data_signs(&gpu, &gt, &wt, &at, g).unwrap();
            assert_close(
                &format!("implicit conv2d_backward_data_signs {g:?} chunk budget {chunk_bytes}"),
                &dx.to_f32(&gpu).unwrap(),
                &conv2d_backward_data_cpu(&gy, &wb, g),
                atol(g.o * g.taps()) * 3.0,
                1e-5,
            );
        }
    });
}
