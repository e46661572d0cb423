//! The GPU runtime: device, buffer pool, pipeline cache, and the one launch path.
//!
//! Every op records its dispatches into the current batch (one command
//! encoder); the batch is submitted only when something must be read back,
//! when its parameter arena is full, or on `flush`. Nothing in a training
//! step blocks on the device.

mod device;
mod kernel;
mod pipelines;
mod pool;
mod readback;

pub use device::{
    AdapterDescription, BackendChoice, DeviceOptions, choose_adapter, device_type_name,
    list_adapters,
};
pub use kernel::{Access, Kernel};
pub use pool::{BufferPool, PooledBuffer};
pub use readback::Readback;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use pipelines::PipelineCache;

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error(
        "no GPU adapter found for backend '{backend}'{}; adapters seen: [{}]. Install a Vulkan driver; with no GPU, Mesa's software driver lavapipe works: `apt-get install mesa-vulkan-drivers` (and `libegl1 libegl-mesa0 libgles2` for the GL backend)",
        .adapter.as_ref().map(|a| format!(" matching '{a}'")).unwrap_or_default(),
        .seen.join(", ")
    )]
    NoAdapter {
        backend: String,
        adapter: Option<String>,
        seen: Vec<String>,
    },
    #[error("unknown backend '{0}': expected auto, vulkan, metal, dx12 or gl")]
    BadBackend(String),
    #[error("could not open the device on adapter '{adapter}': {reason}")]
    RequestDevice { adapter: String, reason: String },
    #[error(
        "tensor of shape {shape:?} needs {bytes} bytes, more than this adapter allows in one storage binding ({limit} bytes)"
    )]
    TooLarge {
        shape: Vec<usize>,
        bytes: u64,
        limit: u64,
    },
    #[error("reading back from the device failed: {0}")]
    Readback(String),
    #[error("{0}")]
    Unsupported(String),
}

/// Bytes of parameters one batch can hold before it is submitted.
const ARENA_BYTES: u64 = 256 * 1024;

/// One buffer binding: `size` bytes of `buffer` from `offset`.
#[derive(Clone, Copy)]
pub struct Binding<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub offset: u64,
    pub size: u64,
}

struct Batch {
    encoder: Option<wgpu::CommandEncoder>,
    params: Vec<u8>,
    dispatches: u64,
    /// Read-backs whose copies are in this batch; mapped after submit.
    pending_maps: Vec<Arc<readback::Slot>>,
    /// Kernels of this batch's timed dispatches, in query order.
    timed: Vec<(&'static str, &'static str, u64)>,
}

/// Per-kernel device times gathered while profiling is on.
#[derive(Default)]
struct Profiler {
    query_set: Option<wgpu::QuerySet>,
    resolve: Option<wgpu::Buffer>,
    records: Vec<ProfileRecord>,
}

/// One timed dispatch.
#[derive(Clone, Debug)]
pub struct ProfileRecord {
    /// Shader file under `shaders/`, e.g. `gemm/xnor_gemm.wgsl`; its folder is the kernel family.
    pub file: &'static str,
    pub entry: &'static str,
    pub ms: f64,
    /// Bytes of the storage buffers the dispatch binds: what it may read
    /// and write, an upper bound on the bytes it moves.
    pub bytes: u64,
}

impl ProfileRecord {
    /// The kernel family: the shader's folder.
    pub fn family(&self) -> &'static str {
        self.file.split('/').next().unwrap_or(self.file)
    }
}

const MAX_TIMED: u32 = 1024;

/// An open device and everything kernels need to run on it.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    pool: Arc<BufferPool>,
    pipelines: PipelineCache,
    arena: wgpu::Buffer,
    uniform_align: u64,
    batch: Mutex<Batch>,
    profiler: Mutex<Option<Profiler>>,
    dispatch_total: std::sync::atomic::AtomicU64,
    grid_limit: std::sync::atomic::AtomicU32,
    /// Set by [`Gpu::use_gpu_forms`]: kernels take their GPU forms here too.
    gpu_forms: std::sync::atomic::AtomicBool,
    /// Choices made by autotuning (kernel family -> serialized choice).
    pub(crate) tuned: Mutex<std::collections::HashMap<String, String>>,
}

impl Gpu {
    /// Opens the adapter chosen by `BITPROP_BACKEND` / `BITPROP_ADAPTER`.
    pub fn from_env() -> Result<Arc<Gpu>, GpuError> {
        Gpu::new(&DeviceOptions::from_env()?)
    }

