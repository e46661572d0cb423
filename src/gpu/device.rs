//! Adapter discovery and choice: which GPU (or software rasterizer) runs the kernels.

use serde::Serialize;
use std::str::FromStr;

use super::GpuError;

/// Which wgpu backend to use. `Auto` tries every backend the build supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BackendChoice {
    #[default]
    Auto,
    Vulkan,
    Metal,
    Dx12,
    Gl,
}

impl BackendChoice {
    /// The wgpu backend set this choice enables.
    pub fn backends(self) -> wgpu::Backends {
        match self {
            BackendChoice::Auto => {
                wgpu::Backends::VULKAN
                    | wgpu::Backends::METAL
                    | wgpu::Backends::DX12
                    | wgpu::Backends::GL
            }
            BackendChoice::Vulkan => wgpu::Backends::VULKAN,
            BackendChoice::Metal => wgpu::Backends::METAL,
            BackendChoice::Dx12 => wgpu::Backends::DX12,
            BackendChoice::Gl => wgpu::Backends::GL,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Vulkan => "vulkan",
            BackendChoice::Metal => "metal",
            BackendChoice::Dx12 => "dx12",
            BackendChoice::Gl => "gl",
        }
    }
}

impl FromStr for BackendChoice {
    type Err = GpuError;
    fn from_str(s: &str) -> Result<Self, GpuError> {
        match s.to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(BackendChoice::Auto),
            "vulkan" | "vk" => Ok(BackendChoice::Vulkan),
            "metal" => Ok(BackendChoice::Metal),
            "dx12" | "d3d12" => Ok(BackendChoice::Dx12),
            "gl" | "gles" | "opengl" => Ok(BackendChoice::Gl),
            other => Err(GpuError::BadBackend(other.to_string())),
        }
    }
}

/// How to pick the adapter: `--backend` / `BITPROP_BACKEND` and `--adapter` / `BITPROP_ADAPTER`.
#[derive(Clone, Debug, Default)]
pub struct DeviceOptions {
    pub backend: BackendChoice,
    /// Case-insensitive substring of the adapter name.
    pub adapter: Option<String>,
}

impl DeviceOptions {
    /// Options from `BITPROP_BACKEND` and `BITPROP_ADAPTER` (unset means auto / any).
    pub fn from_env() -> Result<Self, GpuError> {
        let backend = match std::env::var("BITPROP_BACKEND") {
            Ok(s) => s.parse()?,
            Err(_) => BackendChoice::Auto,
        };
        let adapter = std::env::var("BITPROP_ADAPTER")
            .ok()
            .filter(|s| !s.is_empty());
        Ok(DeviceOptions { backend, adapter })
    }
}

/// What `bitprop devices` prints about one adapter.
#[derive(Clone, Debug, Serialize)]
pub struct AdapterDescription {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroups_per_dimension: u32,
    pub max_storage_buffers_per_shader_stage: u32,
    pub timestamp_query: bool,
    pub subgroup: bool,
}

impl AdapterDescription {
    pub fn of(adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let features = adapter.features();
        AdapterDescription {
            name: info.name,
            backend: format!("{:?}", info.backend).to_lowercase(),
            device_type: device_type_name(info.device_type).to_string(),
            driver: info.driver,
            driver_info: info.driver_info,
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
            max_buffer_size: limits.max_buffer_size,
            max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
            max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
            max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            max_storage_buffers_per_shader_stage: limits.max_storage_buffers_per_shader_stage,
            timestamp_query: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            subgroup: features.contains(wgpu::Features::SUBGROUP),
        }
    }
}

pub fn device_type_name(t: wgpu::DeviceType) -> &'static str {
    match t {
        wgpu::DeviceType::DiscreteGpu => "discrete-gpu",
        wgpu::DeviceType::IntegratedGpu => "integrated-gpu",
        wgpu::DeviceType::VirtualGpu => "virtual-gpu",
        wgpu::DeviceType::Cpu => "cpu",
        wgpu::DeviceType::Other => "other",
    }
}

/// Lower is preferred by `auto`: a discrete GPU, then integrated, then a CPU adapter (lavapipe).
fn preference(adapter: &wgpu::Adapter) -> (u8, u8) {
    let info = adapter.get_info();
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    // Native APIs before GL: their shader translators and timers are better.
    let api = match info.backend {
        wgpu::Backend::Vulkan => 0,
        wgpu::Backend::Metal => 0,
        wgpu::Backend::Dx12 => 1,
        _ => 2,
    };
    (kind, api)
}

pub(crate) fn new_instance(backend: BackendChoice) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backend.backends();
    wgpu::Instance::new(desc)
}

/// Every adapter the chosen backends offer.
pub fn list_adapters(backend: BackendChoice) -> Vec<wgpu::Adapter> {
    let instance = new_instance(backend);
    pollster::block_on(instance.enumerate_adapters(backend.backends()))
}

/// The adapter `options` selects, or an error that says what was tried.
pub fn choose_adapter(options: &DeviceOptions) -> Result<wgpu::Adapter, GpuError> {
    let mut adapters = list_adapters(options.backend);
    let seen: Vec<String> = adapters
        .iter()
        .map(|a| {
            let i = a.get_info();
            format!("{} ({:?})", i.name, i.backend)
        })
        .collect();
    if let Some(sub) = &options.adapter {
        let sub = sub.to_lowercase();
        adapters.retain(|a| a.get_info().name.to_lowercase().contains(&sub));
    }
    adapters.sort_by_key(preference);
    adapters
        .into_iter()
        .next()
        .ok_or_else(|| GpuError::NoAdapter {
            backend: options.backend.name().to_string(),
            adapter: options.adapter.clone(),
            seen,
        })
}
