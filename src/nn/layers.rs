//! Layers: each owns named tensors in a [`ParamStore`] and a forward that
//! records differentiable ops on the tape.

use std::collections::HashMap;

use crate::autograd::ops::WeightScale;
use crate::autograd::{Tape, Var, ops};
use crate::data::rng::SplitMix64;
use crate::gpu::{Gpu, GpuError};
use crate::nn::Model;
use crate::nn::params::{ParamId, ParamKind, ParamStore};
use crate::nn::quant::{ActRule, Binarization, WeightRule};
use crate::ops::metrics::SignInput;
use crate::tensor::Tensor;

/// ReCU's tau at the first epoch (METHODS.md section 3).
pub const RECU_TAU_START: f32 = 0.85;

/// One forward pass: the tape, the model's tensors, train or eval mode, and
/// the tape leaf of each parameter used so far.
pub struct Ctx<'a> {
    pub tape: &'a mut Tape,
    pub store: &'a ParamStore,
    /// Batch statistics in batch norm (and their running update) when set.
    pub train: bool,
    /// Whether parameters need gradients (a backward will follow).
    pub grads: bool,
    /// Momentum of the running-statistics update in training mode.
    pub bn_momentum: f32,
    /// The model's weight and activation rules for binary layers.
    pub bin: Binarization,
    /// ReCU's tau for this pass (set by the method each epoch).
    pub tau: f32,
    /// Counts `act_saturation` in training passes when set.
    pub saturation: Option<&'a crate::nn::saturation::ActSaturation>,
    /// Batch norm and a clipped-STE sign after it run as one op
    /// ([`BatchNorm::forward_sign_ste`]) where a model allows, when set (the
    /// default); tests clear it to compare with the two ops.
    pub fuse_norm_sign: bool,
    leaves: HashMap<ParamId, Var>,
}

impl<'a> Ctx<'a> {
    pub fn new(tape: &'a mut Tape, store: &'a ParamStore, train: bool) -> Ctx<'a> {
        Ctx {
            tape,
            store,
            train,
            grads: train,
            bn_momentum: BN_MOMENTUM,
            bin: Binarization::default(),
            tau: RECU_TAU_START,
            saturation: None,
            fuse_norm_sign: true,
            leaves: HashMap::new(),
        }
    }

    /// A pass over `model`: its tensors and its binarization rules.
    pub fn for_model(tape: &'a mut Tape, model: &'a dyn Model, train: bool) -> Ctx<'a> {
        let mut ctx = Ctx::new(tape, model.store(), train);
        ctx.bin = model.binarization();
        if let Some(tau) = model.store().recu_tau {
            ctx.tau = tau;
        }
        ctx
    }

    /// The tape leaf of a parameter (recorded once per forward).
    pub fn param(&mut self, id: ParamId) -> Var {
        if let Some(v) = self.leaves.get(&id) {
            return *v;
        }
        let v = self.tape.leaf(self.store.get(id).clone(), self.grads);
        self.leaves.insert(id, v);
        v
    }

    /// Counts the pre-sign input `x` (minus RSign's threshold `bias`) of the
    /// activation feeding layer `site`, in training passes with a recorder.
    pub fn record_saturation(&self, site: &str, x: Var, bias: Option<Var>) -> Result<(), GpuError> {
        let input = bias.map_or(SignInput::Plain, |b| SignInput::Shifted(self.tape.value(b)));
        self.record_saturation_of(site, self.tape.value(x), input)
    }

    /// [`Ctx::record_saturation`] of the sign input that `input` makes of
    /// `x` (for a sign fused into the batch norm before it, batch norm's
    /// input and statistics).
    pub fn record_saturation_of(
        &self,
        site: &str,
        x: &Tensor,
        input: SignInput,
    ) -> Result<(), GpuError> {
        match self.saturation {
            Some(s) if self.train => s.record(self.tape.gpu(), site, x, input),
            _ => Ok(()),
        }
    }

    /// Parameter -> tape leaf, to fetch gradients after backward.
    pub fn leaves(&self) -> Vec<(ParamId, Var)> {
        self.leaves.iter().map(|(p, v)| (*p, *v)).collect()
    }
}

