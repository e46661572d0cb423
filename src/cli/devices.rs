use clap::Args;

use super::{Cli, print_json};
use crate::gpu::{AdapterDescription, GpuError, list_adapters};

#[derive(Args, Debug)]
pub struct DevicesArgs {
    /// Print one JSON object (`{"adapters": [...]}`) on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(cli: &Cli, args: &DevicesArgs) -> anyhow::Result<()> {
    let options = cli.device_options()?;
    let all: Vec<AdapterDescription> = list_adapters(options.backend)
        .iter()
        .map(AdapterDescription::of)
        .collect();
    let seen: Vec<String> = all
        .iter()
        .map(|a| format!("{} ({})", a.name, a.backend))
        .collect();
    let adapters: Vec<AdapterDescription> = all
        .into_iter()
        .filter(|a| {
            options
                .adapter
                .as_ref()
                .is_none_or(|s| a.name.to_lowercase().contains(&s.to_lowercase()))
        })
        .collect();
    if adapters.is_empty() {
        return Err(GpuError::NoAdapter {
            backend: options.backend.name().to_string(),
            adapter: options.adapter.clone(),
            seen,
        }
        .into());
    }
    if args.json {
        return print_json(&serde_json::json!({ "adapters": adapters }));
    }
    for a in &adapters {
        eprintln!("{} [{}; {}]", a.name, a.backend, a.device_type);
        eprintln!("  driver: {} {}", a.driver, a.driver_info);
        eprintln!(
            "  max storage binding {} MiB, max buffer {} MiB, workgroup storage {} KiB, {} invocations/workgroup, {} workgroups/dimension, {} storage buffers/stage",
            a.max_storage_buffer_binding_size >> 20,
            a.max_buffer_size >> 20,
            a.max_compute_workgroup_storage_size >> 10,
            a.max_compute_invocations_per_workgroup,
            a.max_compute_workgroups_per_dimension,
            a.max_storage_buffers_per_shader_stage
        );
        eprintln!(
            "  timestamp queries: {}, subgroups: {}",
            if a.timestamp_query { "yes" } else { "no" },
            if a.subgroup { "yes" } else { "no" }
        );
    }
    Ok(())
}