    pub fn new(options: &DeviceOptions) -> Result<Arc<Gpu>, GpuError> {
        let adapter = choose_adapter(options)?;
        Gpu::open(adapter)
    }

    /// Opens a device on `adapter` with every limit the adapter offers
    /// (the defaults would cap a storage binding at 128 MiB).
    pub fn open(adapter: wgpu::Adapter) -> Result<Arc<Gpu>, GpuError> {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let wanted = wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SUBGROUP;
        let features = adapter.features() & wanted;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("bitprop"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| GpuError::RequestDevice {
            adapter: info.name.clone(),
            reason: e.to_string(),
        })?;
        let arena = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("bitprop.params"),
            size: ARENA_BYTES,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let uniform_align = limits.min_uniform_buffer_offset_alignment.max(16) as u64;
        Ok(Arc::new(Gpu {
            pool: BufferPool::new(device.clone()),
            device,
            queue,
            info,
            limits,
            features,
            pipelines: PipelineCache::default(),
            arena,
            uniform_align,
            batch: Mutex::new(Batch {
                encoder: None,
                params: Vec::new(),
                dispatches: 0,
                pending_maps: Vec::new(),
                timed: Vec::new(),
            }),
            profiler: Mutex::new(None),
            dispatch_total: Default::default(),
            grid_limit: std::sync::atomic::AtomicU32::new(u32::MAX),
            gpu_forms: Default::default(),
            tuned: Mutex::new(std::collections::HashMap::new()),
        }))
    }

    pub fn description(&self) -> String {
        format!(
            "{} ({:?}, {})",
            self.info.name,
            self.info.backend,
            device_type_name(self.info.device_type)
        )
    }

    pub fn pool(&self) -> &Arc<BufferPool> {
        &self.pool
    }

