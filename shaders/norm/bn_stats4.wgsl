// bn_stats_train / bn_stats four elements per load, for S % 4 == 0 (a vec4
// then lies in one channel's plane): one workgroup per channel as in
// bn_stats.wgsl, and each lane walks its vec4s image by image with a
// running (image, offset) pair instead of dividing every index by S.

@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;

// Lane lid reads positions lid, lid + WG, ... of a channel's N * S / 4
// vec4s: (image, offset) of its first position and of one step of WG.
fn lane_positions(lid: u32) -> vec4<u32> {
    let s4 = p.s / 4u;
    return vec4<u32>(lid / s4, lid % s4, WG / s4, WG % s4);
}

// Where each lane's walk goes: whole planes (CPU adapters) or strided
// vec4s (GPUs); see channel_sum4.
override PLANES: bool = false;

fn term4(v: vec4<f32>, m: f32, squares: bool) -> vec4<f32> {
    if (squares) {
        let d = v - vec4<f32>(m);
        return d * d;
    }
    return v;
}

// Lane lid's share of channel ch's sum (squares == false) or sum of
// squared deviations from m (squares == true), uniform across the lanes.
fn channel_sum4(ch: u32, lid: u32, m: f32, squares: bool, z: u32) -> f32 {
    let s4 = p.s / 4u;
    var acc = vec4<f32>(0.0);
    if (PLANES) {
        // CPU adapters: a lane takes whole planes (images lid, lid + WG,
        // ...) and walks each with a running index; the strided walk's
        // index arithmetic and wrap cost lavapipe several times more. The
        // inner bound is kept out of lavapipe's reach (+ z, wid.z: 0 on a
        // 2-D grid), which would unroll it and specialize the kernel again
        // at every dispatch.
        for (var img = lid; img < p.n; img += WG) {
            let base = (img * p.c + ch) * s4;
            for (var off = 0u; off < s4 + z; off++) {
                acc += term4(x[base + off], m, squares);
            }
        }
    } else {
        // GPUs: neighbouring lanes read neighbouring vec4s.
        let q = lane_positions(lid);
        var img = q.x;
        var off = q.y;
        while (img < p.n) {
            acc += term4(x[(img * p.c + ch) * s4 + off], m, squares);
            img += q.z;
            off += q.w;
            if (off >= s4) {
                off -= s4;
                img += 1u;
            }
        }
    }
    return (acc.x + acc.y) + (acc.z + acc.w);
}

// (mean, sum of squared deviations) of channel ch, in every lane.
fn channel_stats4(ch: u32, lid: u32, z: u32) -> vec2<f32> {
    let m = workgroup_sum(lid, channel_sum4(ch, lid, 0.0, false, z)) / f32(p.n * p.s);
    return vec2<f32>(m, workgroup_sum(lid, channel_sum4(ch, lid, m, true, z)));
}

@compute @workgroup_size(WG)
fn bn_stats_train4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Uniform across the workgroup, so the barriers below stay uniform.
    let ch = wid.x + wid.y * nwg.x;
    if (ch >= p.c) {
        return;
    }
    let st = channel_stats4(ch, lid, wid.z);
    if (lid == 0u) {
        finish_train(ch, st);
    }
}

@compute @workgroup_size(WG)
fn bn_stats4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ch = wid.x + wid.y * nwg.x;
    if (ch >= p.c) {
        return;
    }
    let st = channel_stats4(ch, lid, wid.z);
    if (lid == 0u) {
        mean[ch] = st.x;
        second[ch] = st.y / f32(p.n * p.s);
    }
}
