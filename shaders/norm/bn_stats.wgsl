// Batch-norm statistics, one element per load (bn_stats_common.wgsl has
// the bindings and the algorithm).

@group(0) @binding(1) var<storage, read> x: array<f32>;

fn element(ch: u32, i: u32) -> f32 {
    let n = i / p.s;
    let s = i - n * p.s;
    return x[(n * p.c + ch) * p.s + s];
}

// (mean, sum of squared deviations) of channel ch, in every lane. The
// second pass also sums the deviations and corrects the mean and the
// squares with them (the corrected two-pass algorithm): a mean far from
// zero rounds off by a few ulps of itself, and that error squared would
// otherwise add to the variance (a GPU runs matrices, S == 1, here).
fn channel_stats(ch: u32, lid: u32) -> vec2<f32> {
    let count = p.n * p.s;
    var acc = 0.0;
    for (var i = lid; i < count; i += WG) {
        acc += element(ch, i);
    }
    let m = workgroup_sum(lid, acc) / f32(count);
    var ds = vec2<f32>(0.0);
    for (var i = lid; i < count; i += WG) {
        let d = element(ch, i) - m;
        ds += vec2<f32>(d, d * d);
    }
    let t = workgroup_sum2(lid, ds);
    return corrected(m, t.x, t.y, count);
}

@compute @workgroup_size(WG)
fn bn_stats_train(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Uniform across the workgroup, so the barriers below stay uniform.
    let ch = wid.x + wid.y * nwg.x;
    if (ch >= p.c) {
        return;
    }
    let st = channel_stats(ch, lid);
    if (lid == 0u) {
        finish_train(ch, st);
    }
}

// p.n as a loop bound lavapipe cannot fold: wid.z is 0 (grids are 2-D), but
// with the bound a constant lavapipe unrolls the loop into a larger shader
// whenever it specializes the kernel on its uniforms, and a shader that grows
// is specialized again at every dispatch (bmlp-f32 at batch 128: 1.8 ms a
// dispatch, 35 ms with its shader cache off).
fn batch_rows(wid: vec3<u32>) -> u32 {
    return p.n + wid.z;
}

// S == 1 (a matrix [N, C]): one lane per channel walks the batch, both
// passes, with no barriers (each costs a switch of every lane on a CPU
// adapter); neighbouring lanes read neighbouring channels. A running sum
// rounds worse than the tree, so the second pass also sums the deviations
// and corrects the mean and the squares with them (the corrected two-pass
// algorithm).
fn channel_stats_lane(ch: u32, n: u32) -> vec2<f32> {
    var acc = 0.0;
    for (var i = 0u; i < n; i++) {
        acc += x[i * p.c + ch];
    }
    let m = acc / f32(p.n);
    var dev = 0.0;
    var sq = 0.0;
    for (var i = 0u; i < n; i++) {
        let d = x[i * p.c + ch] - m;
        dev += d;
        sq += d * d;
    }
    return corrected(m, dev, sq, p.n);
}

@compute @workgroup_size(64)
fn bn_stats_train_lanes(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ch = (wid.x + wid.y * nwg.x) * 64u + lid;
    if (ch < p.c) {
        finish_train(ch, channel_stats_lane(ch, batch_rows(wid)));
    }
}

@compute @workgroup_size(64)
fn bn_stats_lanes(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ch = (wid.x + wid.y * nwg.x) * 64u + lid;
    if (ch < p.c) {
        let st = channel_stats_lane(ch, batch_rows(wid));
        mean[ch] = st.x;
        second[ch] = st.y / f32(p.n);
    }
}

@compute @workgroup_size(WG)
fn bn_stats(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ch = wid.x + wid.y * nwg.x;
    if (ch >= p.c) {
        return;
    }
    let st = channel_stats(ch, lid);
    if (lid == 0u) {
        mean[ch] = st.x;
        second[ch] = st.y / f32(p.n * p.s);
    }
}
