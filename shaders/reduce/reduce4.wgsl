// reduce_ncs_lanes (reduce.wgsl) a vec4 per load, for S % 4 == 0 (every
// channel's run of S values then starts on a vec4): a quarter of the loads,
// which a CPU adapter executes lane by lane. The same four interleaved
// partial sums. After reduce_common.wgsl.

@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn reduce_ncs_lanes4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ch = (wid.x + wid.y * nwg.x) * WG + lid;
    if (ch >= p.c) {
        return;
    }
    let m = channel_mean(ch);
    let s4 = p.s / 4u;
    var acc = vec4<f32>(0.0);
    for (var nn = 0u; nn < p.n; nn++) {
        let base = (nn * p.c + ch) * s4;
        for (var j = 0u; j < s4; j++) {
            let v = x[base + j];
            acc += vec4<f32>(term(v.x, m), term(v.y, m), term(v.z, m), term(v.w, m));
        }
    }
    out[ch] = finish((acc.x + acc.y) + (acc.z + acc.w));
}
