//! Differentiable forward ops: each runs device kernels and records its backward.

use crate::autograd::{Tape, Var};
use crate::gpu::GpuError;
use crate::ops::gemm::{Epilogue, Trans, and_gemm, f32_gemm, xnor_gemm};
use crate::ops::pack::{BitLayout, pack_bits, pack_signs};
use crate::ops::sign_gemm::{sign_gemm, sign_gemm_scaled_columns};
use crate::ops::tune::{GemmFamily, gemm_variant};
use crate::ops::{act, channel, conv, conv_gemm, loss, norm, pool, reduce};
use crate::tensor::Tensor;

/// (channels, inner) of a `[N, C]` or `[N, C, H, W]` tensor.
pub fn channels_inner(t: &Tensor) -> (usize, usize) {
    let s = t.shape();
    (s[1], s[2..].iter().product::<usize>().max(1))
}

/// Per-output-row mean |w| of `w` viewed as `[rows, rest]`: the XNOR-Net scale alpha.
pub fn row_mean_abs(tape: &Tape, w: &Tensor) -> Result<Tensor, GpuError> {
    let rows = w.shape()[0];
    reduce::reduce_rows(
        tape.gpu(),
        &w.reshape(&[rows, w.numel() / rows]),
        reduce::Reduction::MeanAbs,
    )
}

/// `alpha_o * sign(W)` as f32, for the float GEMMs of a binary layer.
fn binarized(gpu: &crate::gpu::Gpu, w: &Tensor, alpha: &Tensor) -> Result<Tensor, GpuError> {
    channel::scaled_sign_rows(gpu, w, alpha)
}

/// A linear layer's weight gradient `dy^T x` (f32).
pub(crate) fn linear_weight_grad(
    gpu: &crate::gpu::Gpu,
    dy: &Tensor,
    x: &Tensor,
) -> Result<Tensor, GpuError> {
    let v = gemm_variant(gpu, GemmFamily::F32)?;
    f32_gemm(gpu, dy, Trans::T, x, Trans::N, Epilogue::default(), None, v)
}

/// Where a binary layer's weight scale alpha comes from (always detached).
#[derive(Clone, Debug)]
pub enum WeightScale {
    /// `alpha_o = mean |W[o, :]|` per output channel (XNOR-Net).
    Channel,
    /// One `alpha = mean |W|` over the whole layer (BinaryDuo).
    Layer,
    /// A stored scalar `[1]`: a decoupled BinaryDuo layer keeps the coupled
    /// layer's alpha / 2, so decoupling preserves the function exactly.
    Fixed(Tensor),
}

/// mean |W| over the whole tensor, shape `[1]`.
pub fn layer_mean_abs(gpu: &crate::gpu::Gpu, w: &Tensor) -> Result<Tensor, GpuError> {
    reduce::reduce_all(gpu, w, reduce::Reduction::MeanAbs)
}

/// The per-output-channel scale `[O]` of a binary layer's weights `w`.
fn weight_scale(
    gpu: &crate::gpu::Gpu,
    w: &Tensor,
    scale: &WeightScale,
) -> Result<Tensor, GpuError> {
    let rows = w.shape()[0];
    let scalar = match scale {
        WeightScale::Channel => {
            return reduce::reduce_rows(
                gpu,
                &w.reshape(&[rows, w.numel() / rows]),
                reduce::Reduction::MeanAbs,
            );
        }
        WeightScale::Layer => layer_mean_abs(gpu, w)?,
        WeightScale::Fixed(t) => t.clone(),
    };
    assert_eq!(
        scalar.numel(),
        1,
        "a layer scale has one element: {scalar:?}"
    );
    // Broadcast: ones [1, rows] times the one channel's scale.
    let ones = Tensor::from_f32(gpu, &[rows], &vec![1.0; rows])?;
    channel::channel_affine(gpu, &ones, 1, rows, Some(&scalar), None)
}