/// ReCU's learnable per-output-channel scale `name.scale` [out], created when
/// the store's rules ask for one; initialised to the mean |w| of each output
/// channel's initial latent weights (the plain rule's alpha at init).
fn recu_scale(
    gpu: &Gpu,
    store: &mut ParamStore,
    name: &str,
    w: &[f32],
    outputs: usize,
) -> Result<Option<ParamId>, GpuError> {
    let WeightRule::Recu {
        learnable_scale: true,
        ..
    } = store.bin.weights
    else {
        return Ok(None);
    };
    let k = w.len() / outputs;
    let init: Vec<f32> = w
        .chunks(k)
        .map(|r| r.iter().map(|v| v.abs()).sum::<f32>() / k as f32)
        .collect();
    let id = store.add(
        gpu,
        &format!("{name}.scale"),
        ParamKind::Scale,
        &[outputs],
        &init,
    )?;
    Ok(Some(id))
}

/// A ReCU binary layer: `alpha_o * layer(x, sign(w2))`, `w2` the clamped
/// standardized weights, alpha the learnable `scale` or (without one) the
/// detached mean |w2| per output channel.
fn recu_forward(
    ctx: &mut Ctx,
    w: Var,
    scale: Option<ParamId>,
    b_star: f32,
    layer: impl FnOnce(&mut Tape, Var) -> Result<Var, GpuError>,
) -> Result<Var, GpuError> {
    let (w2, r) = crate::autograd::recu::recu_weight(ctx.tape, w, b_star, ctx.tau)?;
    let y0 = layer(ctx.tape, w2)?;
    let alpha = match scale {
        Some(p) => ctx.param(p),
        None => {
            let a = ops::row_mean_abs(ctx.tape, &r.w2)?;
            ctx.tape.leaf(a, false)
        }
    };
    crate::autograd::recu::channel_scale(ctx.tape, y0, alpha)
}

/// The scale of a [`WeightRule::LayerMeanAbs`] layer: its stored scalar
/// (a decoupled BinaryDuo layer) or the layer's mean |W|.
fn layer_scale(ctx: &Ctx, fixed: Option<ParamId>) -> WeightScale {
    match fixed {
        Some(id) => WeightScale::Fixed(ctx.store.get(id).clone()),
        None => WeightScale::Layer,
    }
}

/// PyTorch's default init for linear and conv kernels: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
fn kaiming_uniform(rng: &mut SplitMix64, n: usize, fan_in: usize) -> Vec<f32> {
    let bound = 1.0 / (fan_in as f32).sqrt();
    (0..n).map(|_| rng.uniform(-bound, bound)).collect()
}

/// Linear layer (`name.weight` [out, in]), binary or real weights, no bias.
pub struct Linear {
    pub weight: ParamId,
    /// ReCU's learnable scale `name.scale` [out] (binary layers under ReCU rules).
    pub scale: Option<ParamId>,
    pub binary: bool,
    pub inputs: usize,
    pub outputs: usize,
    /// A stored weight scale `[1]` used instead of mean |W| under
    /// [`WeightRule::LayerMeanAbs`] (BinaryDuo's decoupled layers).
    pub fixed_scale: Option<ParamId>,
}

impl Linear {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gpu: &Gpu,
        store: &mut ParamStore,
        rng: &mut SplitMix64,
        name: &str,
        inputs: usize,
        outputs: usize,
        binary: bool,
        kind: ParamKind,
    ) -> Result<Linear, GpuError> {
        let w = kaiming_uniform(rng, inputs * outputs, inputs);
        let weight = store.add(gpu, &format!("{name}.weight"), kind, &[outputs, inputs], &w)?;
        let mut scale = None;
        if binary {
            store.mark_binary(weight);
            scale = recu_scale(gpu, store, name, &w, outputs)?;
        }
        Ok(Linear {
            weight,
            scale,
            binary,
            inputs,
            outputs,
            fixed_scale: None,
        })
    }

    pub fn forward(&self, ctx: &mut Ctx, x: Var) -> Result<Var, GpuError> {
        let w = ctx.param(self.weight);
        if !self.binary {
            return ops::linear(ctx.tape, x, w, None);
        }
        match ctx.bin.weights {
            WeightRule::ChannelMeanAbs => ops::binary_linear(ctx.tape, x, w),
            WeightRule::Real => ops::linear(ctx.tape, x, w, None),
            WeightRule::Recu { b_star, .. } => recu_forward(ctx, w, self.scale, b_star, |t, w2| {
                crate::autograd::recu::sign_linear(t, x, w2)
            }),
            WeightRule::LayerMeanAbs => {
                let s = layer_scale(ctx, self.fixed_scale);
                ops::binary_linear_scaled(ctx.tape, x, w, s)
            }
        }
    }
}

