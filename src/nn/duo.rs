//! BinaryDuo (METHODS.md section 2): the coupled network with ternary
//! activations, built narrower, and its exact decoupling into a binary
//! network of {0, 1} activations with the plain BNN's cost.
//!
//! Width rule: every layer whose output feeds a ternary activation has
//! `round(C / sqrt(2))` channels ([`duo_width`]): `bmlp` hidden 1024 -> 724;
//! `bcnn` conv1 64 -> 45, conv2 and conv3 128 -> 91 (the plain round; the
//! kernels take any width). Decoupling doubles each such activation, so a
//! hidden binary layer costs `2 (C / sqrt 2) (C / sqrt 2) = C^2`
//! multiply-adds as in the plain BNN; the first layer (fixed input) costs
//! 1/sqrt(2) of the plain one and the classifier (fixed output) sqrt(2)
//! times. The input width and the 10 outputs stay.
//!
//! Both networks use [`WeightRule::LayerMeanAbs`] (one scalar mean |W| per
//! layer times sign(W)). A decoupled layer whose input was doubled has
//! latent weights `[W/2, W/2]`, whose mean |.| is alpha / 2 in exact
//! arithmetic but not always in f32 (another reduction order), so it
//! stores its scale `name.scale` = (the coupled layer's alpha) / 2 (a
//! buffer, exact, not trained; every such layer is followed by batch norm,
//! which absorbs its scale during fine-tuning) and uses it instead.

use crate::autograd::{Var, ops};
use crate::data::rng::SplitMix64;
use crate::gpu::{Gpu, GpuError};
use crate::nn::layers::{BatchNorm, Conv2d, Ctx, Linear};
use crate::nn::models::{Model, ModelError};
use crate::nn::params::{ParamId, ParamKind, ParamStore};
use crate::nn::quant::{ActRule, Binarization, WeightRule};
use crate::tensor::Tensor;

/// The coupled width of a layer that has `c` channels in the plain BNN.
pub fn duo_width(c: usize) -> usize {
    (c as f64 / std::f64::consts::SQRT_2).round() as usize
}

/// The width rule, as printed by `--method binaryduo`.
pub fn width_rule(model: &str) -> String {
    match model {
        "bmlp" => format!(
            "BinaryDuo width rule round(C / sqrt 2): bmlp hidden 1024 -> {} (decoupled activations 2 x {})",
            duo_width(1024),
            duo_width(1024)
        ),
        "bcnn" => format!(
            "BinaryDuo width rule round(C / sqrt 2): bcnn conv1 64 -> {}, conv2/conv3 128 -> {} (decoupled activations twice as many)",
            duo_width(64),
            duo_width(128)
        ),
        _ => format!("BinaryDuo has no width rule for '{model}'"),
    }
}

/// The rules of the coupled network.
pub const COUPLED: Binarization = Binarization {
    weights: WeightRule::LayerMeanAbs,
    acts: ActRule::Ternary,
};

/// The rules of the decoupled network.
pub const DECOUPLED: Binarization = Binarization {
    weights: WeightRule::LayerMeanAbs,
    acts: ActRule::Decoupled01,
};

/// Builds the coupled (`bin.acts` Ternary) or decoupled (Decoupled01)
/// network of `bmlp` or `bcnn`.
pub fn build(
    gpu: &Gpu,
    name: &str,
    rng: &mut SplitMix64,
    bin: Binarization,
) -> Result<Box<dyn Model>, ModelError> {
    if bin.weights != WeightRule::LayerMeanAbs {
        return Err(GpuError::Unsupported(format!(
            "BinaryDuo networks use the layer-mean-abs weight rule, not {:?}",
            bin.weights
        ))
        .into());
    }
    let decoupled = bin.acts == ActRule::Decoupled01;
    Ok(match name {
        "bmlp" => Box::new(DuoMlp::new(gpu, decoupled, rng)?),
        "bcnn" => Box::new(DuoCnn::new(gpu, decoupled, rng)?),
        _ => {
            return Err(GpuError::Unsupported(format!(
                "BinaryDuo (--method binaryduo) supports --model bmlp and bcnn, not '{name}'"
            ))
            .into());
        }
    })
}

/// BN then the activation: ternary (coupled), or channels repeated, BN
/// over 2C channels and the {0, 1} step (decoupled).
fn norm_act(ctx: &mut Ctx, bn: &BatchNorm, h: Var, decoupled: bool) -> Result<Var, GpuError> {
    if decoupled {
        let h = ops::repeat_channels(ctx.tape, h)?;
        let h = bn.forward(ctx, h)?;
        ops::step01_ste(ctx.tape, h)
    } else {
        let h = bn.forward(ctx, h)?;
        ops::ternary_ste(ctx.tape, h)
    }
}

/// A stored scale `name.scale` `[1]` for a decoupled layer.
fn scale_param(gpu: &Gpu, s: &mut ParamStore, name: &str) -> Result<ParamId, GpuError> {
    s.add(
        gpu,
        &format!("{name}.scale"),
        ParamKind::Buffer,
        &[1],
        &[1.0],
    )
}

