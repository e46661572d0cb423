// Fused SGD update of one parameter tensor, in place, following the operation
// order of torch.optim.SGD (single-tensor).
//
// grad:     f32 [n] (read): the gradient.
// skip:     u32 [1] (read): when skip[0] != 0 nothing is written.
// param:    f32 [n], updated in place.
// momentum_buffer: f32 [n], updated in place when has_momentum != 0 (never
//           touched otherwise).
//
// g = g + weight_decay * w (when weight_decay != 0); with momentum:
// b = g on the first step, else b = b * momentum + (1 - dampening) * g;
// g = g + momentum * b (Nesterov) or g = b; then w = w - lr * g.

struct Params {
    n: u32,
    has_momentum: u32,
    first: u32,
    nesterov: u32,
    neg_lr: f32,
    momentum: f32,
    one_minus_dampening: f32,
    weight_decay: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read> skip: array<u32>;
@group(0) @binding(3) var<storage, read_write> param: array<f32>;
@group(0) @binding(4) var<storage, read_write> momentum_buffer: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn sgd(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = (wid.x + wid.y * nwg.x) * WG + lid;
    if (skip[0] != 0u || idx >= p.n) {
        return;
    }
    let w = param[idx];
    var g = grad[idx];
    if (p.weight_decay != 0.0) {
        g = g + p.weight_decay * w;
    }
    if (p.has_momentum != 0u) {
        var b = g;
        if (p.first == 0u) {
            b = momentum_buffer[idx] * p.momentum + p.one_minus_dampening * g;
        }
        momentum_buffer[idx] = b;
        if (p.nesterov != 0u) {
            g = g + p.momentum * b;
        } else {
            g = b;
        }
    }
    param[idx] = w + p.neg_lr * g;
}
