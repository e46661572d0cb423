// Knowledge-distillation loss at temperature T, one invocation per row.
//
// student: f32 [N, C] logits s.
// teacher: f32 [N, C] logits t (detached: no gradient flows to them).
// out:     kd_forward writes f32 [N], the row loss
//            -sum_c softmax(t/T)_c * log softmax(s/T)_c;
//          kd_backward writes f32 [N, C],
//            (softmax(s/T) - softmax(t/T)) * scale, scale = 1 / (N * T).
// Softmaxes subtract the row max first; log softmax is z - m - log sum exp(z - m).

struct Params {
    n: u32,
    c: u32,
    inv_t: f32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> student: array<f32>;
@group(0) @binding(2) var<storage, read> teacher: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

override WG: u32 = 64u;

// Row max and sum of exp(z / T - max) of one row.
struct RowStats {
    m: f32,
    sum: f32,
}

fn student_stats(base: u32) -> RowStats {
    var m = student[base] * p.inv_t;
    for (var j = 1u; j < p.c; j++) {
        m = max(m, student[base + j] * p.inv_t);
    }
    var sum = 0.0;
    for (var j = 0u; j < p.c; j++) {
        sum += exp(student[base + j] * p.inv_t - m);
    }
    return RowStats(m, sum);
}

fn teacher_stats(base: u32) -> RowStats {
    var m = teacher[base] * p.inv_t;
    for (var j = 1u; j < p.c; j++) {
        m = max(m, teacher[base + j] * p.inv_t);
    }
    var sum = 0.0;
    for (var j = 0u; j < p.c; j++) {
        sum += exp(teacher[base + j] * p.inv_t - m);
    }
    return RowStats(m, sum);
}

@compute @workgroup_size(WG)
fn kd_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let r = (wid.x + wid.y * nwg.x) * WG + lid;
    if (r >= p.n) {
        return;
    }
    let base = r * p.c;
    let s = student_stats(base);
    let t = teacher_stats(base);
    let log_zs = log(s.sum);
    var acc = 0.0;
    for (var j = 0u; j < p.c; j++) {
        let pt = exp(teacher[base + j] * p.inv_t - t.m);
        acc += pt * (student[base + j] * p.inv_t - s.m - log_zs);
    }
    out[r] = -acc / t.sum;
}

@compute @workgroup_size(WG)
fn kd_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let r = (wid.x + wid.y * nwg.x) * WG + lid;
    if (r >= p.n) {
        return;
    }
    let base = r * p.c;
    let s = student_stats(base);
    let t = teacher_stats(base);
    let inv_zs = 1.0 / s.sum;
    let inv_zt = 1.0 / t.sum;
    for (var j = 0u; j < p.c; j++) {
        let ps = exp(student[base + j] * p.inv_t - s.m) * inv_zs;
        let pt = exp(teacher[base + j] * p.inv_t - t.m) * inv_zt;
        out[base + j] = (ps - pt) * p.scale;
    }
}
