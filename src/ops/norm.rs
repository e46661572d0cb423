//! Batch normalisation over the channel axis, as PyTorch's `BatchNorm1d` /
//! `BatchNorm2d`: `[N, C]` and `[N, C, H, W]` inputs are both seen as
//! `[N, C, S]` (S = H * W, or 1), and statistics run over n = N * S values
//! per channel.

use crate::gpu::{Gpu, GpuError, Kernel};
use crate::kernel;
use crate::tensor::{DType, Tensor};

use super::{RUN, WG_RUN, groups_for};

/// PyTorch's default `eps`.
pub const BN_EPS: f32 = 1e-5;
/// PyTorch's default `momentum` for the running statistics.
pub const BN_MOMENTUM: f32 = 0.1;

/// `[N, C, S]` of a shape `[N, C, ...]`, S the product of the trailing dimensions.
pub fn channel_dims(shape: &[usize]) -> [usize; 3] {
    assert!(
        shape.len() >= 2,
        "batch norm needs a tensor [N, C, ...], got {shape:?}"
    );
    [shape[0], shape[1], shape[2..].iter().product()]
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct StatsParams {
    n: u32,
    c: u32,
    s: u32,
    _pad0: u32,
    eps: f32,
    momentum: f32,
    _pad1: u32,
    _pad2: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ApplyParams {
    total: u32,
    c: u32,
    s: u32,
    stat_is_var: u32,
    eps: f32,
    sign_out: u32,
    _pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct BackwardParams {
    n: u32,
    c: u32,
    s: u32,
    ste_clip: u32,
}

// Batch norm's statistics kernels: the workgroup tree, their Params and
// outputs, then the module (x bound as f32 or vec4).
macro_rules! stats_kernel {
    ($file:literal, $entry:literal) => {
        kernel!(
            [
                "reduce/workgroup_sum.wgsl",
                "norm/bn_stats_common.wgsl",
                $file
            ],
            $entry,
            [Read, ReadWrite, ReadWrite, ReadWrite, ReadWrite]
        )
    };
}

// Batch norm's backward kernels: the workgroup tree (the reductions'), their
// Params, then the module's files; five inputs, then what each writes.
macro_rules! backward_kernel {
    ([$($file:literal),+], $entry:literal, [$($out:ident),+]) => {
        kernel!(
            [
                "reduce/workgroup_sum.wgsl",
                "norm/bn_backward_common.wgsl",
                $($file),+
            ],
            $entry,
            [Read, Read, Read, Read, Read, $($out),+]
        )
    };
}

const STATS_TRAIN: Kernel = stats_kernel!("norm/bn_stats.wgsl", "bn_stats_train");
const STATS: Kernel = stats_kernel!("norm/bn_stats.wgsl", "bn_stats");
const STATS_TRAIN_LANES: Kernel = stats_kernel!("norm/bn_stats.wgsl", "bn_stats_train_lanes");
const STATS_LANES: Kernel = stats_kernel!("norm/bn_stats.wgsl", "bn_stats_lanes");
/// [`STATS_TRAIN`] and [`STATS`] a vec4 per load, where S % 4 == 0.
const STATS_TRAIN4: Kernel = stats_kernel!("norm/bn_stats4.wgsl", "bn_stats_train4");
const STATS4: Kernel = stats_kernel!("norm/bn_stats4.wgsl", "bn_stats4");
const APPLY: Kernel = kernel!(
    ["norm/channel4.wgsl", "norm/bn_apply.wgsl"],
    "bn_apply",
    [Read, Read, Read, Read, Read, ReadWrite]
);
/// [`APPLY`] over runs of values a lane (see [`pass`]).
const APPLY_RUNS1: Kernel = kernel!(
    ["norm/channel4.wgsl", "norm/bn_apply.wgsl"],
    "bn_apply_runs1",
    [Read, Read, Read, Read, Read, ReadWrite]
);
/// [`APPLY`] four elements per lane, where [`four_per_lane`] allows.
const APPLY4: Kernel = kernel!(
    ["norm/channel4.wgsl", "norm/bn_apply4.wgsl"],
    "bn_apply4",
    [Read, Read, Read, Read, Read, ReadWrite]
);
/// [`APPLY4`] over runs of vec4s a lane (see [`pass`]).
const APPLY4_RUNS: Kernel = kernel!(
    ["norm/channel4.wgsl", "norm/bn_apply4.wgsl"],
    "bn_apply4_runs",
    [Read, Read, Read, Read, Read, ReadWrite]
);
const BACKWARD_REDUCE: Kernel = backward_kernel!(
    ["norm/channel4.wgsl", "norm/bn_backward.wgsl"],
    "bn_backward_reduce",
    [ReadWrite, ReadWrite, ReadWrite]
);
const BACKWARD_REDUCE_LANES: Kernel = backward_kernel!(
    ["norm/channel4.wgsl", "norm/bn_backward.wgsl"],
    "bn_backward_reduce_lanes",
    [ReadWrite, ReadWrite, ReadWrite]
);
/// [`BACKWARD_REDUCE`] a vec4 per load, where S % 4 == 0.
const BACKWARD_REDUCE4: Kernel = backward_kernel!(
    ["norm/bn_backward_reduce4.wgsl"],
    "bn_backward_reduce4",
    [ReadWrite, ReadWrite, ReadWrite]
);
const BACKWARD_DX: Kernel = backward_kernel!(
    ["norm/channel4.wgsl", "norm/bn_backward.wgsl"],
    "bn_backward_dx",
    [ReadWrite, ReadWrite, ReadWrite]
);
/// [`BACKWARD_DX`] over runs of values a lane (see [`pass`]).
const BACKWARD_DX_RUNS1: Kernel = backward_kernel!(
    ["norm/channel4.wgsl", "norm/bn_backward.wgsl"],
    "bn_backward_dx_runs1",
    [ReadWrite, ReadWrite, ReadWrite]
);
/// [`BACKWARD_DX`] four elements per lane, where [`four_per_lane`] allows.
const BACKWARD_DX4: Kernel = backward_kernel!(
    ["norm/channel4.wgsl", "norm/bn_backward_dx4.wgsl"],
    "bn_backward_dx4",
    [Read, Read, ReadWrite]
);
/// [`BACKWARD_DX4`] over runs of vec4s a lane (see [`pass`]).
const BACKWARD_DX4_RUNS: Kernel = backward_kernel!(
    ["norm/channel4.wgsl", "norm/bn_backward_dx4.wgsl"],
    "bn_backward_dx4_runs",
    [Read, Read, ReadWrite]
);

/// How an elementwise pass over `[N, C, S]` runs: one element a lane, four
/// ([`four_per_lane`]), or, on CPU adapters with planes of more than one
/// value, runs of [`RUN`] vec4s (planes of whole vec4s) or of `4 * RUN`
/// values a lane, loading a channel's values once per plane instead of once
/// per vec4 or value (each lane-varying load runs lane by lane there).
struct Pass {
    kernel: &'static Kernel,
    /// Elements, or vec4s for the four-a-lane kernels (their `total`).
    total: usize,
    lanes: usize,
    constants: &'static [(&'static str, f64)],
}

/// The kernels of an elementwise pass: one element a lane, four, runs of
/// vec4s, runs of elements.
struct PassKernels {
    one: &'static Kernel,
    four: &'static Kernel,
    runs4: &'static Kernel,
    runs1: &'static Kernel,
}

fn pass(gpu: &Gpu, [c, s]: [usize; 2], numel: usize, k: PassKernels) -> Pass {
    const WG: &[(&str, f64)] = &[("WG", 64.0)];
    const WG_RUN1: &[(&str, f64)] = &[("WG", 64.0), ("RUN", 4.0 * RUN as f64)];
    let vec4s = numel / 4;
    if gpu.cpu_forms() && four_per_lane(c, s) && s.is_multiple_of(4) {
        Pass {
            kernel: k.runs4,
            total: vec4s,
            lanes: vec4s.div_ceil(RUN),
            constants: WG_RUN,
        }
    } else if four_per_lane(c, s) {
        Pass {
            kernel: k.four,
            total: vec4s,
            lanes: vec4s,
            constants: WG,
        }
    } else if gpu.cpu_forms() && s > 1 {
        Pass {
            kernel: k.runs1,
            total: numel,
            lanes: numel.div_ceil(4 * RUN),
            constants: WG_RUN1,
        }
    } else {
        Pass {
            kernel: k.one,
            total: numel,
            lanes: numel,
            constants: WG,
        }
    }
}

/// Whether the elementwise passes over `[N, C, S]` run four elements per
/// lane: each vec4 then lies in one channel (S % 4 == 0) or spans four
/// neighbouring ones (S == 1), and the per-channel arrays read as vec4s.
fn four_per_lane(c: usize, s: usize) -> bool {
    c.is_multiple_of(4) && (s == 1 || s.is_multiple_of(4))
}

/// Lanes of a per-channel reduction workgroup: a power of two the adapter
/// allows, at most 256 (the shaders' workgroup array), 64 on CPU adapters
/// where every barrier costs a context switch of the lanes.
fn reduce_wg(gpu: &Gpu) -> u32 {
    let cap = if gpu.cpu_forms() { 64 } else { 256 };
    let max = gpu
        .limits
        .max_compute_invocations_per_workgroup
        .min(gpu.limits.max_compute_workgroup_size_x)
        .min(cap);
    1u32 << max.ilog2()
}

/// Constants of the vec4 per-channel reductions (bn_stats4.wgsl,
/// bn_backward_reduce4.wgsl): on CPU adapters each lane walks whole planes
/// (`PLANES`), 4x faster on lavapipe than the strided walk GPUs coalesce.
fn reduce4_constants(gpu: &Gpu) -> Vec<(&'static str, f64)> {
    vec![
        ("WG", reduce_wg(gpu) as f64),
        ("PLANES", gpu.cpu_forms() as u32 as f64),
    ]
}

fn check_per_channel(what: &str, c: usize, tensors: &[(&str, &Tensor)]) {
    for (name, t) in tensors {
        assert_eq!(
            t.numel(),
            c,
            "{what}: {name} is {:?}, expected {c} channels",
            t.shape()
        );
    }
}

/// `train`: bn_stats_train (normalising statistics and the running ones),
/// else bn_stats (mean and biased variance).
fn launch_stats(
    gpu: &Gpu,
    train: bool,
    x: &Tensor,
    outputs: [&Tensor; 4],
    eps: f32,
    momentum: f32,
) {
    let [n, c, s] = channel_dims(x.shape());
    assert!(n * s > 0, "batch norm: no values per channel in {x:?}");
    let params = StatsParams {
        n: n as u32,
        c: c as u32,
        s: s as u32,
        _pad0: 0,
        eps,
        momentum,
        _pad1: 0,
        _pad2: 0,
    };
    let [mean, second, rm, rv] = outputs;
    // A matrix: one lane per channel (see bn_stats.wgsl); planes of whole
    // vec4s: a vec4 per load.
    let wg = vec![("WG", reduce_wg(gpu) as f64)];
    let wg4 = reduce4_constants(gpu);
    let (kernel, constants, grid) = match (lanes_per_channel(gpu, s), vec4_per_load(s), train) {
        (true, _, true) => (&STATS_TRAIN_LANES, vec![], groups_for(gpu, c, 64)),
        (true, _, false) => (&STATS_LANES, vec![], groups_for(gpu, c, 64)),
        (false, true, true) => (&STATS_TRAIN4, wg4, gpu.grid(c as u64)),
        (false, true, false) => (&STATS4, wg4, gpu.grid(c as u64)),
        (false, false, true) => (&STATS_TRAIN, wg, gpu.grid(c as u64)),
        (false, false, false) => (&STATS, wg, gpu.grid(c as u64)),
    };
    gpu.launch(
        kernel,
        &constants,
        &params,
        &[
            x.binding(),
            mean.binding(),
            second.binding(),
            rm.binding(),
            rv.binding(),
        ],
        grid,
    );
}

/// Whether a per-channel reduction over `[N, C, S]` runs one lane per
/// channel (S == 1: a matrix, whose channels are neighbours in memory)
/// rather than one workgroup per channel. Only on a CPU adapter: a GPU
/// runs a matrix's few hundred lanes as a handful of workgroups that loop
/// over every row (0.07 ms per call on an H100 for bmlp's [256, 1024]),
/// where a workgroup per channel takes the rows in parallel.
fn lanes_per_channel(gpu: &Gpu, s: usize) -> bool {
    s == 1 && gpu.cpu_forms()
}

/// Whether a per-channel reduction (one workgroup per channel) reads a vec4
/// per load: planes of whole vec4s, so a vec4 never spans two channels.
fn vec4_per_load(s: usize) -> bool {
    s.is_multiple_of(4)
}

#[allow(clippy::too_many_arguments)]
fn launch_apply(
    gpu: &Gpu,
    x: &Tensor,
    mean: &Tensor,
    stat: &Tensor,
    stat_is_var: bool,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f32,
    output: Output,
) -> Result<Tensor, GpuError> {
    let [_, c, s] = channel_dims(x.shape());
    let y = Tensor::empty(gpu, x.shape(), DType::F32)?;
    let pass = pass(
        gpu,
        [c, s],
        x.numel(),
        PassKernels {
            one: &APPLY,
            four: &APPLY4,
            runs4: &APPLY4_RUNS,
            runs1: &APPLY_RUNS1,
        },
    );
    let params = ApplyParams {
        total: pass.total as u32,
        c: c as u32,
        s: s as u32,
        stat_is_var: stat_is_var as u32,
        eps,
        sign_out: (output == Output::Sign) as u32,
        _pad: [0; 2],
    };
    gpu.launch(
        pass.kernel,
        pass.constants,
        &params,
        &[
            x.binding(),
            mean.binding(),
            stat.binding(),
            gamma.binding(),
            beta.binding(),
            y.binding(),
        ],
        groups_for(gpu, pass.lanes, 64),
    );
    Ok(y)
}

/// What the normalising pass writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// `y` itself.
    Normalised,
    /// `sign(y)` (+1 where `y >= 0`, else -1, as `act::sign`): batch norm
    /// and the binary activation after it in one pass, `y` never stored.
    Sign,
}

