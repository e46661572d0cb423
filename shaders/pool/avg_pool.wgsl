// 2x2 average pooling, stride 2, forward and backward.
//
// avg_pool_forward:  src = x f32 [planes, h, w]; dst = y f32 [planes, ho, wo],
//                    written here: the mean of each 2x2 window (ho = h / 2,
//                    wo = w / 2, floor). One invocation per output.
// avg_pool_backward: src = g f32 [planes, ho, wo]; dst = dx f32 [planes, h, w],
//                    written here: g / 4 of the element's window, 0 in a
//                    dropped odd last row/column. One invocation per input.

@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(WG)
fn avg_pool_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    let plane_out = p.ho * p.wo;
    if (i >= p.planes * plane_out) {
        return;
    }
    let win = window_of(i);
    let first = win.x + win.y;
    let top = src[first] + src[first + 1u];
    let bottom = src[first + p.w] + src[first + p.w + 1u];
    dst[i] = 0.25 * (top + bottom);
}

@compute @workgroup_size(WG)
fn avg_pool_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    let plane_in = p.h * p.w;
    if (i >= p.planes * plane_in) {
        return;
    }
    let plane = i / plane_in;
    let rem = i - plane * plane_in;
    let oh = (rem / p.w) / 2u;
    let ow = (rem % p.w) / 2u;
    var v = 0.0;
    if (oh < p.ho && ow < p.wo) {
        v = 0.25 * src[(plane * p.ho + oh) * p.wo + ow];
    }
    dst[i] = v;
}