/// Fully connected layer `y = x W_b^T` with binary weights
/// `W_b = alpha_o * sign(W)`, `alpha_o = mean |W[o, :]|` (detached).
/// The forward runs XNOR-popcount when `x` holds signs, a float GEMM with
/// `W_b` otherwise. Backward: `dx = dy W_b` and, where `x` holds signs,
/// `dW_b = dy^T x` on packed signs ([`sign_gemm`]; f32 otherwise), and the
/// latent gradient `dW = dW_b * 1[|W| <= 1]`.
pub fn binary_linear(tape: &mut Tape, x: Var, w: Var) -> Result<Var, GpuError> {
    binary_linear_scaled(tape, x, w, WeightScale::Channel)
}

/// [`binary_linear`] with the scale from `scale`. A `x` holding {0, 1}
/// values (a {0, 1} step's output) runs on AND-popcount ([`and_gemm`]).
pub fn binary_linear_scaled(
    tape: &mut Tape,
    x: Var,
    w: Var,
    scale: WeightScale,
) -> Result<Var, GpuError> {
    let gpu = tape.gpu().clone();
    let xt = tape.value(x).clone();
    let wt = tape.value(w).clone();
    let (batch, inp) = (xt.shape()[0], xt.shape()[1]);
    let out = wt.shape()[0];
    assert_eq!(
        wt.shape()[1],
        inp,
        "binary_linear: x {:?} vs weight {:?}",
        xt.shape(),
        wt.shape()
    );
    let alpha = weight_scale(&gpu, &wt, &scale)?;
    let x_signs = tape.is_signs(x);
    let y = if x_signs {
        let variant = gemm_variant(&gpu, GemmFamily::Xnor)?;
        let layout = variant.b_layout();
        let xp = pack_signs(&gpu, &xt, batch, inp, 1, BitLayout::RowMajor)?;
        let wp = pack_signs(&gpu, &wt, out, inp, 1, layout)?;
        xnor_gemm(&gpu, &xp, &wp, Some(&alpha), variant)?
    } else if tape.is_zero_one(x) {
        let variant = gemm_variant(&gpu, GemmFamily::Xnor)?;
        let layout = variant.b_layout();
        let xp = pack_bits(&gpu, &xt, batch, inp, 1, BitLayout::RowMajor, 0.5)?;
        let wp = pack_signs(&gpu, &wt, out, inp, 1, layout)?;
        and_gemm(&gpu, &xp, &wp, Some(&alpha), variant)?
    } else {
        // A real input: x (alpha sign(W))^T reads W's signs packed, with
        // alpha scaling the output columns.
        let w_bits = pack_signs(&gpu, &wt, out, inp, 1, BitLayout::RowMajor)?;
        sign_gemm_scaled_columns(&gpu, &xt, [batch, inp, 1], &w_bits, &alpha)?
    };
    let needs_dx = tape.needs_grad(x);
    let binary_fwd = x_signs || tape.is_zero_one(x);
    let needs_dw = tape.needs_grad(w);
    // The input gradient multiplies by W's signs; the weight gradient by
    // x's where x holds signs: both run on packed signs.
    let macs = (batch * inp * out) as u64;
    if binary_fwd {
        tape.count_macs(macs, true, false, false);
    } else {
        tape.count_forward_sign_macs(macs);
    }
    tape.count_float_backward_macs(macs * (needs_dw && !x_signs) as u64);
    tape.count_sign_macs(macs * (needs_dx as u64 + (needs_dw && x_signs) as u64));
    Ok(tape.record(y, &[x, w], false, move |gpu, dy| {
        let mut grads = Vec::new();
        if needs_dx {
            // dx = (dy alpha) sign(W), W's signs packed along the outputs.
            let w_bits = pack_signs(gpu, &wt, 1, out, inp, BitLayout::RowMajor)?;
            grads.push((
                x,
                sign_gemm(gpu, dy, [batch, out, 1], &w_bits, Some(&alpha))?,
            ));
        }
        if !needs_dw {
            return Ok(grads);
        }
        let dwb = if x_signs {
            // dW_b = dy^T sign(x), x's signs packed along the batch.
            let x_bits = pack_signs(gpu, &xt, 1, batch, inp, BitLayout::RowMajor)?;
            sign_gemm(gpu, dy, [out, 1, out], &x_bits, None)?
        } else {
            linear_weight_grad(gpu, dy, &xt)?
        };
        grads.push((w, act::ste_sign_backward(gpu, &wt, &dwb)?));
        Ok(grads)
    }))
}