/// Training-mode batch norm, as PyTorch: per channel c over its n = N * S values,
/// `mean = sum(x) / n`, `var = sum((x - mean)^2) / n` (biased),
/// `invstd = 1 / sqrt(var + eps)`, `y = gamma * (x - mean) * invstd + beta`.
/// Updates the running statistics in place:
/// `running_mean = (1 - momentum) * running_mean + momentum * mean`,
/// `running_var = (1 - momentum) * running_var + momentum * var * n / (n - 1)`
/// (`var` when n = 1). Returns `(y, saved_mean [C], saved_invstd [C])` for
/// [`batch_norm_backward`]; `y` is `sign(y)` with [`Output::Sign`].
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_train(
    gpu: &Gpu,
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    eps: f32,
    momentum: f32,
    output: Output,
) -> Result<(Tensor, Tensor, Tensor), GpuError> {
    let [_, c, _] = channel_dims(x.shape());
    check_per_channel(
        "batch_norm_train",
        c,
        &[
            ("gamma", gamma),
            ("beta", beta),
            ("running_mean", running_mean),
            ("running_var", running_var),
        ],
    );
    assert!(
        !running_mean.same_buffer(running_var)
            && !running_mean.same_buffer(x)
            && !running_var.same_buffer(x),
        "batch_norm_train: running_mean, running_var and x must be distinct buffers"
    );
    let mean = Tensor::empty(gpu, &[c], DType::F32)?;
    let invstd = Tensor::empty(gpu, &[c], DType::F32)?;
    launch_stats(
        gpu,
        true,
        x,
        [&mean, &invstd, running_mean, running_var],
        eps,
        momentum,
    );
    let y = launch_apply(gpu, x, &mean, &invstd, false, gamma, beta, eps, output)?;
    Ok((y, mean, invstd))
}

