//! bitprop: train binary neural networks on any GPU through wgpu, with
//! packed-bit XNOR-popcount kernels in the forward pass.

pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod data;
pub mod gpu;
pub mod ops;
pub mod tensor;

pub use gpu::Gpu;
pub use tensor::{DType, Tensor};
