//! Reductions: sums, means, mean absolute values and standard deviations per
//! row, per channel or over a whole tensor; row argmax and accuracy counts.
//!
//! All float reductions accumulate in f32: each lane of a 256-lane workgroup
//! sums a strided slice, then a workgroup-memory tree adds the lanes. Long
//! reductions (more than [`CHUNK`] elements per output) are split over several
//! workgroups whose partial results a second pass adds, so a million-element
//! tensor uses 64 workgroups instead of one. Expect an absolute error of a
//! few ulps of `sum |x|` times `m / 256 + 8` for `m` elements per output
//! (sequential lane sums, then tree levels); the tests allow `4e-6 * m` for
//! sums of values in [-1, 1].

use crate::gpu::{Gpu, GpuError, Kernel};
use crate::kernel;
use crate::tensor::{DType, Tensor};

use super::{groups_for, unused};

/// What a float reduction computes over each group of `m` elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    /// `sum x`
    Sum,
    /// `(1/m) sum x`
    Mean,
    /// `(1/m) sum |x|`
    MeanAbs,
    /// Population (biased) standard deviation `sqrt((1/m) sum (x - mean)^2)`,
    /// dividing by `m`, not `m - 1`, as batch normalisation does.
    Std,
}

/// `x` seen as `[N, C, S]` for a per-channel op: `N = shape[0]`, `C = shape[1]`,
/// `S` the product of the rest (1 for a 2-D tensor, `H * W` for NCHW).
pub fn channel_view(shape: &[usize]) -> [usize; 3] {
    assert!(
        shape.len() >= 2,
        "a per-channel op needs at least [N, C], got {shape:?}"
    );
    [shape[0], shape[1], shape[2..].iter().product()]
}

/// `x` seen as rows `[R, K]`: `R = shape[0]`, `K` the product of the rest, so a
/// weight `[O, I, kh, kw]` has one row per output filter.
pub fn row_view(shape: &[usize]) -> [usize; 2] {
    assert!(!shape.is_empty(), "a per-row op needs at least one axis");
    [shape[0], shape[1..].iter().product()]
}

/// Elements one workgroup reduces before the reduction is split in two passes.
pub const CHUNK: usize = 16384;
/// At most this many partials per output, so the second pass stays short.
const MAX_PARTS: usize = 1024;
const RWG: f64 = 256.0;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ReduceParams {
    n: u32,
    c: u32,
    s: u32,
    parts: u32,
    chunk: u32,
    mode: u32,
    scale: f32,
    sqrt_out: u32,
}

const REDUCE: Kernel = kernel!(
    ["reduce/reduce_common.wgsl", "reduce/reduce.wgsl"],
    "reduce_ncs",
    [Read, Read, ReadWrite]
);
const REDUCE_LANES: Kernel = kernel!(
    ["reduce/reduce_common.wgsl", "reduce/reduce.wgsl"],
    "reduce_ncs_lanes",
    [Read, Read, ReadWrite]
);
/// [`REDUCE_LANES`] a vec4 per load, where S % 4 == 0.
const REDUCE_LANES4: Kernel = kernel!(
    ["reduce/reduce_common.wgsl", "reduce/reduce4.wgsl"],
    "reduce_ncs_lanes4",
    [Read, Read, ReadWrite]
);

/// Channels from which one lane per channel beats one workgroup per
/// channel on a CPU adapter, for channels of at most [`LANES_MAX_COUNT`]
/// elements (a weight's rows: alpha of every binary layer, every step). A
/// GPU keeps a workgroup per channel: its lanes then read a row together.
pub const LANES_MIN_CHANNELS: usize = 128;
pub const LANES_MAX_COUNT: usize = 4096;
const LANES_WG: u32 = 64;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Sum = 0,
    SumAbs = 1,
    SumSqDev = 2,
}

