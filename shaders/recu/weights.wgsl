// ReCU's weight path (METHODS.md section 3), one binary layer at a time.
// The latent weights w are seen as rows [R, K]: one row per output channel.
//
// w:     f32 [R, K], the latent weights (read).
// w1:    f32 [R, K], standardized weights (w - mean_r) * inv_r, written by
//        standardize_rows; inv_r = sqrt(2) b* / sqrt(var_r + eps), var_r the
//        population variance of row r.
// stats: f32 [R, 2], (mean_r, inv_r), written by standardize_rows.
// rowabs:f32 [R], sum over the row of |w1|, written by standardize_rows.
// q:     f32 [2], (b_hat, Q), written by threshold: b_hat = mean |w1| over the
//        layer, Q = -b_hat ln(2 - 2 tau).
// w2:    f32 [R, K], clamp(w1, -Q, Q), written by clamp_q.
// g:     f32 [R, K], gradient of w2 (standardize_backward reads it) and dw,
//        the gradient of w (standardize_backward writes it).
// Q is detached: the backward treats it as a constant.
//
// Row kernels run one workgroup per row; lanes walk the row with stride WG
// and a workgroup-memory tree adds the lanes (no float atomics, which the GL
// backend lacks).

struct Params {
    rows: u32,
    k: u32,
    bins: u32,
    _pad: u32,
    // sqrt(2) * b_star.
    kk: f32,
    eps: f32,
    tau: f32,
    _pad2: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> c: array<f32>;
@group(0) @binding(4) var<storage, read_write> out0: array<f32>;
@group(0) @binding(5) var<storage, read_write> out1: array<f32>;

override WG: u32 = 256u;
const BINS: u32 = 64u;
var<workgroup> hist: array<atomic<u32>, BINS>;

fn group_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// a = w. Writes out0 = w1 [R, K], out1 = [stats (2R) | rowabs (R)].
@compute @workgroup_size(WG)
fn standardize_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Uniform across the workgroup, so the early exit keeps barriers uniform.
    let r = group_index(wid, nwg);
    if (r >= p.rows) {
        return;
    }
    let base = r * p.k;
    let kf = f32(p.k);
    var acc = 0.0;
    for (var j = lid; j < p.k; j += WG) {
        acc += a[base + j];
    }
    let mean = workgroup_sum(lid, acc) / kf;
    acc = 0.0;
    for (var j = lid; j < p.k; j += WG) {
        let d = a[base + j] - mean;
        acc += d * d;
    }
    let inv = p.kk / sqrt(workgroup_sum(lid, acc) / kf + p.eps);
    acc = 0.0;
    for (var j = lid; j < p.k; j += WG) {
        let v = (a[base + j] - mean) * inv;
        out0[base + j] = v;
        acc += abs(v);
    }
    let total = workgroup_sum(lid, acc);
    if (lid == 0u) {
        out1[2u * r] = mean;
        out1[2u * r + 1u] = inv;
        out1[2u * p.rows + r] = total;
    }
}

// a = stats|rowabs (as written by standardize_rows). One workgroup.
// Writes out0 = q = (b_hat, Q).
@compute @workgroup_size(WG)
fn threshold(@builtin(local_invocation_index) lid: u32) {
    var acc = 0.0;
    for (var r = lid; r < p.rows; r += WG) {
        acc += a[2u * p.rows + r];
    }
    let b_hat = workgroup_sum(lid, acc) / (f32(p.rows) * f32(p.k));
    if (lid == 0u) {
        out0[0] = b_hat;
        out0[1] = -b_hat * log(2.0 - 2.0 * p.tau);
    }
}

// a = w1, b = q. Writes out0 = w2 = clamp(w1, -Q, Q), elementwise.
@compute @workgroup_size(WG)
fn clamp_q(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = group_index(wid, nwg) * WG + lid;
    if (i >= p.rows * p.k) {
        return;
    }
    let q = b[1];
    out0[i] = clamp(a[i], -q, q);
}

// a = w1, b = stats|rowabs, c = g (gradient of w2); q is read from out1[0..2]
// (bound read_write only to keep one layout). Writes out0 = dw:
//   g1 = g * 1[|w1| <= Q], xh = w1 / kk,
//   dw = inv_r * (g1 - mean_r(g1) - xh * mean_r(g1 * xh)),
// the Jacobian of the per-row standardization (as layer norm's, with eps).
@compute @workgroup_size(WG)
fn standardize_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let r = group_index(wid, nwg);
    if (r >= p.rows) {
        return;
    }
    let base = r * p.k;
    let kf = f32(p.k);
    let q = out1[1];
    var s1 = 0.0;
    var s2 = 0.0;
    for (var j = lid; j < p.k; j += WG) {
        let v = a[base + j];
        let g1 = select(0.0, c[base + j], abs(v) <= q);
        s1 += g1;
        s2 += g1 * v / p.kk;
    }
    let m = workgroup_sum2(lid, vec2<f32>(s1, s2)) / kf;
    let m1 = m.x;
    let m2 = m.y;
    let inv = b[2u * r + 1u];
    for (var j = lid; j < p.k; j += WG) {
        let v = a[base + j];
        let g1 = select(0.0, c[base + j], abs(v) <= q);
        out0[base + j] = inv * (g1 - m1 - (v / p.kk) * m2);
    }
}

// a = w1, b = w2, c = alpha [R] (per-row scale); q is read from out1[0..2].
// One workgroup for the whole layer (an epoch-end metric). Writes
// out0 [2 + BINS]: out0[0] = count of |w1| >= Q (dead weights), out0[1] =
// sum of (w2 - alpha_r sign(w2))^2 = (|w2| - alpha_r)^2, out0[2 + i] = count
// of w2 in bin i of BINS equal bins over [-Q, Q] (the clamped mass lands in
// the two end bins).
@compute @workgroup_size(WG)
fn layer_stats(@builtin(local_invocation_index) lid: u32) {
    for (var i = lid; i < BINS; i += WG) {
        atomicStore(&hist[i], 0u);
    }
    workgroupBarrier();
    let q = out1[1];
    let n = p.rows * p.k;
    var dead = 0.0;
    var err = 0.0;
    for (var i = lid; i < n; i += WG) {
        let v1 = a[i];
        let v2 = b[i];
        if (abs(v1) >= q) {
            dead += 1.0;
        }
        let e = abs(v2) - c[i / p.k];
        err += e * e;
        var bin = BINS / 2u;
        if (q > 0.0) {
            let t = (v2 + q) / (2.0 * q) * f32(BINS);
            bin = u32(clamp(t, 0.0, f32(BINS) - 1.0));
        }
        atomicAdd(&hist[bin], 1u);
    }
    let totals = workgroup_sum2(lid, vec2<f32>(dead, err));
    if (lid == 0u) {
        out0[0] = totals.x;
        out0[1] = totals.y;
    }
    for (var i = lid; i < BINS; i += WG) {
        out0[2u + i] = f32(atomicLoad(&hist[i]));
    }
}