/// Fully connected layer with real weights: `y = x W^T (+ b)`.
pub fn linear(tape: &mut Tape, x: Var, w: Var, bias: Option<Var>) -> Result<Var, GpuError> {
    let gpu = tape.gpu().clone();
    let xt = tape.value(x).clone();
    let wt = tape.value(w).clone();
    let bt = bias.map(|b| tape.value(b).clone());
    let v = gemm_variant(&gpu, GemmFamily::F32)?;
    let ep = Epilogue {
        bias: bt.as_ref(),
        ..Default::default()
    };
    let y = f32_gemm(&gpu, &xt, Trans::N, &wt, Trans::T, ep, None, v)?;
    let needs_dx = tape.needs_grad(x);
    let (rows, cols) = (xt.shape()[0], wt.shape()[0]);
    let needs_dw = tape.needs_grad(w);
    tape.count_macs(
        (rows * xt.shape()[1] * cols) as u64,
        false,
        needs_dx,
        needs_dw,
    );
    let mut inputs = vec![x, w];
    inputs.extend(bias);
    Ok(tape.record(y, &inputs, false, move |gpu, dy| {
        let mut grads = Vec::new();
        if needs_dx {
            grads.push((
                x,
                f32_gemm(
                    gpu,
                    dy,
                    Trans::N,
                    &wt,
                    Trans::N,
                    Epilogue::default(),
                    None,
                    v,
                )?,
            ));
        }
        grads.push((w, linear_weight_grad(gpu, dy, &xt)?));
        if let Some(b) = bias {
            grads.push((b, reduce::reduce_channels(gpu, dy, reduce::Reduction::Sum)?));
        }
        Ok(grads)
    }))
}

/// 2-D convolution, zero padding. With `binary_weights` the weights are
/// `alpha_o * sign(W)` as in [`binary_linear`], and the forward runs on
/// packed bits when the input holds signs.
pub fn conv2d(
    tape: &mut Tape,
    x: Var,
    w: Var,
    stride: usize,
    pad: usize,
    binary_weights: bool,
) -> Result<Var, GpuError> {
    conv2d_scaled(
        tape,
        x,
        w,
        stride,
        pad,
        binary_weights.then_some(WeightScale::Channel),
    )
}