/// `scale * (sum over n, s of f(x[n, c, s]))` per channel (square root taken
/// if `sqrt_out`), in one pass or, for long channels, two.
fn reduce_ncs(
    gpu: &Gpu,
    x: &Tensor,
    [n, c, s]: [usize; 3],
    mode: Mode,
    mean: Option<&Tensor>,
    scale: f32,
    sqrt_out: bool,
) -> Result<Tensor, GpuError> {
    assert_eq!(x.numel(), n * c * s, "reduce: {x:?} is not [{n}, {c}, {s}]");
    let count = n * s;
    let parts = if count > CHUNK {
        count.div_ceil(CHUNK).min(MAX_PARTS)
    } else {
        1
    };
    let chunk = count.div_ceil(parts).max(1);
    let out = Tensor::empty(gpu, &[c * parts], DType::F32)?;
    if gpu.cpu_forms() && c >= LANES_MIN_CHANNELS && count <= LANES_MAX_COUNT {
        let params = ReduceParams {
            n: n as u32,
            c: c as u32,
            s: s as u32,
            parts: 1,
            chunk: count as u32,
            mode: mode as u32,
            scale,
            sqrt_out: sqrt_out as u32,
        };
        let kernel = if s.is_multiple_of(4) {
            &REDUCE_LANES4
        } else {
            &REDUCE_LANES
        };
        gpu.launch(
            kernel,
            &[("WG", LANES_WG as f64)],
            &params,
            &[
                x.binding(),
                mean.map_or(unused(x), |m| m.binding()),
                out.binding(),
            ],
            gpu.grid(c.div_ceil(LANES_WG as usize) as u64),
        );
        return Ok(out);
    }
    let last = parts == 1;
    let params = ReduceParams {
        n: n as u32,
        c: c as u32,
        s: s as u32,
        parts: parts as u32,
        chunk: chunk as u32,
        mode: mode as u32,
        scale: if last { scale } else { 1.0 },
        sqrt_out: (last && sqrt_out) as u32,
    };
    gpu.launch(
        &REDUCE,
        &[("WG", RWG)],
        &params,
        &[
            x.binding(),
            mean.map_or(unused(x), |m| m.binding()),
            out.binding(),
        ],
        gpu.grid((c * parts) as u64),
    );
    if last {
        return Ok(out);
    }
    // Partials are [C, parts]: a per-row sum of them finishes the reduction.
    reduce_ncs(gpu, &out, [1, c, parts], Mode::Sum, None, scale, sqrt_out)
}

/// `op` over groups of `m = n * s` elements of `[n, c, s]`, one result per `c`.
fn reduce_view(gpu: &Gpu, x: &Tensor, view: [usize; 3], op: Reduction) -> Result<Tensor, GpuError> {
    let m = view[0] * view[2];
    assert!(m > 0, "reduce: nothing to reduce in {x:?}");
    let inv = 1.0 / m as f32;
    match op {
        Reduction::Sum => reduce_ncs(gpu, x, view, Mode::Sum, None, 1.0, false),
        Reduction::Mean => reduce_ncs(gpu, x, view, Mode::Sum, None, inv, false),
        Reduction::MeanAbs => reduce_ncs(gpu, x, view, Mode::SumAbs, None, inv, false),
        Reduction::Std => {
            // Two passes over x (mean, then squared deviations) avoid the
            // cancellation of E[x^2] - E[x]^2.
            let mean = reduce_ncs(gpu, x, view, Mode::Sum, None, inv, false)?;
            reduce_ncs(gpu, x, view, Mode::SumSqDev, Some(&mean), inv, true)
        }
    }
}

/// Per row of `x` seen as `[R, K]` ([`row_view`]): `y[r] = op(x[r, :])`, shape `[R]`.
pub fn reduce_rows(gpu: &Gpu, x: &Tensor, op: Reduction) -> Result<Tensor, GpuError> {
    let [r, k] = row_view(x.shape());
    reduce_view(gpu, x, [1, r, k], op)
}

/// Per channel of `x` seen as `[N, C, S]` ([`channel_view`]):
/// `y[c] = op(x[:, c, :])`, shape `[C]`.
pub fn reduce_channels(gpu: &Gpu, x: &Tensor, op: Reduction) -> Result<Tensor, GpuError> {
    reduce_view(gpu, x, channel_view(x.shape()), op)
}

/// Over the whole tensor: `y[0] = op(x)`, shape `[1]`.
pub fn reduce_all(gpu: &Gpu, x: &Tensor, op: Reduction) -> Result<Tensor, GpuError> {
    reduce_view(gpu, x, [1, 1, x.numel()], op)
}

