//! A buffer pool: training allocates the same shapes every step, so freed
//! buffers go back to a free list keyed by size class and are handed out again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Storage buffers every kernel can read, write and copy.
const USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST)
    .union(wgpu::BufferUsages::UNIFORM);

pub struct BufferPool {
    device: wgpu::Device,
    free: Mutex<HashMap<u64, Vec<wgpu::Buffer>>>,
    in_use: AtomicU64,
    allocated: AtomicU64,
}

/// Four size classes per power of two: at most 25% slack, few distinct sizes.
pub(crate) fn size_class(bytes: u64) -> u64 {
    let bytes = bytes.max(256);
    let top = 63 - bytes.leading_zeros() as u64;
    let step = 1u64 << top.saturating_sub(2);
    bytes.div_ceil(step) * step
}

impl BufferPool {
    pub fn new(device: wgpu::Device) -> Arc<Self> {
        Arc::new(BufferPool {
            device,
            free: Mutex::new(HashMap::new()),
            in_use: AtomicU64::new(0),
            allocated: AtomicU64::new(0),
        })
    }

    /// A buffer of at least `bytes` bytes; its contents are unspecified.
    pub fn take(self: &Arc<Self>, bytes: u64) -> PooledBuffer {
        let class = size_class(bytes);
        let reused = self
            .free
            .lock()
            .unwrap()
            .get_mut(&class)
            .and_then(|v| v.pop());
        let buffer = reused.unwrap_or_else(|| {
            self.allocated.fetch_add(class, Ordering::Relaxed);
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("bitprop.pool"),
                size: class,
                usage: USAGE,
                mapped_at_creation: false,
            })
        });
        self.in_use.fetch_add(class, Ordering::Relaxed);
        PooledBuffer {
            buffer: Some(buffer),
            class,
            pool: Arc::clone(self),
        }
    }

    /// Bytes held by live tensors.
    pub fn bytes_in_use(&self) -> u64 {
        self.in_use.load(Ordering::Relaxed)
    }

    /// Bytes allocated from the device, free lists included.
    pub fn bytes_allocated(&self) -> u64 {
        self.allocated.load(Ordering::Relaxed)
    }
}

/// A pool buffer; dropping it returns it to the free list.
pub struct PooledBuffer {
    buffer: Option<wgpu::Buffer>,
    class: u64,
    pool: Arc<BufferPool>,
}

impl PooledBuffer {
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("buffer present until drop")
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let Some(b) = self.buffer.take() {
            self.pool.in_use.fetch_sub(self.class, Ordering::Relaxed);
            self.pool
                .free
                .lock()
                .unwrap()
                .entry(self.class)
                .or_default()
                .push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn size_classes_cover_and_bound_slack() {
        for bytes in [
            1u64,
            255,
            256,
            257,
            1000,
            4096,
            5000,
            1 << 20,
            (1 << 20) + 1,
        ] {
            let c = size_class(bytes);
            assert!(c >= bytes, "{bytes} -> {c}");
            assert!(c <= (bytes.max(256) * 5).div_ceil(4), "{bytes} -> {c}");
        }
        assert_eq!(size_class(5000), size_class(5100));
    }
}