fn rules(decoupled: bool) -> Binarization {
    if decoupled { DECOUPLED } else { COUPLED }
}

/// `bmlp` for BinaryDuo: fc1 784->H, bn1, act; fc2 H'->H, bn2, act; fc3
/// H'->10, bn3; H = 724, H' = H (coupled) or 2H (decoupled).
pub struct DuoMlp {
    decoupled: bool,
    store: ParamStore,
    fc1: Linear,
    bn1: BatchNorm,
    fc2: Linear,
    bn2: BatchNorm,
    fc3: Linear,
    bn3: BatchNorm,
}

impl DuoMlp {
    pub fn new(gpu: &Gpu, decoupled: bool, rng: &mut SplitMix64) -> Result<DuoMlp, GpuError> {
        let mut s = ParamStore::default();
        let h = duo_width(1024);
        let hi = if decoupled { 2 * h } else { h };
        let fc1 = Linear::new(gpu, &mut s, rng, "fc1", 784, h, true, ParamKind::Kernel)?;
        let bn1 = BatchNorm::new(gpu, &mut s, "bn1", hi)?;
        let mut fc2 = Linear::new(gpu, &mut s, rng, "fc2", hi, h, true, ParamKind::Kernel)?;
        let bn2 = BatchNorm::new(gpu, &mut s, "bn2", hi)?;
        let mut fc3 = Linear::new(gpu, &mut s, rng, "fc3", hi, 10, true, ParamKind::Classifier)?;
        let bn3 = BatchNorm::new(gpu, &mut s, "bn3", 10)?;
        if decoupled {
            fc2.fixed_scale = Some(scale_param(gpu, &mut s, "fc2")?);
            fc3.fixed_scale = Some(scale_param(gpu, &mut s, "fc3")?);
        }
        Ok(DuoMlp {
            decoupled,
            store: s,
            fc1,
            bn1,
            fc2,
            bn2,
            fc3,
            bn3,
        })
    }
}

impl Model for DuoMlp {
    fn name(&self) -> &str {
        "bmlp"
    }
    fn binarization(&self) -> Binarization {
        rules(self.decoupled)
    }
    fn store(&self) -> &ParamStore {
        &self.store
    }
    fn store_mut(&mut self) -> &mut ParamStore {
        &mut self.store
    }
    fn input_shape(&self) -> Vec<usize> {
        vec![784]
    }
    fn forward(&self, ctx: &mut Ctx, x: Var) -> Result<Var, GpuError> {
        let h = self.fc1.forward(ctx, x)?;
        let h = norm_act(ctx, &self.bn1, h, self.decoupled)?;
        let h = self.fc2.forward(ctx, h)?;
        let h = norm_act(ctx, &self.bn2, h, self.decoupled)?;
        let h = self.fc3.forward(ctx, h)?;
        self.bn3.forward(ctx, h)
    }
}

/// `bcnn` for BinaryDuo, laid out as `bcnn`: conv1 1->C1 (real weights),
/// bn1, act; conv2 C1'->C2, max pool, bn2, act; conv3 C2'->C2, max pool,
/// bn3, act; fc C2'*49->10, bn4. C1 = 45, C2 = 91; a primed width is
/// doubled when decoupled.
pub struct DuoCnn {
    decoupled: bool,
    store: ParamStore,
    c2: usize,
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    conv3: Conv2d,
    bn3: BatchNorm,
    fc: Linear,
    bn4: BatchNorm,
}

impl DuoCnn {
    pub fn new(gpu: &Gpu, decoupled: bool, rng: &mut SplitMix64) -> Result<DuoCnn, GpuError> {
        let mut s = ParamStore::default();
        let m = if decoupled { 2 } else { 1 };
        let (c1, c2) = (duo_width(64), duo_width(128));
        let conv1 = Conv2d::new(gpu, &mut s, rng, "conv1", 1, c1, 3, 1, 1, false)?;
        let bn1 = BatchNorm::new(gpu, &mut s, "bn1", m * c1)?;
        let mut conv2 = Conv2d::new(gpu, &mut s, rng, "conv2", m * c1, c2, 3, 1, 1, true)?;
        let bn2 = BatchNorm::new(gpu, &mut s, "bn2", m * c2)?;
        let mut conv3 = Conv2d::new(gpu, &mut s, rng, "conv3", m * c2, c2, 3, 1, 1, true)?;
        let bn3 = BatchNorm::new(gpu, &mut s, "bn3", m * c2)?;
        let mut fc = Linear::new(
            gpu,
            &mut s,
            rng,
            "fc",
            m * c2 * 49,
            10,
            true,
            ParamKind::Classifier,
        )?;
        let bn4 = BatchNorm::new(gpu, &mut s, "bn4", 10)?;
        if decoupled {
            conv2.fixed_scale = Some(scale_param(gpu, &mut s, "conv2")?);
            conv3.fixed_scale = Some(scale_param(gpu, &mut s, "conv3")?);
            fc.fixed_scale = Some(scale_param(gpu, &mut s, "fc")?);
        }
        Ok(DuoCnn {
            decoupled,
            store: s,
            c2: m * c2,
            conv1,
            bn1,
            conv2,
            bn2,
            conv3,
            bn3,
            fc,
            bn4,
        })
    }
}