/// Eval-mode batch norm:
/// `y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta`.
pub fn batch_norm_eval(
    gpu: &Gpu,
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    eps: f32,
) -> Result<Tensor, GpuError> {
    let [_, c, _] = channel_dims(x.shape());
    check_per_channel(
        "batch_norm_eval",
        c,
        &[
            ("gamma", gamma),
            ("beta", beta),
            ("running_mean", running_mean),
            ("running_var", running_var),
        ],
    );
    launch_apply(
        gpu,
        x,
        running_mean,
        running_var,
        true,
        gamma,
        beta,
        eps,
        Output::Normalised,
    )
}

/// Batch statistics without normalising (to re-estimate running statistics):
/// per channel, `mean = sum(x) / n` and the biased `var = sum((x - mean)^2) / n`,
/// n = N * S. Returns `(mean [C], var [C])`.
pub fn batch_norm_stats(gpu: &Gpu, x: &Tensor) -> Result<(Tensor, Tensor), GpuError> {
    let [_, c, _] = channel_dims(x.shape());
    let mean = Tensor::empty(gpu, &[c], DType::F32)?;
    let var = Tensor::empty(gpu, &[c], DType::F32)?;
    // bn_stats never touches the running-statistics bindings, but they are
    // read-write and so may not alias the outputs: one word each.
    let unused_mean = Tensor::empty(gpu, &[1], DType::F32)?;
    let unused_var = Tensor::empty(gpu, &[1], DType::F32)?;
    launch_stats(
        gpu,
        false,
        x,
        [&mean, &var, &unused_mean, &unused_var],
        0.0,
        0.0,
    );
    Ok((mean, var))
}

