//! ReCU's differentiable ops (METHODS.md section 3). A ReCU binary layer is
//! `y = alpha_o * (x sign(w2)^T)` with `w2 = recu_weight(w)`: the weight path
//! ([`recu_weight`]), a sign layer with the identity STE ([`sign_linear`],
//! [`sign_conv2d`], on packed XNOR kernels when the input holds signs), and a
//! per-output-channel scale ([`channel_scale`]). [`std_sign`] is ReCU's
//! training-time activation.

use crate::autograd::{Tape, Var};
use crate::gpu::GpuError;
use crate::ops::gemm::{Epilogue, Trans, f32_gemm, xnor_gemm};
use crate::ops::pack::{BitLayout, pack_signs};
use crate::ops::recu::{self as k, RecuWeights};
use crate::ops::tune::{GemmFamily, gemm_variant};
use crate::ops::{act, channel, conv, conv_gemm, reduce};
use crate::tensor::Tensor;

/// `w2 = clamp(w1, -Q, Q)` of the standardized weights ([`k::recu_weights`]);
/// the gradient flows through the clamp (zero outside [-Q, Q]) and the full
/// Jacobian of the per-row standardization; Q is detached. Also returns the
/// forward's intermediates (for the metrics and the analytic scale).
pub fn recu_weight(
    tape: &mut Tape,
    w: Var,
    b_star: f32,
    tau: f32,
) -> Result<(Var, RecuWeights), GpuError> {
    let r = k::recu_weights(tape.gpu(), tape.value(w), b_star, tau)?;
    let saved = r.clone();
    let v = tape.record(r.w2.clone(), &[w], false, move |gpu, g| {
        Ok(vec![(w, k::recu_weights_backward(gpu, &saved, g)?)])
    });
    Ok((v, r))
}

/// `y0 = x sign(W)^T` with the identity STE: `dx = dy sign(W)`, `dW = dy^T x`.
/// Runs XNOR-popcount on packed bits when `x` holds signs.
pub fn sign_linear(tape: &mut Tape, x: Var, w: Var) -> Result<Var, GpuError> {
    let gpu = tape.gpu().clone();
    let xt = tape.value(x).clone();
    let wt = tape.value(w).clone();
    let (batch, inp, out) = (xt.shape()[0], xt.shape()[1], wt.shape()[0]);
    assert_eq!(
        wt.shape()[1],
        inp,
        "sign_linear: x {:?} vs weight {:?}",
        xt.shape(),
        wt.shape()
    );
    let ws = act::sign(&gpu, &wt)?;
    let fv = gemm_variant(&gpu, GemmFamily::F32)?;
    let binary_fwd = tape.is_signs(x);
    let y = if binary_fwd {
        let variant = gemm_variant(&gpu, GemmFamily::Xnor)?;
        let xp = pack_signs(&gpu, &xt, batch, inp, 1, BitLayout::RowMajor)?;
        let wp = pack_signs(&gpu, &wt, out, inp, 1, variant.b_layout())?;
        xnor_gemm(&gpu, &xp, &wp, None, variant)?
    } else {
        f32_gemm(
            &gpu,
            &xt,
            Trans::N,
            &ws,
            Trans::T,
            Epilogue::default(),
            None,
            fv,
        )?
    };
    let needs_dx = tape.needs_grad(x);
    let needs_dw = tape.needs_grad(w);
    tape.count_macs((batch * inp * out) as u64, binary_fwd, needs_dx, needs_dw);
    Ok(tape.record(y, &[x, w], false, move |gpu, dy| {
        let mut grads = Vec::new();
        if needs_dx {
            let dx = f32_gemm(
                gpu,
                dy,
                Trans::N,
                &ws,
                Trans::N,
                Epilogue::default(),
                None,
                fv,
            )?;
            grads.push((x, dx));
        }
        grads.push((w, super::ops::linear_weight_grad(gpu, dy, &xt)?));
        Ok(grads)
    }))
}