impl Model for DuoCnn {
    fn name(&self) -> &str {
        "bcnn"
    }
    fn binarization(&self) -> Binarization {
        rules(self.decoupled)
    }
    fn store(&self) -> &ParamStore {
        &self.store
    }
    fn store_mut(&mut self) -> &mut ParamStore {
        &mut self.store
    }
    fn input_shape(&self) -> Vec<usize> {
        vec![1, 28, 28]
    }
    fn forward(&self, ctx: &mut Ctx, x: Var) -> Result<Var, GpuError> {
        let n = ctx.tape.value(x).shape()[0];
        let h = self.conv1.forward(ctx, x)?;
        let h = norm_act(ctx, &self.bn1, h, self.decoupled)?;
        let h = self.conv2.forward(ctx, h)?;
        let h = ops::max_pool2x2(ctx.tape, h)?;
        let h = norm_act(ctx, &self.bn2, h, self.decoupled)?;
        let h = self.conv3.forward(ctx, h)?;
        let h = ops::max_pool2x2(ctx.tape, h)?;
        let h = norm_act(ctx, &self.bn3, h, self.decoupled)?;
        let h = ops::reshape(ctx.tape, h, &[n, self.c2 * 49]);
        let h = self.fc.forward(ctx, h)?;
        self.bn4.forward(ctx, h)
    }
}

/// Batch norms that feed a ternary activation, and the layers they feed.
fn decoupled_pairs(model: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match model {
        "bmlp" => (&["bn1", "bn2"], &["fc2", "fc3"]),
        _ => (&["bn1", "bn2", "bn3"], &["conv2", "conv3", "fc"]),
    }
}

/// Decouples a trained coupled network (METHODS.md section 2), exactly
/// function-preserving: each batch norm feeding a ternary activation
/// becomes a 2C-channel batch norm over the repeated channels (mean, var,
/// gamma copied; beta - 0.25 in the first half, beta + 0.25 in the second),
/// each half feeding `1[x >= 0.5]`, so `(b1 + b2) / 2` is the ternary
/// value; the next layer's latent weight becomes `[W/2, W/2]` along its
/// input channels (each output row: its halved row twice, which for a conv
/// `[O, C, k, k]` and the flattened classifier input is the input-channel
/// axis), with the stored scale `alpha / 2`. Other tensors are copied.
pub fn decouple(gpu: &Gpu, coupled: &dyn Model) -> anyhow::Result<Box<dyn Model>> {
    let name = coupled.name().to_string();
    anyhow::ensure!(
        coupled.binarization() == COUPLED,
        "decoupling needs a coupled BinaryDuo network, got {name} with {:?}",
        coupled.binarization()
    );
    let mut out = crate::nn::build_model_with(gpu, &name, 0, DECOUPLED)?;
    let (bns, layers) = decoupled_pairs(&name);
    let src = coupled.store();
    let read = |n: &str| -> anyhow::Result<(Vec<usize>, Vec<f32>)> {
        let id = src
            .find(n)
            .ok_or_else(|| anyhow::anyhow!("coupled {name} has no tensor {n}"))?;
        let t = src.get(id);
        Ok((t.shape().to_vec(), t.to_f32(gpu)?))
    };
    let store = out.store_mut();
    for i in 0..store.entries.len() {
        let ename = store.entries[i].name.clone();
        let want = store.entries[i].value.shape().to_vec();
        let (prefix, field) = ename.rsplit_once('.').unwrap_or((&ename, ""));
        let data: Vec<f32> = if bns.contains(&prefix) {
            let (_, v) = read(&ename)?;
            match field {
                "bias" => v
                    .iter()
                    .map(|b| b - 0.25)
                    .chain(v.iter().map(|b| b + 0.25))
                    .collect(),
                _ => v.iter().chain(v.iter()).copied().collect(),
            }
        } else if layers.contains(&prefix) && field == "weight" {
            let (shape, v) = read(&ename)?;
            let row = v.len() / shape[0];
            v.chunks(row)
                .flat_map(|r| r.iter().chain(r.iter()).map(|w| w / 2.0))
                .collect()
        } else if layers.contains(&prefix) && field == "scale" {
            // The coupled forward's own alpha, halved (exact in f32).
            let id = src.find(&format!("{prefix}.weight")).unwrap();
            let alpha = ops::layer_mean_abs(gpu, src.get(id))?.to_f32(gpu)?;
            vec![alpha[0] / 2.0]
        } else {
            read(&ename)?.1
        };
        anyhow::ensure!(
            data.len() == want.iter().product::<usize>(),
            "decoupling {name}: {ename} has {} values for shape {want:?}",
            data.len()
        );
        store.entries[i].value = Tensor::from_f32(gpu, &want, &data)?;
    }
    Ok(out)
}
