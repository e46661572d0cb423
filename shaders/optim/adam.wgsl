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
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read> skip: array<u32>;
@group(0) @binding(3) var<storage, read_write> param: array<f32>;
@group(0) @binding(4) var<storage, read_write> exp_avg: array<f32>;
@group(0) @binding(5) var<storage, read_write> exp_avg_sq: array<f32>;

override WG: u32 = 64u;

// torch.lerp: the form that is exact at the nearer end point.
fn torch_lerp(a: f32, b: f32, w: f32) -> f32 {
    if (abs(w) < 0.5) {
        return a + w * (b - a);
    }
    return b - (b - a) * (1.0 - w);
}

@compute @workgroup_size(WG)
fn adam(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = (wid.x + wid.y * nwg.x) * WG + lid;
    if (skip[0] != 0u || idx >= p.n) {
        return;
    }
    var w = param[idx];
    var g = grad[idx];
    if (p.mode == 1u) {
        g = g + p.weight_decay * w;
    } else if (p.mode == 2u) {
        w = w * p.decay;
    }
    let m = torch_lerp(exp_avg[idx], g, p.one_minus_beta1);
    let v = exp_avg_sq[idx] * p.beta2 + p.one_minus_beta2 * g * g;
    exp_avg[idx] = m;
    exp_avg_sq[idx] = v;
    let denom = sqrt(v) / p.bc2_sqrt + p.eps;
    param[idx] = w + p.neg_step_size * (m / denom);
}