/// [`conv2d`]; with `scale`, binary weights `alpha * sign(W)` scaled as it
/// says. A `x` holding {0, 1} values runs on AND-popcount
/// ([`conv::binary_conv2d_01`]).
pub fn conv2d_scaled(
    tape: &mut Tape,
    x: Var,
    w: Var,
    stride: usize,
    pad: usize,
    scale: Option<WeightScale>,
) -> Result<Var, GpuError> {
    let binary_weights = scale.is_some();
    let gpu = tape.gpu().clone();
    let xt = tape.value(x).clone();
    let wt = tape.value(w).clone();
    let (xs, ws) = (xt.shape().to_vec(), wt.shape().to_vec());
    assert_eq!(xs[1], ws[1], "conv2d: input {xs:?} vs weight {ws:?}");
    let geom = conv::Conv2dGeom {
        n: xs[0],
        c: xs[1],
        h: xs[2],
        w: xs[3],
        o: ws[0],
        kh: ws[2],
        kw: ws[3],
        stride,
        pad,
    };
    let taps = geom.kh * geom.kw;
    let x_signs = tape.is_signs(x);
    let x_01 = tape.is_zero_one(x);
    let (y, alpha) = if let Some(scale) = &scale {
        let alpha = weight_scale(&gpu, &wt, scale)?;
        let y = if x_01 {
            let xp = pack_bits(
                &gpu,
                &xt,
                geom.n,
                geom.c,
                geom.h * geom.w,
                BitLayout::RowMajor,
                0.5,
            )?;
            let wp = pack_signs(&gpu, &wt, geom.o, geom.c, taps, BitLayout::RowMajor)?;
            conv::binary_conv2d_01(&gpu, &xp, &wp, geom, Some(&alpha))?
        } else if x_signs {
            let xp = pack_signs(
                &gpu,
                &xt,
                geom.n,
                geom.c,
                geom.h * geom.w,
                BitLayout::RowMajor,
            )?;
            let wp = pack_signs(&gpu, &wt, geom.o, geom.c, taps, BitLayout::RowMajor)?;
            conv_gemm::binary_conv2d_gemm(&gpu, &xp, &wp, geom, Some(&alpha))?
        } else {
            conv_gemm::conv2d_gemm(&gpu, &xt, &binarized(&gpu, &wt, &alpha)?, geom)?
        };
        (y, Some(alpha))
    } else {
        (conv_gemm::conv2d_gemm(&gpu, &xt, &wt, geom)?, None)
    };
    let needs_dx = tape.needs_grad(x);
    let macs = (geom.n * geom.out_h() * geom.out_w() * geom.o * geom.c * taps) as u64;
    let needs_dw = tape.needs_grad(w);
    // Binary weights: the data gradient multiplies by their packed signs;
    // an input of signs: the weight gradient multiplies by its packed im2col.
    let dx_signs = needs_dx && binary_weights;
    let dw_signs = needs_dw && x_signs;
    tape.count_macs(
        macs,
        binary_weights && (x_signs || x_01),
        needs_dx && !dx_signs,
        needs_dw && !dw_signs,
    );
    tape.count_sign_macs(macs * (dx_signs as u64 + dw_signs as u64));
    Ok(tape.record(y, &[x, w], false, move |gpu, dy| {
        let mut grads = Vec::new();
        if needs_dx {
            let dx = match &alpha {
                Some(a) => conv_gemm::conv2d_backward_data_signs(gpu, dy, &wt, a, geom)?,
                None => conv_gemm::conv2d_backward_data_gemm(gpu, dy, &wt, geom)?,
            };
            grads.push((x, dx));
        }
        let dw = if x_signs {
            conv_gemm::conv2d_backward_weights_signs(gpu, &xt, dy, geom)?
        } else {
            conv_gemm::conv2d_backward_weights_gemm(gpu, &xt, dy, geom)?
        };
        let dw = if alpha.is_some() {
            act::ste_sign_backward(gpu, &wt, &dw)?
        } else {
            dw
        };
        grads.push((w, dw));
        Ok(grads)
    }))
}

/// Sign with the clipped straight-through estimator: forward sign(x),
/// backward `g * 1[|x| <= 1]`.
pub fn sign_ste(tape: &mut Tape, x: Var) -> Result<Var, GpuError> {
    let xt = tape.value(x).clone();
    let y = act::sign(tape.gpu(), &xt)?;
    Ok(tape.record(y, &[x], true, move |gpu, g| {
        Ok(vec![(x, act::ste_sign_backward(gpu, &xt, g)?)])
    }))
}

/// BinaryDuo's coupled activation: HardTanh(0, 1) then
/// `0.5 * 1[x >= 0.25] + 0.5 * 1[x >= 0.75]` in {0, 0.5, 1} (the clamp
/// does not change it); clipped STE backward `g * 1[0 <= x <= 1]`.
pub fn ternary_ste(tape: &mut Tape, x: Var) -> Result<Var, GpuError> {
    let xt = tape.value(x).clone();
    let y = act::ternary(tape.gpu(), &xt)?;
    Ok(tape.record(y, &[x], false, move |gpu, g| {
        Ok(vec![(x, act::hardtanh_backward(gpu, &xt, g, 0.0, 1.0)?)])
    }))
}