/// Training-mode batch-norm backward from the forward's saved statistics,
/// with `xhat = (x - saved_mean) * saved_invstd` and n = N * S per channel:
/// `dbeta = sum(g)`, `dgamma = sum(g * xhat)`,
/// `dx = gamma * invstd / n * (n * g - dbeta - xhat * dgamma)`.
/// With `ste_clip_beta` = Some(beta), the forward was [`Output::Sign`] with
/// the clipped straight-through estimator: `g` (the gradient of the signs)
/// is first multiplied by `1[|y| <= 1]`, y recomputed from x, in the same
/// passes. Returns `(dx, dgamma [C], dbeta [C])`.
pub fn batch_norm_backward(
    gpu: &Gpu,
    x: &Tensor,
    g: &Tensor,
    gamma: &Tensor,
    saved_mean: &Tensor,
    saved_invstd: &Tensor,
    ste_clip_beta: Option<&Tensor>,
) -> Result<(Tensor, Tensor, Tensor), GpuError> {
    assert_eq!(
        x.shape(),
        g.shape(),
        "batch_norm_backward: x and g differ in shape"
    );
    let [n, c, s] = channel_dims(x.shape());
    assert!(
        n * s > 0,
        "batch_norm_backward: no values per channel in {x:?}"
    );
    check_per_channel(
        "batch_norm_backward",
        c,
        &[
            ("gamma", gamma),
            ("saved_mean", saved_mean),
            ("saved_invstd", saved_invstd),
        ],
    );
    let dx = Tensor::empty(gpu, x.shape(), DType::F32)?;
    let dgamma = Tensor::empty(gpu, &[c], DType::F32)?;
    let dbeta = Tensor::empty(gpu, &[c], DType::F32)?;
    let params = BackwardParams {
        n: n as u32,
        c: c as u32,
        s: s as u32,
        ste_clip: ste_clip_beta.is_some() as u32,
    };
    // The clip reads beta after gamma in one binding: the kernels already
    // bind eight buffers, the most some adapters allow.
    let gamma_beta = match ste_clip_beta {
        Some(beta) => {
            check_per_channel("batch_norm_backward", c, &[("beta", beta)]);
            let both = Tensor::empty(gpu, &[2 * c], DType::F32)?;
            gpu.copy(gamma.buffer(), both.buffer(), 0, gamma.bytes());
            gpu.copy(beta.buffer(), both.buffer(), gamma.bytes(), beta.bytes());
            both
        }
        None => gamma.clone(),
    };
    let bindings = [
        x.binding(),
        g.binding(),
        gamma_beta.binding(),
        saved_mean.binding(),
        saved_invstd.binding(),
        dgamma.binding(),
        dbeta.binding(),
        dx.binding(),
    ];
    if lanes_per_channel(gpu, s) {
        gpu.launch(
            &BACKWARD_REDUCE_LANES,
            &[],
            &params,
            &bindings,
            groups_for(gpu, c, 64),
        );
    } else {
        let (kernel, constants) = if vec4_per_load(s) {
            (&BACKWARD_REDUCE4, reduce4_constants(gpu))
        } else {
            (&BACKWARD_REDUCE, vec![("WG", reduce_wg(gpu) as f64)])
        };
        gpu.launch(kernel, &constants, &params, &bindings, gpu.grid(c as u64));
    }
    let dx_pass = pass(
        gpu,
        [c, s],
        x.numel(),
        PassKernels {
            one: &BACKWARD_DX,
            four: &BACKWARD_DX4,
            runs4: &BACKWARD_DX4_RUNS,
            runs1: &BACKWARD_DX_RUNS1,
        },
    );
    gpu.launch(
        dx_pass.kernel,
        dx_pass.constants,
        &params,
        &bindings,
        groups_for(gpu, dx_pass.lanes, 64),
    );
    Ok((dx, dgamma, dbeta))
}

fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&a| a as f64).collect()
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&a| a as f32).collect()
}

/// Per-channel (mean, biased variance) of `[N, C, S]`, two-pass, f64.
fn stats_f64(x: &[f64], [n, c, s]: [usize; 3]) -> (Vec<f64>, Vec<f64>) {
    assert_eq!(
        x.len(),
        n * c * s,
        "batch norm: {} values, not [{n}, {c}, {s}]",
        x.len()
    );
    let count = (n * s) as f64;
    let channel = |ch: usize| (0..n).flat_map(move |i| (0..s).map(move |j| (i * c + ch) * s + j));
    let mean: Vec<f64> = (0..c)
        .map(|ch| channel(ch).map(|k| x[k]).sum::<f64>() / count)
        .collect();
    let var = (0..c)
        .map(|ch| channel(ch).map(|k| (x[k] - mean[ch]).powi(2)).sum::<f64>() / count)
        .collect();
    (mean, var)
}

/// `y = gamma * (x - mean) * invstd + beta` with per-channel operands.
fn apply_f64(
    x: &[f64],
    [_, c, s]: [usize; 3],
    mean: &[f64],
    invstd: &[f64],
    gamma: &[f64],
    beta: &[f64],
) -> Vec<f64> {
    x.iter()
        .enumerate()
        .map(|(k, &v)| {
            let ch = (k / s) % c;
            gamma[ch] * (v - mean[ch]) * invstd[ch] + beta[ch]
        })
        .collect()
}