/// 2-D convolution (`name.weight` [out, in, k, k]), zero padding, no bias.
pub struct Conv2d {
    pub weight: ParamId,
    /// ReCU's learnable scale `name.scale` [out] (binary layers under ReCU rules).
    pub scale: Option<ParamId>,
    pub binary: bool,
    pub stride: usize,
    pub pad: usize,
    /// As [`Linear::fixed_scale`].
    pub fixed_scale: Option<ParamId>,
}

impl Conv2d {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gpu: &Gpu,
        store: &mut ParamStore,
        rng: &mut SplitMix64,
        name: &str,
        inputs: usize,
        outputs: usize,
        k: usize,
        stride: usize,
        pad: usize,
        binary: bool,
    ) -> Result<Conv2d, GpuError> {
        let fan_in = inputs * k * k;
        let w = kaiming_uniform(rng, outputs * fan_in, fan_in);
        let weight = store.add(
            gpu,
            &format!("{name}.weight"),
            ParamKind::Kernel,
            &[outputs, inputs, k, k],
            &w,
        )?;
        let mut scale = None;
        if binary {
            store.mark_binary(weight);
            scale = recu_scale(gpu, store, name, &w, outputs)?;
        }
        Ok(Conv2d {
            weight,
            scale,
            binary,
            stride,
            pad,
            fixed_scale: None,
        })
    }

    pub fn forward(&self, ctx: &mut Ctx, x: Var) -> Result<Var, GpuError> {
        let w = ctx.param(self.weight);
        if !self.binary {
            return ops::conv2d(ctx.tape, x, w, self.stride, self.pad, false);
        }
        match ctx.bin.weights {
            WeightRule::ChannelMeanAbs => ops::conv2d(ctx.tape, x, w, self.stride, self.pad, true),
            WeightRule::Real => ops::conv2d(ctx.tape, x, w, self.stride, self.pad, false),
            WeightRule::Recu { b_star, .. } => {
                let (stride, pad) = (self.stride, self.pad);
                recu_forward(ctx, w, self.scale, b_star, |t, w2| {
                    crate::autograd::recu::sign_conv2d(t, x, w2, stride, pad)
                })
            }
            WeightRule::LayerMeanAbs => {
                let s = layer_scale(ctx, self.fixed_scale);
                ops::conv2d_scaled(ctx.tape, x, w, self.stride, self.pad, Some(s))
            }
        }
    }
}

/// Batch norm (`weight`, `bias`, `running_mean`, `running_var`), eps 1e-5,
/// momentum 0.1, as PyTorch's BatchNorm1d/2d.
pub struct BatchNorm {
    pub weight: ParamId,
    pub bias: ParamId,
    pub running_mean: ParamId,
    pub running_var: ParamId,
    pub channels: usize,
}

use crate::ops::norm::{BN_EPS, BN_MOMENTUM};

impl BatchNorm {
    pub fn new(
        gpu: &Gpu,
        store: &mut ParamStore,
        name: &str,
        channels: usize,
    ) -> Result<BatchNorm, GpuError> {
        let ones = vec![1.0; channels];
        let zeros = vec![0.0; channels];
        Ok(BatchNorm {
            weight: store.add(
                gpu,
                &format!("{name}.weight"),
                ParamKind::Norm,
                &[channels],
                &ones,
            )?,
            bias: store.add(
                gpu,
                &format!("{name}.bias"),
                ParamKind::Norm,
                &[channels],
                &zeros,
            )?,
            running_mean: store.add(
                gpu,
                &format!("{name}.running_mean"),
                ParamKind::Buffer,
                &[channels],
                &zeros,
            )?,
            running_var: store.add(
                gpu,
                &format!("{name}.running_var"),
                ParamKind::Buffer,
                &[channels],
                &ones,
            )?,
            channels,
        })
    }

