//! The models bitprop trains, selectable by name, each with a real-valued
//! twin (`-f32`) that keeps the layers but uses real weights and HardTanh.

use crate::autograd::{Var, ops};
use crate::data::rng::SplitMix64;
use crate::gpu::{Gpu, GpuError};
use crate::nn::layers::{BatchNorm, Conv2d, Ctx, Linear, RPReLU, RSign};
use crate::nn::params::{ParamKind, ParamStore};
use crate::nn::quant::{ActRule, Binarization};

/// Names `--model` accepts.
pub const MODEL_NAMES: &[&str] = &[
    "bmlp",
    "bcnn",
    "reactnet-s",
    "bmlp-f32",
    "bcnn-f32",
    "reactnet-s-f32",
];

/// A network: its tensors and its forward pass.
pub trait Model {
    fn name(&self) -> &str;
    fn store(&self) -> &ParamStore;
    fn store_mut(&mut self) -> &mut ParamStore;
    /// Input shape of one image (without the batch dimension).
    fn input_shape(&self) -> Vec<usize>;
    /// Logits `[N, 10]` for images `x` `[N, ...input_shape]`.
    fn forward(&self, ctx: &mut Ctx, x: Var) -> Result<Var, GpuError>;
    /// The rules its binary layers binarize by.
    fn binarization(&self) -> Binarization {
        Binarization::default()
    }
    /// Multiplier of its hidden layers' widths (1: the widths the README lists).
    fn width(&self) -> f64 {
        1.0
    }
}

/// A hidden layer's width `c` scaled by `width` (at least 1).
pub fn scaled_width(c: usize, width: f64) -> usize {
    ((c as f64 * width).round() as usize).max(1)
}

/// Checkpoint metadata key of a non-default width multiplier.
pub const WIDTH_METADATA_KEY: &str = "width";

