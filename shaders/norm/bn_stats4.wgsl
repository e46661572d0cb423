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

// Lane lid's share of channel ch's sum (squares == false) or sum of
// squared deviations from m (squares == true), uniform across the lanes.
fn channel_sum4(ch: u32, lid: u32, m: f32, squares: bool) -> f32 {
    let s4 = p.s / 4u;
    let q = lane_positions(lid);
    var img = q.x;
    var off = q.y;
    var acc = vec4<f32>(0.0);
    while (img < p.n) {
        let v = x[(img * p.c + ch) * s4 + off];
        if (squares) {
            let d = v - vec4<f32>(m);
            acc += d * d;
        } else {
            acc += v;
        }
        img += q.z;
        off += q.w;
        if (off >= s4) {
            off -= s4;
            img += 1u;
        }
    }
    return (acc.x + acc.y) + (acc.z + acc.w);
}

// (mean, sum of squared deviations) of channel ch, in every lane.
fn channel_stats4(ch: u32, lid: u32) -> vec2<f32> {
    let m = workgroup_sum(lid, channel_sum4(ch, lid, 0.0, false)) / f32(p.n * p.s);
    return vec2<f32>(m, workgroup_sum(lid, channel_sum4(ch, lid, m, true)));
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
    let st = channel_stats4(ch, lid);
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
    let st = channel_stats4(ch, lid);
    if (lid == 0u) {
        mean[ch] = st.x;
        second[ch] = st.y / f32(p.n * p.s);
    }
}
