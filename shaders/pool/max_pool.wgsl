// 2x2 max pooling, stride 2, forward; one invocation per output.
//
// x:      f32 [planes, h, w] (planes = N * C).
// y:      f32 [planes, ho, wo], written here, ho = h / 2, wo = w / 2 (floor:
//         an odd last row or column is dropped, as PyTorch does).
// argmax: u32 [planes, ho, wo], written here: the index hh * w + ww within the
//         input plane of the maximum; ties go to the first in row-major
//         order of the window (strict >), as PyTorch does.

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> argmax: array<u32>;

@compute @workgroup_size(WG)
fn max_pool_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    let plane_out = p.ho * p.wo;
    if (i >= p.planes * plane_out) {
        return;
    }
    let plane = i / plane_out;
    let rem = i - plane * plane_out;
    let oh = rem / p.wo;
    let ow = rem - oh * p.wo;
    let base = plane * p.h * p.w;
    let first = 2u * oh * p.w + 2u * ow;
    var best = x[base + first];
    var arg = first;
    // The window's other three elements in row-major order.
    let others = array<u32, 3>(first + 1u, first + p.w, first + p.w + 1u);
    for (var k = 0u; k < 3u; k++) {
        let v = x[base + others[k]];
        if (v > best) {
            best = v;
            arg = others[k];
        }
    }
    y[i] = best;
    argmax[i] = arg;
}