/// The width multiplier in checkpoint metadata (absent: 1).
pub fn width_from_metadata(
    meta: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<f64> {
    match meta.get(WIDTH_METADATA_KEY) {
        None => Ok(1.0),
        Some(s) => s
            .parse::<f64>()
            .ok()
            .filter(|w| w.is_finite() && *w > 0.0)
            .ok_or_else(|| {
                anyhow::anyhow!("checkpoint metadata 'width' is not a positive number: '{s}'")
            }),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(
        "unknown model '{0}': expected one of bmlp, bcnn, reactnet-s, bmlp-f32, bcnn-f32, reactnet-s-f32"
    )]
    Unknown(String),
    #[error(transparent)]
    Gpu(#[from] GpuError),
}

/// Builds a model by name with seeded initial weights and the plain
/// binarization rules.
pub fn build_model(gpu: &Gpu, name: &str, seed: u64) -> Result<Box<dyn Model>, ModelError> {
    build_model_with(gpu, name, seed, Binarization::default())
}

/// [`build_model`] with the given binarization rules.
pub fn build_model_with(
    gpu: &Gpu,
    name: &str,
    seed: u64,
    bin: Binarization,
) -> Result<Box<dyn Model>, ModelError> {
    build_model_sized(gpu, name, seed, bin, 1.0)
}

/// [`build_model_with`] with every hidden layer's width multiplied by
/// `width` (smaller networks for quick experiments).
pub fn build_model_sized(
    gpu: &Gpu,
    name: &str,
    seed: u64,
    bin: Binarization,
    width: f64,
) -> Result<Box<dyn Model>, ModelError> {
    let (base, binary) = match name.strip_suffix("-f32") {
        Some(b) => (b, false),
        None => (name, true),
    };
    let mut rng = SplitMix64::new(seed).fork(0x1417);
    // BinaryDuo's activation rules come with their own (narrower, or
    // decoupled) networks.
    if matches!(bin.acts, ActRule::Ternary | ActRule::Decoupled01) {
        return crate::nn::duo::build(gpu, name, &mut rng, bin);
    }
    Ok(match base {
        "bmlp" => Box::new(Bmlp::new(gpu, name, binary, width, &mut rng, bin)?),
        "bcnn" => Box::new(Bcnn::new(gpu, name, binary, width, &mut rng, bin)?),
        "reactnet-s" => Box::new(ReactNetS::new(gpu, name, binary, width, &mut rng, bin)?),
        _ => return Err(ModelError::Unknown(name.to_string())),
    })
}

/// The activation between layers: sign with the clipped STE in a BNN,
/// HardTanh in the real-valued twin. `site` names the layer it feeds
/// (the key of its `act_saturation`).
fn activate(ctx: &mut Ctx, x: Var, binary: bool, site: &str) -> Result<Var, GpuError> {
    ctx.record_saturation(site, x, None)?;
    if !binary {
        return ops::hardtanh(ctx.tape, x, -1.0, 1.0);
    }
    match ctx.bin.acts {
        ActRule::ClippedSte => ops::sign_ste(ctx.tape, x),
        // ReCU: divided by the per-sample std in training; the same sign in eval.
        ActRule::RecuStd if ctx.train => crate::autograd::recu::std_sign(ctx.tape, x, None),
        ActRule::RecuStd => ops::sign_ste(ctx.tape, x),
        ActRule::HardTanh => ops::hardtanh(ctx.tape, x, -1.0, 1.0),
        rule => Err(GpuError::Unsupported(format!(
            "activation rule {rule:?} is not implemented for this model"
        ))),
    }
}

/// Batch norm, then [`activate`]: in a BNN's training pass with the
/// clipped STE, one op ([`BatchNorm::forward_sign_ste`]) that never stores
/// the normalised values and needs no activation pass either way (unless
/// `ctx.fuse_norm_sign` is cleared).
fn norm_activate(
    ctx: &mut Ctx,
    bn: &BatchNorm,
    x: Var,
    binary: bool,
    site: &str,
) -> Result<Var, GpuError> {
    if binary && ctx.train && ctx.fuse_norm_sign && ctx.bin.acts == ActRule::ClippedSte {
        return bn.forward_sign_ste(ctx, x, site);
    }
    let h = bn.forward(ctx, x)?;
    activate(ctx, h, binary, site)
}

/// `bmlp`: fc1 784->1024 (binary weights, real input), bn1, sign; fc2
/// 1024->1024, bn2, sign; fc3 1024->10, bn3 on the logits. No biases.
pub struct Bmlp {
    name: String,
    bin: Binarization,
    width: f64,
    binary: bool,
    store: ParamStore,
    fc1: Linear,
    bn1: BatchNorm,
    fc2: Linear,
    bn2: BatchNorm,
    fc3: Linear,
    bn3: BatchNorm,
}

impl Bmlp {
    pub fn new(
        gpu: &Gpu,
        name: &str,
        binary: bool,
        width: f64,
        rng: &mut SplitMix64,
        bin: Binarization,
    ) -> Result<Bmlp, GpuError> {
        // Layers read the rules to create the tensors a rule needs.
        let mut s = ParamStore {
            bin,
            ..ParamStore::default()
        };
        let hidden = scaled_width(1024, width);
        let fc1 = Linear::new(
            gpu,
            &mut s,
            rng,
            "fc1",
            784,
            hidden,
            binary,
            ParamKind::Kernel,
        )?;
        let bn1 = BatchNorm::new(gpu, &mut s, "bn1", hidden)?;
        let fc2 = Linear::new(
            gpu,
            &mut s,
            rng,
            "fc2",
            hidden,
            hidden,
            binary,
            ParamKind::Kernel,
        )?;
        let bn2 = BatchNorm::new(gpu, &mut s, "bn2", hidden)?;
        let fc3 = Linear::new(
            gpu,
            &mut s,
            rng,
            "fc3",
            hidden,
            10,
            binary,
            ParamKind::Classifier,
        )?;
        let bn3 = BatchNorm::new(gpu, &mut s, "bn3", 10)?;
        Ok(Bmlp {
            name: name.to_string(),
            bin,
            width,
            binary,
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

impl Model for Bmlp {
    fn name(&self) -> &str {
        &self.name
    }
    fn binarization(&self) -> Binarization {
        self.bin
    }
    fn width(&self) -> f64 {
        self.width
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
        let h = norm_activate(ctx, &self.bn1, h, self.binary, "fc2")?;
        let h = self.fc2.forward(ctx, h)?;
        let h = norm_activate(ctx, &self.bn2, h, self.binary, "fc3")?;
        let h = self.fc3.forward(ctx, h)?;
        self.bn3.forward(ctx, h)
    }
}

/// `bcnn`: conv1 1->64 3x3 pad 1 (real input and weights), bn1, sign; conv2
/// 64->128 (binary), max pool, bn2, sign; conv3 128->128 (binary), max pool,
/// bn3, sign; flatten; fc 6272->10 (binary), bn4.
pub struct Bcnn {
    name: String,
    bin: Binarization,
    width: f64,
    binary: bool,
    store: ParamStore,
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    conv3: Conv2d,
    bn3: BatchNorm,
    fc: Linear,
    bn4: BatchNorm,
}

impl Bcnn {
    pub fn new(
        gpu: &Gpu,
        name: &str,
        binary: bool,
        width: f64,
        rng: &mut SplitMix64,
        bin: Binarization,
    ) -> Result<Bcnn, GpuError> {
        // Layers read the rules to create the tensors a rule needs.
        let mut s = ParamStore {
            bin,
            ..ParamStore::default()
        };
        let (c1, c2) = (scaled_width(64, width), scaled_width(128, width));
        let conv1 = Conv2d::new(gpu, &mut s, rng, "conv1", 1, c1, 3, 1, 1, false)?;
        let bn1 = BatchNorm::new(gpu, &mut s, "bn1", c1)?;
        let conv2 = Conv2d::new(gpu, &mut s, rng, "conv2", c1, c2, 3, 1, 1, binary)?;
        let bn2 = BatchNorm::new(gpu, &mut s, "bn2", c2)?;
        let conv3 = Conv2d::new(gpu, &mut s, rng, "conv3", c2, c2, 3, 1, 1, binary)?;
        let bn3 = BatchNorm::new(gpu, &mut s, "bn3", c2)?;
        let fc = Linear::new(
            gpu,
            &mut s,
            rng,
            "fc",
            c2 * 49,
            10,
            binary,
            ParamKind::Classifier,
        )?;
        let bn4 = BatchNorm::new(gpu, &mut s, "bn4", 10)?;
        Ok(Bcnn {
            name: name.to_string(),
            bin,
            width,
            binary,
            store: s,
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

impl Model for Bcnn {
    fn name(&self) -> &str {
        &self.name
    }
    fn binarization(&self) -> Binarization {
        self.bin
    }
    fn width(&self) -> f64 {
        self.width
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
        let h = norm_activate(ctx, &self.bn1, h, self.binary, "conv2")?;
        let h = self.conv2.forward(ctx, h)?;
        let h = ops::max_pool2x2(ctx.tape, h)?;
        let h = norm_activate(ctx, &self.bn2, h, self.binary, "conv3")?;
        let h = self.conv3.forward(ctx, h)?;
        let h = ops::max_pool2x2(ctx.tape, h)?;
        let h = norm_activate(ctx, &self.bn3, h, self.binary, "fc")?;
        let features = ctx.tape.value(h).shape()[1..].iter().product();
        let h = ops::reshape(ctx.tape, h, &[n, features]);
        let h = self.fc.forward(ctx, h)?;
        self.bn4.forward(ctx, h)
    }
}

/// One ReActNet basic block at constant width: RSign -> binary conv -> BN
/// -> + x -> RPReLU, with a 2x2 average-pool shortcut when the conv has stride 2.
struct ReactBlock {
    /// `act_saturation` key: the block's conv, which the sign feeds.
    site: String,
    sign: Option<RSign>,
    conv: Conv2d,
    bn: BatchNorm,
    act: RPReLU,
    downsample: bool,
}

impl ReactBlock {
    #[allow(clippy::too_many_arguments)]
    fn new(
        gpu: &Gpu,
        s: &mut ParamStore,
        rng: &mut SplitMix64,
        name: &str,
        c: usize,
        k: usize,
        stride: usize,
        binary: bool,
    ) -> Result<ReactBlock, GpuError> {
        Ok(ReactBlock {
            site: format!("{name}.conv"),
            sign: if binary {
                Some(RSign::new(gpu, s, &format!("{name}.rsign"), c)?)
            } else {
                None
            },
            conv: Conv2d::new(
                gpu,
                s,
                rng,
                &format!("{name}.conv"),
                c,
                c,
                k,
                stride,
                k / 2,
                binary,
            )?,
            bn: BatchNorm::new(gpu, s, &format!("{name}.bn"), c)?,
            act: RPReLU::new(gpu, s, &format!("{name}.rprelu"), c)?,
            downsample: stride == 2,
        })
    }

    fn forward(&self, ctx: &mut Ctx, x: Var) -> Result<Var, GpuError> {
        let h = match &self.sign {
            // Real activations (weights-first step 1): HardTanh, threshold unused.
            Some(_) if ctx.bin.acts == ActRule::HardTanh => {
                ctx.record_saturation(&self.site, x, None)?;
                ops::hardtanh(ctx.tape, x, -1.0, 1.0)?
            }
            Some(s) => {
                let a = ctx.param(s.bias);
                ctx.record_saturation(&self.site, x, Some(a))?;
                s.forward(ctx, x)?
            }
            None => {
                ctx.record_saturation(&self.site, x, None)?;
                ops::hardtanh(ctx.tape, x, -1.0, 1.0)?
            }
        };
        let h = self.conv.forward(ctx, h)?;
        let h = self.bn.forward(ctx, h)?;
        let shortcut = if self.downsample {
            ops::avg_pool2x2(ctx.tape, x)?
        } else {
            x
        };
        let h = ops::add(ctx.tape, h, shortcut)?;
        self.act.forward(ctx, h)
    }
}

/// `reactnet-s`: a small ReActNet for 28x28 images. A real 3x3 stem conv
/// 1->32 with BN, then ReActNet blocks (binary 3x3 then binary 1x1, each
/// with BN, real shortcut and RPReLU) at width 32, a stride-2 3x3 block
/// (28->14, avg-pool shortcut), a 1x1 block, a second stride-2 block
/// (14->7), a 1x1 block, global average pooling, and a real linear
/// classifier 32->10 with bias as in ReActNet.
pub struct ReactNetS {
    name: String,
    bin: Binarization,
    width: f64,
    store: ParamStore,
    stem: Conv2d,
    stem_bn: BatchNorm,
    blocks: Vec<ReactBlock>,
    fc: Linear,
    fc_bias: crate::nn::params::ParamId,
}

const REACT_WIDTH: usize = 32;

impl ReactNetS {
    pub fn new(
        gpu: &Gpu,
        name: &str,
        binary: bool,
        width: f64,
        rng: &mut SplitMix64,
        bin: Binarization,
    ) -> Result<ReactNetS, GpuError> {
        // Layers read the rules to create the tensors a rule needs.
        let mut s = ParamStore {
            bin,
            ..ParamStore::default()
        };
        let c = scaled_width(REACT_WIDTH, width);
        let stem = Conv2d::new(gpu, &mut s, rng, "stem.conv", 1, c, 3, 1, 1, false)?;
        let stem_bn = BatchNorm::new(gpu, &mut s, "stem.bn", c)?;
        let layout = [(3, 1), (1, 1), (3, 2), (1, 1), (3, 2), (1, 1)];
        let mut blocks = Vec::new();
        for (i, (k, stride)) in layout.into_iter().enumerate() {
            blocks.push(ReactBlock::new(
                gpu,
                &mut s,
                rng,
                &format!("block{i}"),
                c,
                k,
                stride,
                binary,
            )?);
        }
        let fc = Linear::new(gpu, &mut s, rng, "fc", c, 10, false, ParamKind::Classifier)?;
        let bound = 1.0 / (c as f32).sqrt();
        let b: Vec<f32> = (0..10).map(|_| rng.uniform(-bound, bound)).collect();
        let fc_bias = s.add(gpu, "fc.bias", ParamKind::Bias, &[10], &b)?;
        Ok(ReactNetS {
            name: name.to_string(),
            bin,
            width,
            store: s,
            stem,
            stem_bn,
            blocks,
            fc,
            fc_bias,
        })
    }
}

impl Model for ReactNetS {
    fn name(&self) -> &str {
        &self.name
    }
    fn binarization(&self) -> Binarization {
        self.bin
    }
    fn width(&self) -> f64 {
        self.width
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
        let mut h = self.stem.forward(ctx, x)?;
        h = self.stem_bn.forward(ctx, h)?;
        for b in &self.blocks {
            h = b.forward(ctx, h)?;
        }
        let h = ops::global_avg_pool(ctx.tape, h)?;
        let w = ctx.param(self.fc.weight);
        let b = ctx.param(self.fc_bias);
        ops::linear(ctx.tape, h, w, Some(b))
    }
}