/// Training forward in f64: (y, mean, invstd, biased var).
#[allow(clippy::type_complexity)]
fn train_forward_f64(
    x: &[f64],
    dims: [usize; 3],
    gamma: &[f64],
    beta: &[f64],
    eps: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mean, var) = stats_f64(x, dims);
    let invstd: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let y = apply_f64(x, dims, &mean, &invstd, gamma, beta);
    (y, mean, invstd, var)
}

/// Backward in f64: (dx, dgamma, dbeta).
fn backward_f64(
    x: &[f64],
    g: &[f64],
    [n, c, s]: [usize; 3],
    gamma: &[f64],
    mean: &[f64],
    invstd: &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let count = (n * s) as f64;
    let xhat = |k: usize| {
        let ch = (k / s) % c;
        (x[k] - mean[ch]) * invstd[ch]
    };
    let mut dgamma = vec![0f64; c];
    let mut dbeta = vec![0f64; c];
    for (k, gk) in g.iter().enumerate() {
        let ch = (k / s) % c;
        dbeta[ch] += gk;
        dgamma[ch] += gk * xhat(k);
    }
    let dx = (0..x.len())
        .map(|k| {
            let ch = (k / s) % c;
            gamma[ch] * invstd[ch] / count * (count * g[k] - dbeta[ch] - xhat(k) * dgamma[ch])
        })
        .collect();
    (dx, dgamma, dbeta)
}

/// CPU reference of the normalising pass, `gamma * (x - mean) * invstd + beta`
/// in f64 from given statistics (`[N, C, S]` dims): the values whose signs
/// [`Output::Sign`] writes and whose `abs <= 1` the backward's clipped
/// STE keeps.
pub fn batch_norm_apply_cpu(
    x: &[f32],
    dims: [usize; 3],
    mean: &[f32],
    invstd: &[f32],
    gamma: &[f32],
    beta: &[f32],
) -> Vec<f64> {
    apply_f64(
        &to_f64(x),
        dims,
        &to_f64(mean),
        &to_f64(invstd),
        &to_f64(gamma),
        &to_f64(beta),
    )
}