/// BinaryDuo's decoupled activation: `1[x >= 0.5]` in {0, 1}, with the
/// clipped STE backward `g * 1[0 <= x <= 1]`. The output is marked {0, 1},
/// so the next binary layer runs on AND-popcount.
pub fn step01_ste(tape: &mut Tape, x: Var) -> Result<Var, GpuError> {
    let xt = tape.value(x).clone();
    let y = act::step01(tape.gpu(), &xt, 0.5)?;
    let v = tape.record(y, &[x], false, move |gpu, g| {
        Ok(vec![(x, act::hardtanh_backward(gpu, &xt, g, 0.0, 1.0)?)])
    });
    tape.set_zero_one(v);
    Ok(v)
}

/// `[N, C, ...] -> [N, 2C, ...]`, the channels twice; backward sums the halves.
pub fn repeat_channels(tape: &mut Tape, x: Var) -> Result<Var, GpuError> {
    let y = act::repeat_channels(tape.gpu(), tape.value(x))?;
    Ok(tape.record(y, &[x], false, move |gpu, g| {
        Ok(vec![(x, act::sum_halves(gpu, g)?)])
    }))
}

/// HardTanh clamp to [lo, hi]; gradient passes inside the interval.
pub fn hardtanh(tape: &mut Tape, x: Var, lo: f32, hi: f32) -> Result<Var, GpuError> {
    let xt = tape.value(x).clone();
    let y = act::hardtanh(tape.gpu(), &xt, lo, hi)?;
    Ok(tape.record(y, &[x], false, move |gpu, g| {
        Ok(vec![(x, act::hardtanh_backward(gpu, &xt, g, lo, hi)?)])
    }))
}

/// RSign (ReActNet): `sign(x - a_c)` with the ApproxSign backward.
pub fn rsign(tape: &mut Tape, x: Var, a: Var) -> Result<Var, GpuError> {
    let xt = tape.value(x).clone();
    let at = tape.value(a).clone();
    let y = act::rsign(tape.gpu(), &xt, &at)?;
    Ok(tape.record(y, &[x, a], true, move |gpu, g| {
        let (dx, da) = act::rsign_backward(gpu, &xt, &at, g)?;
        Ok(vec![(x, dx), (a, da)])
    }))
}

/// RPReLU (ReActNet), per channel: `x - gamma + zeta` above gamma,
/// `beta (x - gamma) + zeta` below.
pub fn rprelu(tape: &mut Tape, x: Var, beta: Var, gamma: Var, zeta: Var) -> Result<Var, GpuError> {
    let xt = tape.value(x).clone();
    let (bt, gt, zt) = (
        tape.value(beta).clone(),
        tape.value(gamma).clone(),
        tape.value(zeta).clone(),
    );
    let y = act::rprelu(tape.gpu(), &xt, &bt, &gt, &zt)?;
    Ok(
        tape.record(y, &[x, beta, gamma, zeta], false, move |gpu, g| {
            let r = act::rprelu_backward(gpu, &xt, &bt, &gt, g)?;
            Ok(vec![
                (x, r.dx),
                (beta, r.dbeta),
                (gamma, r.dgamma),
                (zeta, r.dzeta),
            ])
        }),
    )
}

/// Elementwise sum of two same-shaped values (residual shortcuts).
pub fn add(tape: &mut Tape, a: Var, b: Var) -> Result<Var, GpuError> {
    let y = act::add(tape.gpu(), tape.value(a), tape.value(b))?;
    Ok(tape.record(y, &[a, b], false, move |_, g| {
        Ok(vec![(a, g.clone()), (b, g.clone())])
    }))
}

