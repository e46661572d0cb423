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
