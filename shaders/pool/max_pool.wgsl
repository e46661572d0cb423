// 2x2 max pooling, stride 2, forward; one invocation per output (any h, w;
// max_pool_forward2.wgsl and max_pool_forward4.wgsl serve even h and w).
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
    let win = window_of(i);
    let base = win.x;
    let first = win.y;
    let at = base + first;
    let m = window_max(
        vec2<f32>(x[at], x[at + 1u]),
        vec2<f32>(x[at + p.w], x[at + p.w + 1u]),
        first,
    );
    y[i] = bitcast<f32>(m.x);
    argmax[i] = m.y;
}
