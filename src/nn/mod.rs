//! Layers and models.

pub mod duo;
pub mod layers;
pub mod models;
pub mod params;
pub mod quant;
pub mod saturation;

pub use layers::Ctx;
pub use models::{
    MODEL_NAMES, Model, build_model, build_model_sized, build_model_with, width_from_metadata,
};
pub use params::{ParamId, ParamKind, ParamStore};
pub use quant::{ActRule, Binarization, WeightRule};
