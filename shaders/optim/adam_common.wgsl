// Fused Adam / AdamW update of one parameter tensor, in place, following the
// operation order of torch.optim.Adam / AdamW (single-tensor, non-amsgrad).
//
// grad:       f32 [n] (read): the gradient.
// skip:       u32 [1] (read): when skip[0] != 0 nothing is written (a device-side
//             veto, e.g. set by check_finite on a non-finite gradient).
// param:      f32 [n], updated in place.
// exp_avg:    f32 [n], updated in place: the first moment m (zeros before step 1).
// exp_avg_sq: f32 [n], updated in place: the second moment v (zeros before step 1).
//
// mode 0: no weight decay; 1 (Adam, L2): g = g + weight_decay * w;
// 2 (AdamW, decoupled): w = w * decay, decay = 1 - lr * weight_decay.
// Then m = lerp(m, g, 1 - beta1); v = v * beta2 + (1 - beta2) * g * g;
// w = w - step_size * m / (sqrt(v) / bc2_sqrt + eps), with
// step_size = lr / (1 - beta1^t) and bc2_sqrt = sqrt(1 - beta2^t) from the host.
//
// This file holds the parameters and the update itself, on vec4 (each
// component alone, so the scalar entry in adam.wgsl, which runs it on
// splats, computes the same values); adam4.wgsl runs it four elements per
// lane (tensors whose size is a multiple of 4): a CPU adapter executes a
// storage load lane by lane, so vec4 loads are a quarter of the loads.

struct Params {
    n: u32,
    mode: u32,
    _pad0: u32,
    _pad1: u32,
    weight_decay: f32,
    decay: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    eps: f32,
    neg_step_size: f32,
    bc2_sqrt: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

override WG: u32 = 64u;

// torch.lerp: the form that is exact at the nearer end point (w is uniform).
fn torch_lerp(a: vec4<f32>, b: vec4<f32>, w: f32) -> vec4<f32> {
    if (abs(w) < 0.5) {
        return a + w * (b - a);
    }
    return b - (b - a) * (1.0 - w);
}

struct Moments {
    w: vec4<f32>,
    m: vec4<f32>,
    v: vec4<f32>,
}

// One step for weights w0 with gradient g0 and moments m0, v0.
fn adam_update(w0: vec4<f32>, g0: vec4<f32>, m0: vec4<f32>, v0: vec4<f32>) -> Moments {
    var w = w0;
    var g = g0;
    if (p.mode == 1u) {
        g = g + p.weight_decay * w;
    } else if (p.mode == 2u) {
        w = w * p.decay;
    }
    let m = torch_lerp(m0, g, p.one_minus_beta1);
    let v = v0 * p.beta2 + p.one_minus_beta2 * g * g;
    let denom = sqrt(v) / p.bc2_sqrt + p.eps;
    return Moments(w + p.neg_step_size * (m / denom), m, v);
}
