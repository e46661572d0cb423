// Appended to im2col_common.wgsl: the f32 im2col layouts, im2col_rows and im2col_cols,
// writing four outputs per lane as one vec4 (the f32 convolutions' layouts:
// the gathers stay scalar, the stores are a quarter).
//
// im2col_rows4: x [N, C, H, W] -> out [P, kp] seen as vec4: taps k .. k + 3 of pixel q
// im2col_cols4: x [N, C, H, W] -> out [K, pp] seen as vec4: pixels q .. q + 3 of tap k
//               (pp % 4 == 0; zero for q >= P)

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;

// The input value under tap k of pixel q (0 outside the image or past K).
fn tap_value(q: u32, k: u32) -> f32 {
    if (k >= p.k) {
        return 0.0;
    }
    let at = tap_offset(q, k);
    return select(0.0, x[u32(max(at, 0))], at >= 0);
}

@compute @workgroup_size(WG)
fn im2col_rows4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = index(wid, nwg, lid);
    let kp4 = p.kp / 4u;
    let pixels = p.images * p.oh * p.ow;
    if (i >= pixels * kp4) {
        return;
    }
    let q = i / kp4;
    let k = (i % kp4) * 4u;
    out[i] = vec4<f32>(tap_value(q, k), tap_value(q, k + 1u), tap_value(q, k + 2u), tap_value(q, k + 3u));
}

@compute @workgroup_size(WG)
fn im2col_cols4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = index(wid, nwg, lid);
    let pp4 = p.pp / 4u;
    if (i >= p.k * pp4) {
        return;
    }
    let k = i / pp4;
    let q = (i % pp4) * 4u;
    let pixels = p.images * p.oh * p.ow;
    var v = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        if (q + j < pixels) {
            v[j] = tap_value(q + j, k);
        }
    }
    out[i] = v;
}
