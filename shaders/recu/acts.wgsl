// ReCU's activation path and the backward of a per-channel output scale.
//
// std_sign_forward / std_sign_backward see x as rows [N, L], L = C * S, one
// row per sample; channel of element j of a row is j / S.
// x:     f32 [N, C, S], the pre-sign activations (read).
// bias:  f32 [C], a threshold subtracted first when has_bias (RSign's), so
//        z = x - bias[c] (else z = x).
// stats: f32 [N, 2], (mean_n, sigma_n) of z over the sample, sigma_n =
//        sqrt(var_n + eps) with the population variance; written by forward.
// y:     f32 [N, C, S], sign(z) = sign(z / sigma_n), written by forward.
// g:     f32 [N, C, S], upstream gradient; dz written by backward:
//        g0 = g * max(0, 2 - 2 |z / sigma|)            (ApproxSign at z / sigma)
//        dz = g0 / sigma - (z - mean) * sum(g0 * z) / (L sigma^3)
//        (the Jacobian of z / sigma with sigma a function of z).
//
// scale_grad: x = dy, bias = y0 (both [N, C, S]): out[c] = sum over n, s of
// dy * y0, the gradient of a per-channel scale alpha in y = alpha_c * y0.
//
// One workgroup per sample (or channel); a workgroup-memory tree adds the
// lanes (no float atomics, which the GL backend lacks).

struct Params {
    n: u32,
    c: u32,
    s: u32,
    has_bias: u32,
    eps: f32,
    _pad0: f32,
    _pad1: f32,
    _pad2: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(4) var<storage, read_write> out0: array<f32>;
@group(0) @binding(5) var<storage, read_write> out1: array<f32>;

override WG: u32 = 256u;

fn z_at(base: u32, j: u32) -> f32 {
    var v = x[base + j];
    if (p.has_bias != 0u) {
        v -= bias[j / p.s];
    }
    return v;
}

// Writes out0 = y (signs), out1 = stats.
@compute @workgroup_size(WG)
fn std_sign_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Uniform across the workgroup, so the early exit keeps barriers uniform.
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.n) {
        return;
    }
    let l = p.c * p.s;
    let base = row * l;
    var acc = 0.0;
    for (var j = lid; j < l; j += WG) {
        acc += z_at(base, j);
    }
    let mean = workgroup_sum(lid, acc) / f32(l);
    acc = 0.0;
    for (var j = lid; j < l; j += WG) {
        let z = z_at(base, j);
        out0[base + j] = select(-1.0, 1.0, z >= 0.0);
        acc += (z - mean) * (z - mean);
    }
    let sigma = sqrt(workgroup_sum(lid, acc) / f32(l) + p.eps);
    if (lid == 0u) {
        out1[2u * row] = mean;
        out1[2u * row + 1u] = sigma;
    }
}

// Reads stats from out1 (bound read_write to keep one layout); writes out0 = dz.
@compute @workgroup_size(WG)
fn std_sign_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.n) {
        return;
    }
    let l = p.c * p.s;
    let base = row * l;
    let mean = out1[2u * row];
    let sigma = out1[2u * row + 1u];
    var acc = 0.0;
    for (var j = lid; j < l; j += WG) {
        let z = z_at(base, j);
        let g0 = g[base + j] * max(0.0, 2.0 - 2.0 * abs(z / sigma));
        acc += g0 * z;
    }
    let coef = workgroup_sum(lid, acc) / (f32(l) * sigma * sigma * sigma);
    for (var j = lid; j < l; j += WG) {
        let z = z_at(base, j);
        let g0 = g[base + j] * max(0.0, 2.0 - 2.0 * abs(z / sigma));
        out0[base + j] = g0 / sigma - (z - mean) * coef;
    }
}

// Writes out0[c] = sum over n, s of x * bias (dy * y0). One workgroup per channel.
@compute @workgroup_size(WG)
fn scale_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ch = wid.x + wid.y * nwg.x;
    if (ch >= p.c) {
        return;
    }
    var acc = 0.0;
    for (var j = lid; j < p.n * p.s; j += WG) {
        let nn = j / p.s;
        let i = (nn * p.c + ch) * p.s + (j - nn * p.s);
        acc += x[i] * bias[i];
    }
    let total = workgroup_sum(lid, acc);
    if (lid == 0u) {
        out0[ch] = total;
    }
}