/// CPU reference of [`batch_norm_train`] (f64 inside) on `x` of dims `[N, C, S]`;
/// updates `running_mean` / `running_var` in place and returns
/// `(y, saved_mean, saved_invstd)`.
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
pub fn batch_norm_train_cpu(
    x: &[f32],
    dims: [usize; 3],
    gamma: &[f32],
    beta: &[f32],
    running_mean: &mut [f32],
    running_var: &mut [f32],
    eps: f32,
    momentum: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let [n, _, s] = dims;
    let (y, mean, invstd, var) =
        train_forward_f64(&to_f64(x), dims, &to_f64(gamma), &to_f64(beta), eps as f64);
    let count = n * s;
    let m = momentum as f64;
    for ch in 0..mean.len() {
        let unbiased = if count > 1 {
            var[ch] * count as f64 / (count - 1) as f64
        } else {
            var[ch]
        };
        running_mean[ch] = (m * mean[ch] + (1.0 - m) * running_mean[ch] as f64) as f32;
        running_var[ch] = (m * unbiased + (1.0 - m) * running_var[ch] as f64) as f32;
    }
    (to_f32(&y), to_f32(&mean), to_f32(&invstd))
}

/// CPU reference of [`batch_norm_eval`].
pub fn batch_norm_eval_cpu(
    x: &[f32],
    dims: [usize; 3],
    gamma: &[f32],
    beta: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    eps: f32,
) -> Vec<f32> {
    let invstd: Vec<f64> = running_var
        .iter()
        .map(|&v| 1.0 / (v as f64 + eps as f64).sqrt())
        .collect();
    to_f32(&apply_f64(
        &to_f64(x),
        dims,
        &to_f64(running_mean),
        &invstd,
        &to_f64(gamma),
        &to_f64(beta),
    ))
}

/// CPU reference of [`batch_norm_stats`]: (mean, biased var) per channel.
pub fn batch_norm_stats_cpu(x: &[f32], dims: [usize; 3]) -> (Vec<f32>, Vec<f32>) {
    let (mean, var) = stats_f64(&to_f64(x), dims);
    (to_f32(&mean), to_f32(&var))
}

