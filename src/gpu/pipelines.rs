//! The pipeline cache: each (shader, entry point, override constants) is
//! compiled once per device. A pipeline is the compiled shader plus the
//! layout of its bindings (WebGPU's bind group layout is Vulkan's descriptor set layout).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::kernel::{Access, Kernel};

pub struct CachedPipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

#[derive(Default)]
pub struct PipelineCache {
    /// Keyed by the source text's address and length: a module assembled
    /// from several files is named by its last one, which other modules may
    /// end with too.
    modules: Mutex<HashMap<(usize, usize), wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<String, Arc<CachedPipeline>>>,
}

impl PipelineCache {
    pub fn get(
        &self,
        device: &wgpu::Device,
        kernel: &Kernel,
        constants: &[(&str, f64)],
    ) -> Arc<CachedPipeline> {
        let source_key = (kernel.source.as_ptr() as usize, kernel.source.len());
        let mut key = format!("{}::{}@{:?}", kernel.file, kernel.entry, source_key);
        for (name, value) in constants {
            key.push_str(&format!(";{name}={value}"));
        }
        if let Some(p) = self.pipelines.lock().unwrap().get(&key) {
            return Arc::clone(p);
        }
        let module = {
            let mut modules = self.modules.lock().unwrap();
            modules
                .entry(source_key)
                .or_insert_with(|| {
                    device.create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(kernel.file),
                        source: wgpu::ShaderSource::Wgsl(kernel.source.into()),
                    })
                })
                .clone()
        };
        // Binding 0 is the kernel's uniform parameters; 1.. are the kernel's buffers in order.
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        }];
        for (i, access) in kernel.bindings.iter().enumerate() {
            entries.push(wgpu::BindGroupLayoutEntry {
                binding: i as u32 + 1,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: match access {
                        Access::Uniform => wgpu::BufferBindingType::Uniform,
                        _ => wgpu::BufferBindingType::Storage {
                            read_only: *access == Access::Read,
                        },
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            });
        }
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(kernel.entry),
            entries: &entries,
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(kernel.entry),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(kernel.entry),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(kernel.entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        let cached = Arc::new(CachedPipeline { pipeline, layout });
        self.pipelines
            .lock()
            .unwrap()
            .insert(key, Arc::clone(&cached));
        cached
    }
}