/// Same values, another shape (flatten).
pub fn reshape(tape: &mut Tape, x: Var, shape: &[usize]) -> Var {
    let signs = tape.is_signs(x);
    let zero_one = tape.is_zero_one(x);
    let y = tape.value(x).reshape(shape);
    let v = tape.record(y, &[x], signs, move |_, g| Ok(vec![(x, g.clone())]));
    if zero_one {
        tape.set_zero_one(v);
    }
    v
}

/// 2x2 max pooling, stride 2.
pub fn max_pool2x2(tape: &mut Tape, x: Var) -> Result<Var, GpuError> {
    let shape = tape.value(x).shape().to_vec();
    let signs = tape.is_signs(x);
    let (y, idx) = pool::max_pool2x2(tape.gpu(), tape.value(x))?;
    Ok(tape.record(y, &[x], signs, move |gpu, g| {
        Ok(vec![(x, pool::max_pool2x2_backward(gpu, g, &idx, &shape)?)])
    }))
}

/// 2x2 average pooling, stride 2.
pub fn avg_pool2x2(tape: &mut Tape, x: Var) -> Result<Var, GpuError> {
    let shape = tape.value(x).shape().to_vec();
    let y = pool::avg_pool2x2(tape.gpu(), tape.value(x))?;
    Ok(tape.record(y, &[x], false, move |gpu, g| {
        Ok(vec![(x, pool::avg_pool2x2_backward(gpu, g, &shape)?)])
    }))
}

/// Batch norm state a layer owns: running statistics updated in training.
pub struct BnState<'a> {
    pub running_mean: &'a Tensor,
    pub running_var: &'a Tensor,
    pub eps: f32,
    pub momentum: f32,
}

/// Batch norm over `[N, C]` or `[N, C, H, W]`: batch statistics (and a
/// running-statistics update) in training, running statistics in eval.
pub fn batch_norm(
    tape: &mut Tape,
    x: Var,
    gamma: Var,
    beta: Var,
    state: BnState,
    train: bool,
) -> Result<Var, GpuError> {
    if !train {
        let y = norm::batch_norm_eval(
            tape.gpu(),
            tape.value(x),
            tape.value(gamma),
            tape.value(beta),
            state.running_mean,
            state.running_var,
            state.eps,
        )?;
        return Ok(tape.record(y, &[x, gamma, beta], false, move |_, _| {
            panic!("batch_norm in eval mode has no backward")
        }));
    }
    Ok(batch_norm_train_op(tape, x, gamma, beta, state, norm::Output::Normalised)?.0)
}

/// [`batch_norm`] in training followed by [`sign_ste`], in the passes of
/// batch norm alone: the forward writes the signs instead of the
/// normalised values, and the backward recomputes the clipped STE's mask
/// from x inside batch norm's own two passes. The same values and
/// gradients as the two ops, one pass over the activations fewer each way.
/// Returns the signs and the batch statistics `[mean, invstd]` (`[C]` each).
pub fn batch_norm_sign_ste(
    tape: &mut Tape,
    x: Var,
    gamma: Var,
    beta: Var,
    state: BnState,
) -> Result<(Var, [Tensor; 2]), GpuError> {
    batch_norm_train_op(tape, x, gamma, beta, state, norm::Output::Sign)
}

