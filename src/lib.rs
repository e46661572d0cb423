//! bitprop: train binary neural networks on any GPU through wgpu, with
//! packed-bit XNOR-popcount kernels in the forward pass.

pub mod autograd;
pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod data;
pub mod export;
pub mod gpu;
pub mod methods;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod reproduce;
pub mod tensor;
pub mod train;

pub use gpu::Gpu;
pub use tensor::{DType, Tensor};
