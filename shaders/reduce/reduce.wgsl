// After reduce_common.wgsl: x one f32 per load.

@group(0) @binding(1) var<storage, read> x: array<f32>;

@compute @workgroup_size(WG)
fn reduce_ncs(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Uniform across the workgroup, so the early exit keeps barriers uniform.
    let g = wid.x + wid.y * nwg.x;
    if (g >= p.c * p.parts) {
        return;
    }
    let ch = g / p.parts;
    let part = g % p.parts;
    let count = p.n * p.s;
    let start = part * p.chunk;
    let end = min(start + p.chunk, count);
    let m = channel_mean(ch);
    var acc = 0.0;
    for (var j = start + lid; j < end; j += WG) {
        let nn = j / p.s;
        let v = x[(nn * p.c + ch) * p.s + (j - nn * p.s)];
        if (p.mode == 0u) {
            acc += v;
        } else if (p.mode == 1u) {
            acc += abs(v);
        } else {
            acc += (v - m) * (v - m);
        }
    }
    red[lid] = acc;
    workgroupBarrier();
    for (var k = WG / 2u; k > 0u; k >>= 1u) {
        if (lid < k) {
            red[lid] += red[lid + k];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        out[g] = finish(red[0]);
    }
}

@compute @workgroup_size(WG)
fn reduce_ncs_lanes(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ch = (wid.x + wid.y * nwg.x) * WG + lid;
    if (ch >= p.c) {
        return;
    }
    let m = channel_mean(ch);
    var acc = vec4<f32>(0.0);
    for (var nn = 0u; nn < p.n; nn++) {
        let base = (nn * p.c + ch) * p.s;
        var j = 0u;
        for (; j + 4u <= p.s; j += 4u) {
            acc += vec4<f32>(
                term(x[base + j], m),
                term(x[base + j + 1u], m),
                term(x[base + j + 2u], m),
                term(x[base + j + 3u], m),
            );
        }
        for (; j < p.s; j++) {
            acc.x += term(x[base + j], m);
        }
    }
    out[ch] = finish((acc.x + acc.y) + (acc.z + acc.w));
}