/// Training-mode batch norm writing `output`; with [`norm::Output::Sign`]
/// the backward is the clipped STE's, then batch norm's.
fn batch_norm_train_op(
    tape: &mut Tape,
    x: Var,
    gamma: Var,
    beta: Var,
    state: BnState,
    output: norm::Output,
) -> Result<(Var, [Tensor; 2]), GpuError> {
    let gpu = tape.gpu().clone();
    let xt = tape.value(x).clone();
    let (gt, bt) = (tape.value(gamma).clone(), tape.value(beta).clone());
    let (y, mean, invstd) = norm::batch_norm_train(
        &gpu,
        &xt,
        &gt,
        &bt,
        state.running_mean,
        state.running_var,
        state.eps,
        state.momentum,
        output,
    )?;
    let stats = [mean.clone(), invstd.clone()];
    let signs = output == norm::Output::Sign;
    let clip = signs.then_some(bt);
    let y = tape.record(y, &[x, gamma, beta], signs, move |gpu, g| {
        let (dx, dg, db) =
            norm::batch_norm_backward(gpu, &xt, g, &gt, &mean, &invstd, clip.as_ref())?;
        Ok(vec![(x, dx), (gamma, dg), (beta, db)])
    });
    Ok((y, stats))
}

/// Mean softmax cross-entropy of `logits [N, C]` against `labels` (u32 [N]).
/// Its backward folds in the upstream gradient 1 (the loss is the tape's root).
pub fn softmax_cross_entropy(
    tape: &mut Tape,
    logits: Var,
    labels: &Tensor,
) -> Result<Var, GpuError> {
    let (l, probs) = loss::softmax_cross_entropy(tape.gpu(), tape.value(logits), labels)?;
    let labels = labels.clone();
    Ok(tape.record(l, &[logits], false, move |gpu, _| {
        Ok(vec![(
            logits,
            loss::softmax_cross_entropy_backward(gpu, &probs, &labels)?,
        )])
    }))
}

/// Knowledge-distillation loss against detached teacher logits at temperature `t`.
pub fn kd_loss(tape: &mut Tape, logits: Var, teacher: &Tensor, t: f32) -> Result<Var, GpuError> {
    let student = tape.value(logits).clone();
    let l = loss::kd_loss(tape.gpu(), &student, teacher, t)?;
    let teacher = teacher.clone();
    Ok(tape.record(l, &[logits], false, move |gpu, _| {
        Ok(vec![(
            logits,
            loss::kd_loss_backward(gpu, &student, &teacher, t)?,
        )])
    }))
}

/// A scalar 1 to seed [`Tape::backward`] from a loss.
pub fn loss_seed(tape: &Tape) -> Result<Tensor, GpuError> {
    Tensor::from_f32(tape.gpu(), &[1], &[1.0])
}

/// Global average pooling `[N, C, H, W] -> [N, C]`, as GEMMs with a ones vector.
pub fn global_avg_pool(tape: &mut Tape, x: Var) -> Result<Var, GpuError> {
    let gpu = tape.gpu().clone();
    let xt = tape.value(x).clone();
    let s = xt.shape().to_vec();
    let (rows, plane) = (s[0] * s[1], s[2] * s[3]);
    let inv = Tensor::from_f32(&gpu, &[1], &[1.0 / plane as f32])?;
    let ones_col = Tensor::from_f32(&gpu, &[plane, 1], &vec![1.0; plane])?;
    let v = gemm_variant(&gpu, GemmFamily::F32)?;
    let ep = Epilogue {
        scale: Some(&inv),
        ..Default::default()
    };
    let y = f32_gemm(
        &gpu,
        &xt.reshape(&[rows, plane]),
        Trans::N,
        &ones_col,
        Trans::N,
        ep,
        None,
        v,
    )?;
    let y = y.reshape(&[s[0], s[1]]);
    Ok(tape.record(y, &[x], false, move |gpu, g| {
        let inv_row = Tensor::from_f32(gpu, &[plane], &vec![1.0 / plane as f32; plane])?;
        let ones_row = ones_col.reshape(&[1, plane]);
        let ep = Epilogue {
            scale: Some(&inv_row),
            ..Default::default()
        };
        let dx = f32_gemm(
            gpu,
            &g.reshape(&[rows, 1]),
            Trans::N,
            &ones_row,
            Trans::N,
            ep,
            None,
            v,
        )?;
        Ok(vec![(x, dx.reshape(&s))])
    }))
}