/// CPU reference of [`batch_norm_backward`] (f64 inside): `(dx, dgamma, dbeta)`.
#[allow(clippy::type_complexity)]
pub fn batch_norm_backward_cpu(
    x: &[f32],
    g: &[f32],
    dims: [usize; 3],
    gamma: &[f32],
    saved_mean: &[f32],
    saved_invstd: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (dx, dgamma, dbeta) = backward_f64(
        &to_f64(x),
        &to_f64(g),
        dims,
        &to_f64(gamma),
        &to_f64(saved_mean),
        &to_f64(saved_invstd),
    );
    (to_f32(&dx), to_f32(&dgamma), to_f32(&dbeta))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Lcg(u64);
    impl Lcg {
        fn uniform(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        }
        fn vec(&mut self, n: usize) -> Vec<f64> {
            (0..n).map(|_| self.uniform()).collect()
        }
    }

    /// Central differences of L = sum(g * y(x, gamma, beta)) against the
    /// analytic backward. With h = 1e-5 the truncation error is O(h^2 * y''')
    /// ~ 1e-8 relative for these O(1) inputs and round-off ~ 1e-16 / h; the
    /// tolerance 1e-6 (relative to the gradient's scale) leaves a wide margin
    /// yet catches any wrong term, which would be O(1 / n).
    #[test]
    fn backward_matches_finite_differences() {
        let mut rng = Lcg(7);
        for dims in [[3, 2, 1], [2, 3, 4], [1, 2, 5], [4, 1, 3], [5, 3, 2]] {
            let [n, c, s] = dims;
            let eps = 1e-5;
            let x = rng.vec(n * c * s);
            let g = rng.vec(n * c * s);
            let gamma: Vec<f64> = rng.vec(c).iter().map(|v| v + 1.5).collect();
            let beta = rng.vec(c);
            let loss = |x: &[f64], gamma: &[f64], beta: &[f64]| -> f64 {
                let (y, ..) = train_forward_f64(x, dims, gamma, beta, eps);
                y.iter().zip(&g).map(|(a, b)| a * b).sum()
            };
            let (_, mean, invstd, _) = train_forward_f64(&x, dims, &gamma, &beta, eps);
            let (dx, dgamma, dbeta) = backward_f64(&x, &g, dims, &gamma, &mean, &invstd);
            let h = 1e-5;
            let numeric = |f: &dyn Fn(f64) -> f64| (f(h) - f(-h)) / (2.0 * h);
            let scale = dx
                .iter()
                .chain(&dgamma)
                .chain(&dbeta)
                .fold(1f64, |a, b| a.max(b.abs()));
            let check = |what: &str, i: usize, analytic: f64, num: f64| {
                assert!(
                    (analytic - num).abs() <= 1e-6 * scale,
                    "{dims:?} {what}[{i}]: analytic {analytic}, numeric {num}"
                );
            };
            for i in 0..x.len() {
                let num = numeric(&|d| {
                    let mut xp = x.clone();
                    xp[i] += d;
                    loss(&xp, &gamma, &beta)
                });
                check("dx", i, dx[i], num);
            }
            for ch in 0..c {
                let num = numeric(&|d| {
                    let mut gp = gamma.clone();
                    gp[ch] += d;
                    loss(&x, &gp, &beta)
                });
                check("dgamma", ch, dgamma[ch], num);
                let num = numeric(&|d| {
                    let mut bp = beta.clone();
                    bp[ch] += d;
                    loss(&x, &gamma, &bp)
                });
                check("dbeta", ch, dbeta[ch], num);
            }
        }
    }

    /// The running-statistics update by hand: two channels of [N=2, C=2, S=1],
    /// and the n = 1 case where the biased variance stands in for the unbiased.
    #[test]
    fn running_statistics_follow_pytorch() {
        // Channel 0: values 1, 3 (mean 2, biased var 1, unbiased 2);
        // channel 1: values -1, -1 (mean -1, var 0).
        let x = [1.0, -1.0, 3.0, -1.0];
        let mut rm = [0.5, 0.0];
        let mut rv = [1.0, 2.0];
        let (y, mean, invstd) = batch_norm_train_cpu(
            &x,
            [2, 2, 1],
            &[1.0, 2.0],
            &[0.0, 0.5],
            &mut rm,
            &mut rv,
            1e-5,
            0.1,
        );
        assert_eq!(mean, [2.0, -1.0]);
        assert!((invstd[0] - (1.0f64 / (1.0 + 1e-5f64).sqrt()) as f32).abs() < 1e-7);
        assert!((invstd[1] - (1.0f64 / 1e-5f64.sqrt()) as f32).abs() < 1e-3);
        assert!((rm[0] - (0.9 * 0.5 + 0.1 * 2.0)).abs() < 1e-7);
        assert!((rm[1] + 0.1).abs() < 1e-7);
        assert!((rv[0] - (0.9 * 1.0 + 0.1 * 2.0)).abs() < 1e-7);
        assert!((rv[1] - 0.9 * 2.0).abs() < 1e-7);
        // A constant channel normalises to beta.
        assert_eq!([y[1], y[3]], [0.5, 0.5]);
        assert!((y[0] + 1.0).abs() < 1e-4 && (y[2] - 1.0).abs() < 1e-4);

        let mut rm = [1.0];
        let mut rv = [1.0];
        batch_norm_train_cpu(
            &[4.0],
            [1, 1, 1],
            &[1.0],
            &[0.0],
            &mut rm,
            &mut rv,
            1e-5,
            0.25,
        );
        assert_eq!(rm[0], 0.75 + 0.25 * 4.0);
        assert_eq!(rv[0], 0.75);
    }

    #[test]
    fn channel_dims_flatten_trailing_axes() {
        assert_eq!(channel_dims(&[4, 3]), [4, 3, 1]);
        assert_eq!(channel_dims(&[2, 3, 5, 7]), [2, 3, 35]);
    }
}
