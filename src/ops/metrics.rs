//! Device-side counters for training metrics.

use crate::gpu::{Gpu, Kernel};
use crate::kernel;
use crate::tensor::{DType, Tensor};

use super::groups_for;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct HammingParams {
    n: u32,
    slot: u32,
    _pad: [u32; 2],
}

const HAMMING: Kernel = kernel!(
    "metrics/hamming.wgsl",
    "hamming_accumulate",
    [Read, Read, ReadWrite]
);

/// `acc[slot] += popcount(a xor b)`: how many packed signs differ.
pub fn hamming_accumulate(gpu: &Gpu, a: &Tensor, b: &Tensor, acc: &Tensor, slot: usize) {
    assert_eq!(a.numel(), b.numel(), "hamming_accumulate: {a:?} vs {b:?}");
    assert!(
        a.dtype() == DType::U32 && b.dtype() == DType::U32,
        "hamming_accumulate: packed words expected"
    );
    assert!(
        slot < acc.numel(),
        "hamming_accumulate: slot {slot} outside {acc:?}"
    );
    let params = HammingParams {
        n: a.numel() as u32,
        slot: slot as u32,
        _pad: [0; 2],
    };
    gpu.launch(
        &HAMMING,
        &[("WG", 64.0)],
        &params,
        &[a.binding(), b.binding(), acc.binding()],
        groups_for(gpu, a.numel().div_ceil(64), 64),
    );
}

/// CPU reference of [`hamming_accumulate`]'s increment.
pub fn hamming_cpu(a: &[u32], b: &[u32]) -> u64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x ^ y).count_ones() as u64)
        .sum()
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SaturationParams {
    n: u32,
    c: u32,
    s: u32,
    slot: u32,
    input: u32,
    _pad: [u32; 3],
}

const SATURATION: Kernel = kernel!(
    "metrics/saturation.wgsl",
    "saturation_accumulate",
    [Read, Read, ReadWrite, Read, Read, Read, Read]
);

/// What a sign's input is, as [`saturation_accumulate`] counts it.
#[derive(Clone, Copy)]
pub enum SignInput<'a> {
    /// `x` itself.
    Plain,
    /// `x - a[c]`: RSign's threshold `a` `[C]`.
    Shifted(&'a Tensor),
    /// `gamma * (x - mean) * invstd + beta`, each `[C]`: training-mode
    /// batch norm's output, for a sign fused into it
    /// (`norm::Output::Sign`), `x` being batch norm's input.
    Normalised {
        mean: &'a Tensor,
        invstd: &'a Tensor,
        gamma: &'a Tensor,
        beta: &'a Tensor,
    },
}

/// `acc[slot] += #{i : abs(v[i]) > 1}` for the sign input `v` that `input`
/// makes of `x`, as a 64-bit count in two u32 words (`acc[2 slot]` low,
/// `acc[2 slot + 1]` high). `x` is viewed as `[N, C, S]`
/// ([`channel_view`](super::reduce::channel_view)).
pub fn saturation_accumulate(gpu: &Gpu, x: &Tensor, input: SignInput, acc: &Tensor, slot: usize) {
    let [_, c, s] = super::reduce::channel_view(x.shape());
    // The kernel's mode, RSign's threshold (binding 2) and batch norm's
    // mean, invstd, gamma and beta (bindings 4-7); x stands in where a
    // mode reads nothing.
    let (mode, shift, bn) = match input {
        SignInput::Plain => (0, None, None),
        SignInput::Shifted(a) => (1, Some(a), None),
        SignInput::Normalised {
            mean,
            invstd,
            gamma,
            beta,
        } => (2, None, Some([mean, invstd, gamma, beta])),
    };
    for t in shift.iter().chain(bn.iter().flatten()) {
        assert_eq!(
            t.numel(),
            c,
            "saturation_accumulate: per-channel {t:?} for x {x:?}"
        );
    }
    assert!(
        2 * slot + 1 < acc.numel() && acc.dtype() == DType::U32,
        "saturation_accumulate: slot {slot} outside {acc:?}"
    );
    let params = SaturationParams {
        n: x.numel() as u32,
        c: c as u32,
        s: s as u32,
        slot: slot as u32,
        input: mode,
        _pad: [0; 3],
    };
    let mut bindings = vec![
        x.binding(),
        shift.map_or(super::unused(x), |a| a.binding()),
        acc.binding(),
    ];
    bindings.extend(bn.map_or([x; 4], |t| t).iter().map(|t| t.binding()));
    gpu.launch(
        &SATURATION,
        &[("WG", 64.0)],
        &params,
        &bindings,
        groups_for(gpu, x.numel().div_ceil(64), 64),
    );
}

/// CPU reference of [`saturation_accumulate`]'s increment: inputs with
/// `abs(x - a[c]) > 1`, `x` as `[N, C, S]`.
pub fn saturation_cpu(x: &[f32], bias: Option<&[f32]>, [_, c, s]: [usize; 3]) -> u64 {
    x.iter()
        .enumerate()
        .filter(|(i, v)| {
            let a = bias.map_or(0.0, |b| b[(i / s) % c]);
            (**v - a).abs() > 1.0
        })
        .count() as u64
}
