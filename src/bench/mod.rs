//! Benchmarks that print ratios measured side by side in one run.

pub mod gemm;
pub mod train;

use crate::gpu::{Gpu, GpuError};
use crate::ops::tune::median;

/// How a benchmark's device times were taken.
pub fn timing_name(gpu: &Gpu) -> &'static str {
    if gpu.has_timestamps() {
        "timestamp"
    } else {
        "wall"
    }
}

/// Median device milliseconds of the dispatches `f` records, over `reps`
/// runs after one warm-up: the sum of their timestamp-query times where the
/// adapter has them, else the wall time of a submit-and-wait.
pub fn device_ms(
    gpu: &Gpu,
    reps: usize,
    mut f: impl FnMut() -> Result<(), GpuError>,
) -> Result<f64, GpuError> {
    f()?;
    gpu.flush_and_wait();
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        if gpu.has_timestamps() {
            gpu.start_profiling();
            f()?;
            let (records, _) = gpu.stop_profiling();
            times.push(records.iter().map(|r| r.ms).sum());
        } else {
            let t = std::time::Instant::now();
            f()?;
            gpu.flush_and_wait();
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(median(&mut times))
}