    /// The largest storage binding, and so the largest tensor, in bytes.
    pub fn max_binding_bytes(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    pub fn has_timestamps(&self) -> bool {
        self.features.contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Whether the adapter is a CPU (lavapipe, llvmpipe): a few cores that a
    /// handful of workgroups fill, where storage accesses run lane by lane
    /// and barriers switch lanes; kernel choices that depend on it ask here.
    pub fn is_cpu(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// Whether kernels take the forms written for CPU adapters (runs of
    /// values a lane, whole planes a lane, a lane's columns side by side,
    /// no K splits): on CPU adapters, unless [`Gpu::use_gpu_forms`] asked
    /// for the GPU forms.
    pub fn cpu_forms(&self) -> bool {
        self.is_cpu() && !self.gpu_forms.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Makes kernels take their GPU forms on this adapter too, so that a
    /// CPU adapter can test them (the test suite's BITPROP_TEST_GPU_FORMS).
    pub fn use_gpu_forms(&self, on: bool) {
        self.gpu_forms
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether kernels may use subgroup operations on subgroups of at least
    /// `lanes` invocations.
    pub fn has_subgroups(&self, lanes: u32) -> bool {
        self.features.contains(wgpu::Features::SUBGROUP) && self.info.subgroup_min_size >= lanes
    }

    /// Dispatches recorded since the device was opened.
    pub fn dispatch_count(&self) -> u64 {
        self.dispatch_total
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Workgroup counts for `groups` workgroups laid out in rows of at most
    /// the per-dimension limit; kernels rebuild the linear index from
    /// `workgroup_id` and `num_workgroups`.
    pub fn grid(&self, groups: u64) -> [u32; 3] {
        let max =
            self.limits
                .max_compute_workgroups_per_dimension
                .min(self.grid_limit.load(std::sync::atomic::Ordering::Relaxed)) as u64;
        let groups = groups.max(1);
        if groups <= max {
            [groups as u32, 1, 1]
        } else {
            let rows = groups.div_ceil(max);
            [groups.div_ceil(rows) as u32, rows as u32, 1]
        }
    }

    /// A key that names this adapter and driver, for caches of tuned choices.
    pub fn adapter_key(&self) -> String {
        format!(
            "{}|{:?}|{}|{}",
            self.info.name, self.info.backend, self.info.driver, self.info.driver_info
        )
    }

    /// Caps workgroups per grid row below the adapter's limit, so tests can
    /// exercise multi-row dispatches on small sizes.
    pub fn set_grid_limit(&self, limit: u32) {
        self.grid_limit
            .store(limit.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// The one way to run a kernel: the pipeline from the cache, `params` in
    /// binding 0, `buffers` in bindings 1.., `groups` workgroups. Recorded
    /// into the current batch, not submitted.
    pub fn launch<P: bytemuck::Pod>(
        &self,
        kernel: &Kernel,
        constants: &[(&str, f64)],
        params: &P,
        buffers: &[Binding],
        groups: [u32; 3],
    ) {
        assert_eq!(
            buffers.len(),
            kernel.bindings.len(),
            "{}::{} takes {} storage bindings",
            kernel.file,
            kernel.entry,
            kernel.bindings.len()
        );
        let cached = self.pipelines.get(&self.device, kernel, constants);
        let bytes = bytemuck::bytes_of(params);
        let mut batch = self.batch.lock().unwrap();
        let offset = (batch.params.len() as u64).next_multiple_of(self.uniform_align);
        let size = (bytes.len() as u64).max(16).next_multiple_of(16);
        if offset + size > ARENA_BYTES {
            self.submit_locked(&mut batch);
            drop(batch);
            return self.launch(kernel, constants, params, buffers, groups);
        }
        batch.params.resize(offset as usize, 0);
        batch.params.extend_from_slice(bytes);
        batch.params.resize((offset + size) as usize, 0);

        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &self.arena,
                offset,
                size: wgpu::BufferSize::new(size),
            }),
        }];
        for (i, b) in buffers.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: b.buffer,
                    offset: b.offset,
                    size: wgpu::BufferSize::new(b.size.max(4).next_multiple_of(4)),
                }),
            });
        }
        // A bind group is WebGPU's descriptor set: the buffers this dispatch sees.
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.entry),
            layout: &cached.layout,
            entries: &entries,
        });
        let mut profiler = self.profiler.lock().unwrap();
        let bytes: u64 = buffers.iter().map(|b| b.size).sum();
        let timed_index = match profiler.as_mut() {
            Some(p) if p.query_set.is_some() && (batch.timed.len() as u32) < MAX_TIMED => {
                batch.timed.push((kernel.file, kernel.entry, bytes));
                Some(batch.timed.len() as u32 - 1)
            }
            _ => None,
        };
        let encoder = self.encoder(&mut batch);
        {
            let timestamp_writes = match (timed_index, profiler.as_ref()) {
                (Some(i), Some(p)) => Some(wgpu::ComputePassTimestampWrites {
                    query_set: p.query_set.as_ref().unwrap(),
                    beginning_of_pass_write_index: Some(2 * i),
                    end_of_pass_write_index: Some(2 * i + 1),
                }),
                _ => None,
            };
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(kernel.entry),
                timestamp_writes,
            });
            pass.set_pipeline(&cached.pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        }
        if let Some(p) = profiler.as_mut()
            && p.query_set.is_none()
        {
            // Without timestamp queries each dispatch is timed by wall clock.
            drop(batch);
            let t = Instant::now();
            self.flush_and_wait();
            p.records.push(ProfileRecord {
                file: kernel.file,
                entry: kernel.entry,
                ms: t.elapsed().as_secs_f64() * 1e3,
                bytes,
            });
            return;
        }
        batch.dispatches += 1;
        self.dispatch_total
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn encoder<'a>(&self, batch: &'a mut Batch) -> &'a mut wgpu::CommandEncoder {
        batch.encoder.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("bitprop.batch"),
                })
        })
    }

    /// Records a command on the batch's encoder (copies, clears).
    pub(crate) fn with_encoder<R>(&self, f: impl FnOnce(&mut wgpu::CommandEncoder) -> R) -> R {
        let mut batch = self.batch.lock().unwrap();
        f(self.encoder(&mut batch))
    }

    /// Fills `buffer[0..bytes]` with zeros, in order with the batch's dispatches.
    pub fn clear(&self, buffer: &wgpu::Buffer, bytes: u64) {
        let bytes = bytes.next_multiple_of(4);
        self.with_encoder(|e| e.clear_buffer(buffer, 0, Some(bytes)));
    }

    /// Copies `bytes` of `src` into `dst` at `dst_offset`, in order with the
    /// batch's dispatches.
    pub fn copy(&self, src: &wgpu::Buffer, dst: &wgpu::Buffer, dst_offset: u64, bytes: u64) {
        self.with_encoder(|e| e.copy_buffer_to_buffer(src, 0, dst, dst_offset, bytes));
    }

    /// Copies `data` into `buffer` in order with the batch's dispatches
    /// (`Queue::write_buffer` would run before the whole batch instead).
    pub fn upload(&self, buffer: &wgpu::Buffer, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let padded = (data.len() as u64).next_multiple_of(4);
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("bitprop.upload"),
            size: padded,
            usage: wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: true,
        });
        {
            let mut view = staging
                .slice(..)
                .get_mapped_range_mut()
                .expect("a buffer mapped at creation is mappable");
            let mut padded_data = data.to_vec();
            padded_data.resize(padded as usize, 0);
            view.copy_from_slice(&padded_data);
        }
        staging.unmap();
        self.with_encoder(|e| e.copy_buffer_to_buffer(&staging, 0, buffer, 0, padded));
    }

    /// Submits the batch without waiting for it.
    pub fn flush(&self) {
        let mut batch = self.batch.lock().unwrap();
        self.submit_locked(&mut batch);
    }

    /// Submits the batch and waits until the device is idle.
    pub fn flush_and_wait(&self) {
        self.flush();
        let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
    }

    fn submit_locked(&self, batch: &mut Batch) {
        if batch.encoder.is_none() && batch.params.is_empty() {
            return;
        }
        let mut encoder = batch.encoder.take().unwrap_or_else(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
        });
        if !batch.params.is_empty() {
            self.queue.write_buffer(&self.arena, 0, &batch.params);
            batch.params.clear();
        }
        let timed = std::mem::take(&mut batch.timed);
        let mut resolve_target = None;
        if !timed.is_empty() {
            let profiler = self.profiler.lock().unwrap();
            if let Some(p) = profiler.as_ref()
                && let (Some(qs), Some(resolve)) = (&p.query_set, &p.resolve)
            {
                let n = 2 * timed.len() as u32;
                encoder.resolve_query_set(qs, 0..n, resolve, 0);
                let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("bitprop.timestamps"),
                    size: n as u64 * 8,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                encoder.copy_buffer_to_buffer(resolve, 0, &staging, 0, n as u64 * 8);
                resolve_target = Some(staging);
            }
        }
        self.queue.submit(Some(encoder.finish()));
        batch.dispatches = 0;
        for slot in batch.pending_maps.drain(..) {
            slot.map();
        }
        if let Some(staging) = resolve_target {
            // Profiling is allowed to block: read this batch's timestamps now.
            let period = self.queue.get_timestamp_period() as f64;
            staging.slice(..).map_async(wgpu::MapMode::Read, |_| {});
            let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
            let view = staging
                .slice(..)
                .get_mapped_range()
                .expect("timestamps were mapped");
            let ticks: &[u64] = bytemuck::cast_slice(&view);
            let mut profiler = self.profiler.lock().unwrap();
            if let Some(p) = profiler.as_mut() {
                for (i, (file, entry, bytes)) in timed.iter().enumerate() {
                    let dt = ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * period;
                    p.records.push(ProfileRecord {
                        file,
                        entry,
                        ms: dt / 1e6,
                        bytes: *bytes,
                    });
                }
            }
        }
    }

    /// Starts recording per-dispatch times (timestamp queries where the
    /// adapter has them, else wall time around a blocking submit per dispatch).
    pub fn start_profiling(&self) {
        self.flush_and_wait();
        let mut p = Profiler::default();
        if self.has_timestamps() {
            p.query_set = Some(self.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("bitprop.profile"),
                ty: wgpu::QueryType::Timestamp,
                count: 2 * MAX_TIMED,
            }));
            p.resolve = Some(self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("bitprop.profile.resolve"),
                size: 2 * MAX_TIMED as u64 * 8,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }));
        }
        *self.profiler.lock().unwrap() = Some(p);
    }

    /// Stops profiling; returns (entry point, milliseconds) per dispatch, and
    /// whether the times came from timestamp queries.
    pub fn stop_profiling(&self) -> (Vec<ProfileRecord>, bool) {
        self.flush_and_wait();
        let p = self.profiler.lock().unwrap().take().unwrap_or_default();
        let timestamps = p.query_set.is_some();
        (p.records, timestamps)
    }

    /// Dispatches recorded into the current batch and not yet submitted.
    pub fn pending_dispatches(&self) -> u64 {
        self.batch.lock().unwrap().dispatches
    }
}
