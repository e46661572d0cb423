// 2x2 max pooling backward; one invocation per input element, so every dx
// element is written (windows do not overlap: a gather, no atomics).
//
// g:      f32 [planes, ho, wo], the upstream gradient.
// argmax: u32 [planes, ho, wo], from the forward.
// dx:     f32 [planes, h, w], written here: g of the window whose argmax is
//         this element, else 0 (also 0 in a dropped odd last row/column).

@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> argmax: array<u32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(WG)
fn max_pool_backward(
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
    let hh = rem / p.w;
    let ww = rem - hh * p.w;
    let oh = hh / 2u;
    let ow = ww / 2u;
    var v = 0.0;
    if (oh < p.ho && ow < p.wo) {
        let o = (plane * p.ho + oh) * p.wo + ow;
        if (argmax[o] == rem) {
            v = g[o];
        }
    }
    dx[i] = v;
}