/// CPU reference: `op` over each channel of `[n, c, s]`, accumulated in f64.
pub fn reduce_ncs_cpu(x: &[f32], [n, c, s]: [usize; 3], op: Reduction) -> Vec<f32> {
    assert_eq!(x.len(), n * c * s);
    (0..c)
        .map(|ch| {
            let vals: Vec<f64> = (0..n)
                .flat_map(|i| (0..s).map(move |j| (i * c + ch) * s + j))
                .map(|idx| x[idx] as f64)
                .collect();
            let m = vals.len() as f64;
            let mean = vals.iter().sum::<f64>() / m;
            let v = match op {
                Reduction::Sum => vals.iter().sum::<f64>(),
                Reduction::Mean => mean,
                Reduction::MeanAbs => vals.iter().map(|v| v.abs()).sum::<f64>() / m,
                Reduction::Std => {
                    (vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / m).sqrt()
                }
            };
            v as f32
        })
        .collect()
}

/// CPU reference of [`reduce_rows`] for `x` as `[r, k]`.
pub fn reduce_rows_cpu(x: &[f32], r: usize, k: usize, op: Reduction) -> Vec<f32> {
    reduce_ncs_cpu(x, [1, r, k], op)
}

/// CPU reference of [`reduce_channels`] for `x` as `[n, c, s]`.
pub fn reduce_channels_cpu(x: &[f32], n: usize, c: usize, s: usize, op: Reduction) -> Vec<f32> {
    reduce_ncs_cpu(x, [n, c, s], op)
}

/// CPU reference of [`reduce_all`].
pub fn reduce_all_cpu(x: &[f32], op: Reduction) -> f32 {
    reduce_ncs_cpu(x, [1, 1, x.len()], op)[0]
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ArgmaxParams {
    rows: u32,
    cols: u32,
    _pad: [u32; 2],
}

const ARGMAX: Kernel = kernel!("reduce/argmax.wgsl", "argmax_rows", [Read, Read, ReadWrite]);
const ACCURACY: Kernel = kernel!(
    "reduce/argmax.wgsl",
    "accuracy_count",
    [Read, Read, ReadWrite]
);

fn argmax_params(x: &Tensor) -> ArgmaxParams {
    assert_eq!(x.shape().len(), 2, "argmax: {x:?} is not [R, C]");
    assert!(x.shape()[1] > 0, "argmax: {x:?} has no columns");
    ArgmaxParams {
        rows: x.shape()[0] as u32,
        cols: x.shape()[1] as u32,
        _pad: [0; 2],
    }
}

/// `y[r] = argmax_c x[r, c]` for `x` `[R, C]`: u32 `[R]`, the first maximum on ties.
pub fn argmax_rows(gpu: &Gpu, x: &Tensor) -> Result<Tensor, GpuError> {
    let params = argmax_params(x);
    let rows = x.shape()[0];
    let out = Tensor::empty(gpu, &[rows], DType::U32)?;
    gpu.launch(
        &ARGMAX,
        &[("WG", 64.0)],
        &params,
        &[x.binding(), unused(x), out.binding()],
        groups_for(gpu, rows, 64),
    );
    Ok(out)
}

/// `y[0] = #{r : argmax_c logits[r, c] = labels[r]}` for logits `[R, C]` and
/// u32 labels `[R]`: u32 `[1]`. Labels `>= C` never count.
pub fn accuracy_count(gpu: &Gpu, logits: &Tensor, labels: &Tensor) -> Result<Tensor, GpuError> {
    let params = argmax_params(logits);
    assert_eq!(
        labels.numel(),
        logits.shape()[0],
        "accuracy_count: {labels:?} for {logits:?}"
    );
    let out = Tensor::empty(gpu, &[1], DType::U32)?;
    gpu.launch(
        &ACCURACY,
        &[("WG", 256.0)],
        &params,
        &[logits.binding(), labels.binding(), out.binding()],
        [1, 1, 1],
    );
    Ok(out)
}

/// CPU reference of [`argmax_rows`].
pub fn argmax_rows_cpu(x: &[f32], rows: usize, cols: usize) -> Vec<u32> {
    (0..rows)
        .map(|r| {
            let row = &x[r * cols..(r + 1) * cols];
            let mut arg = 0;
            for (j, &v) in row.iter().enumerate() {
                if v > row[arg] {
                    arg = j;
                }
            }
            arg as u32
        })
        .collect()
}

/// CPU reference of [`accuracy_count`].
pub fn accuracy_count_cpu(logits: &[f32], labels: &[u32], rows: usize, cols: usize) -> u32 {
    argmax_rows_cpu(logits, rows, cols)
        .iter()
        .zip(labels)
        .filter(|(a, l)| a == l)
        .count() as u32
}