    pub fn forward(&self, ctx: &mut Ctx, x: Var) -> Result<Var, GpuError> {
        let (gamma, beta, state) = self.operands(ctx);
        ops::batch_norm(ctx.tape, x, gamma, beta, state, ctx.train)
    }

    /// Its parameters' tape leaves and its running statistics.
    fn operands<'a>(&self, ctx: &mut Ctx<'a>) -> (Var, Var, ops::BnState<'a>) {
        let gamma = ctx.param(self.weight);
        let beta = ctx.param(self.bias);
        let state = ops::BnState {
            running_mean: ctx.store.get(self.running_mean),
            running_var: ctx.store.get(self.running_var),
            eps: BN_EPS,
            momentum: ctx.bn_momentum,
        };
        (gamma, beta, state)
    }

    /// [`BatchNorm::forward`] in training, then the sign with the clipped
    /// STE, in batch norm's passes ([`ops::batch_norm_sign_ste`]); counts
    /// `act_saturation` at `site` as the two ops would.
    pub fn forward_sign_ste(&self, ctx: &mut Ctx, x: Var, site: &str) -> Result<Var, GpuError> {
        let (gamma, beta, state) = self.operands(ctx);
        let (y, [mean, invstd]) = ops::batch_norm_sign_ste(ctx.tape, x, gamma, beta, state)?;
        let input = SignInput::Normalised {
            mean: &mean,
            invstd: &invstd,
            gamma: ctx.tape.value(gamma),
            beta: ctx.tape.value(beta),
        };
        ctx.record_saturation_of(site, ctx.tape.value(x), input)?;
        Ok(y)
    }
}

/// RSign (ReActNet): `sign(x - a_c)`, `name.bias` [C] initialised to 0.
pub struct RSign {
    pub bias: ParamId,
}

impl RSign {
    pub fn new(
        gpu: &Gpu,
        store: &mut ParamStore,
        name: &str,
        channels: usize,
    ) -> Result<RSign, GpuError> {
        Ok(RSign {
            bias: store.add(
                gpu,
                &format!("{name}.bias"),
                ParamKind::Activation,
                &[channels],
                &vec![0.0; channels],
            )?,
        })
    }

    pub fn forward(&self, ctx: &mut Ctx, x: Var) -> Result<Var, GpuError> {
        let a = ctx.param(self.bias);
        match ctx.bin.acts {
            // ReCU divides by the per-sample std in training (sign unchanged).
            ActRule::RecuStd if ctx.train => crate::autograd::recu::std_sign(ctx.tape, x, Some(a)),
            _ => ops::rsign(ctx.tape, x, a),
        }
    }
}

/// RPReLU (ReActNet): `name.slope` (init 0.25), `name.shift_in` (gamma, 0), `name.shift_out` (zeta, 0).
pub struct RPReLU {
    pub slope: ParamId,
    pub shift_in: ParamId,
    pub shift_out: ParamId,
}

impl RPReLU {
    pub fn new(
        gpu: &Gpu,
        store: &mut ParamStore,
        name: &str,
        channels: usize,
    ) -> Result<RPReLU, GpuError> {
        let z = vec![0.0; channels];
        Ok(RPReLU {
            slope: store.add(
                gpu,
                &format!("{name}.slope"),
                ParamKind::Activation,
                &[channels],
                &vec![0.25; channels],
            )?,
            shift_in: store.add(
                gpu,
                &format!("{name}.shift_in"),
                ParamKind::Activation,
                &[channels],
                &z,
            )?,
            shift_out: store.add(
                gpu,
                &format!("{name}.shift_out"),
                ParamKind::Activation,
                &[channels],
                &z,
            )?,
        })
    }

    pub fn forward(&self, ctx: &mut Ctx, x: Var) -> Result<Var, GpuError> {
        let (b, g, z) = (
            ctx.param(self.slope),
            ctx.param(self.shift_in),
            ctx.param(self.shift_out),
        );
        ops::rprelu(ctx.tape, x, b, g, z)
    }
}
