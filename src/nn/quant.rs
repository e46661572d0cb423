//! How a network's binary layers derive their binary values: the weight
//! rule and the activation rule. It is part of a model's definition (saved
//! in checkpoint metadata under `binarization`), so that eval, export and
//! resume rebuild the network that was trained. Training methods choose it
//! (e.g. ReCU's clamp, AdamBNN's real-weight first step, BinaryDuo's
//! ternary activations); the plain rules are the defaults.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How a binary layer's weights are derived from its latent weights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "rule")]
pub enum WeightRule {
    /// `alpha_o * sign(W)`, `alpha_o` = mean abs(W) per output channel,
    /// detached; latent gradient masked by `1[abs(W) <= 1]`.
    #[default]
    ChannelMeanAbs,
    /// The latent weights as they are (AdamBNN's first step: binary
    /// activations, real weights).
    Real,
    /// One scalar mean abs(W) per layer times sign(W) (BinaryDuo).
    LayerMeanAbs,
    /// ReCU: per-channel standardization with `b_star`, rectified clamp at
    /// Q(tau), sign with identity STE, per-output-channel scale (learnable,
    /// or the analytic mean abs of the clamped weights).
    Recu { b_star: f32, learnable_scale: bool },
}

/// How a binary layer's input activations are binarized.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "rule")]
pub enum ActRule {
    /// sign(x) with the clipped STE `g * 1[abs(x) <= 1]`.
    #[default]
    ClippedSte,
    /// sign(x) with ApproxSign's backward `g * max(0, 2 - 2 abs(x))`.
    ApproxSign,
    /// BinaryDuo's coupled ternary: HardTanh(0, 1) then round(2x)/2 in
    /// {0, 0.5, 1}, clipped STE.
    Ternary,
    /// ReCU: divided by the per-sample std over (C, H, W) in training, then
    /// sign with ApproxSign's backward.
    RecuStd,
    /// Real activations: HardTanh(-1, 1) as in the `-f32` twins (AdamBNN's
    /// weights-first step 1: binary weights, real activations).
    HardTanh,
    /// BinaryDuo's decoupled network: each batch norm that fed a ternary
    /// activation sees its C input channels twice (2C channels) and feeds
    /// `1[x >= 0.5]` in {0, 1} (clipped STE on [0, 1]); the next binary
    /// layer runs on AND-popcount (`crate::nn::duo`).
    Decoupled01,
}

/// The weight and activation rules of a model's binary layers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Binarization {
    pub weights: WeightRule,
    pub acts: ActRule,
}

/// Checkpoint metadata key that holds a non-default [`Binarization`] as JSON.
pub const METADATA_KEY: &str = "binarization";

impl Binarization {
    pub fn is_default(&self) -> bool {
        *self == Binarization::default()
    }

    /// Adds this binarization to checkpoint metadata (nothing for the default).
    pub fn write_metadata(&self, meta: &mut BTreeMap<String, String>) {
        if !self.is_default() {
            meta.insert(
                METADATA_KEY.into(),
                serde_json::to_string(self).expect("binarization serializes"),
            );
        }
    }

    /// Reads the binarization from checkpoint metadata (absent: the default).
    pub fn from_metadata(meta: &BTreeMap<String, String>) -> anyhow::Result<Binarization> {
        match meta.get(METADATA_KEY) {
            None => Ok(Binarization::default()),
            Some(s) => serde_json::from_str(s).map_err(|e| {
                anyhow::anyhow!("checkpoint metadata '{METADATA_KEY}' is not valid: {e} ({s})")
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trip_and_default_absent() {
        let mut meta = BTreeMap::new();
        Binarization::default().write_metadata(&mut meta);
        assert!(meta.is_empty());
        let b = Binarization {
            weights: WeightRule::Recu {
                b_star: 2.0,
                learnable_scale: true,
            },
            acts: ActRule::RecuStd,
        };
        b.write_metadata(&mut meta);
        assert_eq!(Binarization::from_metadata(&meta).unwrap(), b);
        meta.insert(METADATA_KEY.into(), "{\"weights\":3}".into());
        assert!(Binarization::from_metadata(&meta).is_err());
    }
}