/// 2-D convolution of `x` with `sign(W)` (zero padding), identity STE for
/// `W`; packed XNOR-popcount when `x` holds signs.
pub fn sign_conv2d(
    tape: &mut Tape,
    x: Var,
    w: Var,
    stride: usize,
    pad: usize,
) -> Result<Var, GpuError> {
    let gpu = tape.gpu().clone();
    let xt = tape.value(x).clone();
    let wt = tape.value(w).clone();
    let (xs, wsh) = (xt.shape().to_vec(), wt.shape().to_vec());
    assert_eq!(xs[1], wsh[1], "sign_conv2d: input {xs:?} vs weight {wsh:?}");
    let geom = conv::Conv2dGeom {
        n: xs[0],
        c: xs[1],
        h: xs[2],
        w: xs[3],
        o: wsh[0],
        kh: wsh[2],
        kw: wsh[3],
        stride,
        pad,
    };
    let taps = geom.kh * geom.kw;
    let ws = act::sign(&gpu, &wt)?;
    let binary_fwd = tape.is_signs(x);
    let y = if binary_fwd {
        let xp = pack_signs(
            &gpu,
            &xt,
            geom.n,
            geom.c,
            geom.h * geom.w,
            BitLayout::RowMajor,
        )?;
        let wp = pack_signs(&gpu, &wt, geom.o, geom.c, taps, BitLayout::RowMajor)?;
        conv_gemm::binary_conv2d_gemm(&gpu, &xp, &wp, geom, None)?
    } else {
        conv_gemm::conv2d_gemm(&gpu, &xt, &ws, geom)?
    };
    let needs_dx = tape.needs_grad(x);
    let needs_dw = tape.needs_grad(w);
    let macs = geom.n * geom.out_h() * geom.out_w() * geom.o * geom.c * taps;
    tape.count_macs(macs as u64, binary_fwd, needs_dx, needs_dw);
    Ok(tape.record(y, &[x, w], false, move |gpu, dy| {
        let mut grads = Vec::new();
        if needs_dx {
            grads.push((x, conv_gemm::conv2d_backward_data_gemm(gpu, dy, &ws, geom)?));
        }
        grads.push((
            w,
            conv_gemm::conv2d_backward_weights_gemm(gpu, &xt, dy, geom)?,
        ));
        Ok(grads)
    }))
}

/// `y[n, c, ...] = alpha[c] * y0[n, c, ...]`: `dy0 = alpha_c dy`,
/// `d alpha_c = sum dy * y0` (only when `alpha` needs a gradient).
pub fn channel_scale(tape: &mut Tape, y0: Var, alpha: Var) -> Result<Var, GpuError> {
    let yt = tape.value(y0).clone();
    let at = tape.value(alpha).clone();
    let [_, c, s] = reduce::channel_view(yt.shape());
    let y = channel::channel_affine(tape.gpu(), &yt, c, s, Some(&at), None)?;
    let needs_alpha = tape.needs_grad(alpha);
    Ok(tape.record(y, &[y0, alpha], false, move |gpu, dy| {
        let mut grads = vec![(y0, channel::channel_affine(gpu, dy, c, s, Some(&at), None)?)];
        if needs_alpha {
            grads.push((alpha, k::scale_grad(gpu, dy, &yt)?));
        }
        Ok(grads)
    }))
}

/// ReCU's training-time activation: `sign((x - bias_c) / sigma_n)` with
/// sigma_n the per-sample std ([`k::std_sign`]); ApproxSign backward at
/// `z / sigma`, through sigma's dependence on `z` too. With a bias (RSign's
/// thresholds) its gradient is `-sum dz` per channel.
pub fn std_sign(tape: &mut Tape, x: Var, bias: Option<Var>) -> Result<Var, GpuError> {
    let xt = tape.value(x).clone();
    let bt: Option<Tensor> = bias.map(|b| tape.value(b).clone());
    let (y, stats) = k::std_sign(tape.gpu(), &xt, bt.as_ref())?;
    let mut inputs = vec![x];
    inputs.extend(bias);
    Ok(tape.record(y, &inputs, true, move |gpu, g| {
        let dz = k::std_sign_backward(gpu, &xt, bt.as_ref(), &stats, g)?;
        let mut grads = Vec::new();
        if let Some(b) = bias {
            let sum = reduce::reduce_channels(gpu, &dz, reduce::Reduction::Sum)?;
            grads.push((b, act::scale(gpu, &sum, -1.0)?));
        }
        grads.push((x, dz));
        Ok(grads)
    }))
}
