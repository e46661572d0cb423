// bn_backward_reduce (bn_backward.wgsl) four elements per load, for
// S % 4 == 0: one workgroup per channel, each lane walking its vec4s image
// by image with a running (image, offset) pair as bn_stats4.wgsl does.
// After bn_backward_common.wgsl; bindings as bn_backward.wgsl, gamma and
// dx not used here.

@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> g: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> mean: array<f32>;
@group(0) @binding(5) var<storage, read> invstd: array<f32>;
@group(0) @binding(6) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(7) var<storage, read_write> dbeta: array<f32>;

// Where each lane's walk goes: whole planes (CPU adapters) or strided
// vec4s (GPUs); see below.
override PLANES: bool = false;

@compute @workgroup_size(WG)
fn bn_backward_reduce4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Uniform across the workgroup, so the barriers below stay uniform.
    let ch = wid.x + wid.y * nwg.x;
    if (ch >= p.c) {
        return;
    }
    let m = vec4<f32>(mean[ch]);
    let is = vec4<f32>(invstd[ch]);
    // The clipped STE's mask (bn_backward_common.wgsl): z's operands.
    var ga = vec4<f32>(0.0);
    var be = vec4<f32>(0.0);
    if (p.ste_clip != 0u) {
        ga = vec4<f32>(gamma[ch]);
        be = vec4<f32>(gamma[p.c + ch]);
    }
    let s4 = p.s / 4u;
    // (sum g, sum g * xhat) in one pass.
    var sum_g = vec4<f32>(0.0);
    var sum_gx = vec4<f32>(0.0);
    if (PLANES) {
        // CPU adapters: a lane takes whole planes (images lid, lid + WG,
        // ...) and walks each with a running index; the strided walk's
        // index arithmetic and wrap made this pass 4x slower on lavapipe.
        // The inner bound is kept out of lavapipe's reach (+ wid.z, 0 on a
        // 2-D grid), which would unroll it and specialize the kernel again
        // at every dispatch.
        for (var img = lid; img < p.n; img += WG) {
            let base = (img * p.c + ch) * s4;
            for (var off = 0u; off < s4 + wid.z; off++) {
                let xi = x[base + off];
                let gi = clip4(g[base + off], xi, ga, be, m, is);
                sum_g += gi;
                sum_gx += gi * ((xi - m) * is);
            }
        }
    } else {
        // GPUs: neighbouring lanes read neighbouring vec4s.
        var img = lid / s4;
        var off = lid % s4;
        let step_img = WG / s4;
        let step_off = WG % s4;
        while (img < p.n) {
            let idx = (img * p.c + ch) * s4 + off;
            let xi = x[idx];
            let gi = clip4(g[idx], xi, ga, be, m, is);
            sum_g += gi;
            sum_gx += gi * ((xi - m) * is);
            img += step_img;
            off += step_off;
            if (off >= s4) {
                off -= s4;
                img += 1u;
            }
        }
    }
    let acc = vec2<f32>(
        (sum_g.x + sum_g.y) + (sum_g.z + sum_g.w),
        (sum_gx.x + sum_gx.y) + (sum_gx.z + sum_gx.w),
    );
    let sums = workgroup_sum2(lid, acc);
    if (lid == 0u) {
        dbeta[ch] = sums.x;
        dgamma[ch] = sums.y;
    }
}
