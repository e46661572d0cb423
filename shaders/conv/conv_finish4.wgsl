// binary_conv2d.wgsl's conv_finish four elements per lane, for planes of
// whole vec4s (OH * OW % 4 == 0): out = (out - terms) * scale, the same
// arithmetic on a quarter of the storage accesses. After
// binary_conv2d_params.wgsl; bindings as binary_conv2d.wgsl (x and wt unused).

@group(0) @binding(3) var<storage, read> scale: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> terms: array<vec4<i32>>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn conv_finish4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q = (wid.x + wid.y * nwg.x) * WG + lid;
    let plane4 = p.oh * p.ow / 4u;
    if (q >= p.n * p.o * plane4) {
        return;
    }
    let os = q % (p.o * plane4);
    var v = out[q] - vec4<f32>(terms[os]);
    if (p.has_scale != 0u) {
        v *= scale[os / plane4];
    }
    out[q] = v;
}

// conv_finish4 for CPU adapters: a lane takes RUN consecutive vec4s and
// divides once for the first one's (channel, offset), then steps; lavapipe
// runs integer divisions lane by lane, and the two a vec4 were most of
// conv_finish4's time.
override RUN: u32 = 8u;

@compute @workgroup_size(WG)
fn conv_finish4_runs(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q0 = ((wid.x + wid.y * nwg.x) * WG + lid) * RUN;
    let plane4 = p.oh * p.ow / 4u;
    let image4 = p.o * plane4;
    let total = p.n * image4;
    if (q0 >= total) {
        return;
    }
    var os = q0 % image4;
    var ch = os / plane4;
    var off = os - ch * plane4;
    for (var j = 0u; j < RUN; j++) {
        let q = q0 + j;
        if (q < total) {
            var v = out[q] - vec4<f32>(terms[os]);
            if (p.has_scale != 0u) {
                v *= scale[ch];
            }
            out[q] = v;
        }
        os += 1u;
        off += 1u;
        let next_channel = off == plane4;
        off = select(off, 0u, next_channel);
        ch += select(0u, 1u, next_channel);
        let next_image = os == image4;
        os = select(os, 0u, next_image);
        ch = select(ch, 0u, next_image);
    }
}
