//! GPU tensors: a shape, an element type and a pooled device buffer.

use std::sync::Arc;

use crate::gpu::{Binding, Gpu, GpuError, PooledBuffer};

/// Element type of a tensor's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    /// 32-bit words: packed sign bits, indices or counts.
    U32,
}

/// A dense row-major tensor on the device. Cloning shares the buffer.
#[derive(Clone)]
pub struct Tensor {
    buf: Arc<PooledBuffer>,
    shape: Vec<usize>,
    dtype: DType,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({:?}, {:?})", self.shape, self.dtype)
    }
}

impl Tensor {
    /// A tensor whose contents are unspecified until a kernel writes them.
    pub fn empty(gpu: &Gpu, shape: &[usize], dtype: DType) -> Result<Tensor, GpuError> {
        let bytes = shape.iter().product::<usize>() as u64 * 4;
        if bytes > gpu.max_binding_bytes() {
            return Err(GpuError::TooLarge {
                shape: shape.to_vec(),
                bytes,
                limit: gpu.max_binding_bytes(),
            });
        }
        Ok(Tensor {
            buf: Arc::new(gpu.pool().take(bytes)),
            shape: shape.to_vec(),
            dtype,
        })
    }

    pub fn zeros(gpu: &Gpu, shape: &[usize], dtype: DType) -> Result<Tensor, GpuError> {
        let t = Tensor::empty(gpu, shape, dtype)?;
        gpu.clear(t.buffer(), t.bytes());
        Ok(t)
    }

    pub fn from_f32(gpu: &Gpu, shape: &[usize], data: &[f32]) -> Result<Tensor, GpuError> {
        assert_eq!(
            shape.iter().product::<usize>(),
            data.len(),
            "shape {shape:?} does not match {} values",
            data.len()
        );
        let t = Tensor::empty(gpu, shape, DType::F32)?;
        gpu.upload(t.buffer(), bytemuck::cast_slice(data));
        Ok(t)
    }

    pub fn from_u32(gpu: &Gpu, shape: &[usize], data: &[u32]) -> Result<Tensor, GpuError> {
        assert_eq!(
            shape.iter().product::<usize>(),
            data.len(),
            "shape {shape:?} does not match {} values",
            data.len()
        );
        let t = Tensor::empty(gpu, shape, DType::U32)?;
        gpu.upload(t.buffer(), bytemuck::cast_slice(data));
        Ok(t)
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Bytes of the tensor's elements (the buffer may be larger).
    pub fn bytes(&self) -> u64 {
        self.numel() as u64 * 4
    }

    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buf.buffer()
    }

    /// The binding a kernel sees: exactly this tensor's elements.
    pub fn binding(&self) -> Binding<'_> {
        Binding {
            buffer: self.buffer(),
            offset: 0,
            size: self.bytes(),
        }
    }

    /// `size` bytes of the tensor's buffer from byte `offset` (a uniform
    /// window); the range must lie within the tensor.
    pub fn window(&self, offset: u64, size: u64) -> Binding<'_> {
        assert!(
            offset + size <= self.bytes(),
            "window {offset}+{size} past the end of {self:?} ({} bytes)",
            self.bytes()
        );
        Binding {
            buffer: self.buffer(),
            offset,
            size,
        }
    }

    /// The same buffer seen with another shape of the same element count.
    pub fn reshape(&self, shape: &[usize]) -> Tensor {
        assert_eq!(
            shape.iter().product::<usize>(),
            self.numel(),
            "cannot reshape {:?} to {shape:?}",
            self.shape
        );
        Tensor {
            buf: Arc::clone(&self.buf),
            shape: shape.to_vec(),
            dtype: self.dtype,
        }
    }

    /// Whether two tensors share one buffer.
    pub fn same_buffer(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.buf, &other.buf)
    }

    /// Blocking read-back as f32 (submits the current batch).
    pub fn to_f32(&self, gpu: &Gpu) -> Result<Vec<f32>, GpuError> {
        let bytes = gpu.read_bytes(self.buffer(), self.bytes())?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Blocking read-back as u32 words.
    pub fn to_u32(&self, gpu: &Gpu) -> Result<Vec<u32>, GpuError> {
        let bytes = gpu.read_bytes(self.buffer(), self.bytes())?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }
}
