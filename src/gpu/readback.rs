//! Reading device buffers back to the host, blocking or asynchronously.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use super::{Gpu, GpuError};

const WAITING: u8 = 0;
const READY: u8 = 1;
const FAILED: u8 = 2;

/// A staging buffer that a batch copies into; mapped after the batch is submitted.
pub(crate) struct Slot {
    staging: wgpu::Buffer,
    state: Arc<AtomicU8>,
    requested: Mutex<bool>,
}

impl Slot {
    pub(crate) fn map(&self) {
        let state = Arc::clone(&self.state);
        *self.requested.lock().unwrap() = true;
        self.staging
            .slice(..)
            .map_async(wgpu::MapMode::Read, move |r| {
                state.store(if r.is_ok() { READY } else { FAILED }, Ordering::Release);
            });
    }
}

/// The bytes of a buffer as they were when the read was recorded; they
/// arrive after the batch that holds the copy has run on the device.
pub struct Readback {
    slot: Arc<Slot>,
    len: usize,
}

impl Readback {
    /// The bytes if the device has finished, without blocking.
    pub fn try_take(&self, gpu: &Gpu) -> Option<Result<Vec<u8>, GpuError>> {
        let _ = gpu.device.poll(wgpu::PollType::Poll);
        self.take_if_ready()
    }

    /// Waits for the bytes, submitting the batch that holds the copy if needed.
    pub fn wait(&self, gpu: &Gpu) -> Result<Vec<u8>, GpuError> {
        if !*self.slot.requested.lock().unwrap() {
            gpu.flush();
        }
        loop {
            let _ = gpu.device.poll(wgpu::PollType::wait_indefinitely());
            if let Some(r) = self.take_if_ready() {
                return r;
            }
        }
    }

    fn take_if_ready(&self) -> Option<Result<Vec<u8>, GpuError>> {
        match self.slot.state.load(Ordering::Acquire) {
            READY => {
                let data = {
                    let view = self
                        .slot
                        .staging
                        .slice(..)
                        .get_mapped_range()
                        .map_err(|e| GpuError::Readback(e.to_string()));
                    match view {
                        Ok(v) => Ok(v[..self.len].to_vec()),
                        Err(e) => Err(e),
                    }
                };
                self.slot.staging.unmap();
                Some(data)
            }
            FAILED => Some(Err(GpuError::Readback("buffer mapping failed".into()))),
            _ => None,
        }
    }
}

impl Gpu {
    /// Records a copy of `buffer[0..len]` into the batch and returns a handle
    /// that yields the bytes once the batch has run.
    pub fn read_async(&self, buffer: &wgpu::Buffer, len: u64) -> Readback {
        let padded = len.max(4).next_multiple_of(4);
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("bitprop.readback"),
            size: padded,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let slot = Arc::new(Slot {
            staging,
            state: Arc::new(AtomicU8::new(WAITING)),
            requested: Mutex::new(false),
        });
        let mut batch = self.batch.lock().unwrap();
        self.encoder(&mut batch)
            .copy_buffer_to_buffer(buffer, 0, &slot.staging, 0, padded);
        batch.pending_maps.push(Arc::clone(&slot));
        Readback {
            slot,
            len: len as usize,
        }
    }

    /// Blocking read of `buffer[0..len]`.
    pub fn read_bytes(&self, buffer: &wgpu::Buffer, len: u64) -> Result<Vec<u8>, GpuError> {
        self.read_async(buffer, len).wait(self)
    }
}
