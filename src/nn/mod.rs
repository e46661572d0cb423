//! Layers and models.

pub mod layers;
pub mod models;
pub mod params;

pub use layers::Ctx;
pub use models::{MODEL_NAMES, Model, build_model};
pub use params::{ParamId, ParamKind, ParamStore};
