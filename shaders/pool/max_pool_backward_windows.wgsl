// 2x2 max pooling backward for even h and w (no dropped row or column): one
// invocation per window, which writes the window's four dx elements as two
// vec2 rows. Against max_pool_backward.wgsl (one invocation per dx element,
// each reading g and argmax) that is a third of the storage accesses, which
// a CPU adapter executes lane by lane.
//
// g:      f32 [planes, ho, wo], the upstream gradient.
// argmax: u32 [planes, ho, wo], from the forward.
// dx:     f32 [planes, h, w] seen as vec2, written here: g of the window at
//         its argmax element, 0 at the other three.

@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> argmax: array<u32>;
@group(0) @binding(3) var<storage, read_write> dx: array<vec2<f32>>;

@compute @workgroup_size(WG)
fn max_pool_backward_windows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let o = (wid.x + wid.y * nwg.x) * WG + lid;
    let plane_out = p.ho * p.wo;
    if (o >= p.planes * plane_out) {
        return;
    }
    let win = window_of(o);
    let first = win.y;
    let arg = argmax[o];
    let v = g[o];
    let zero = vec2<f32>(0.0);
    let top = select(zero, vec2<f32>(v), vec2<u32>(arg) == vec2<u32>(first, first + 1u));
    let bottom = select(
        zero,
        vec2<f32>(v),
        vec2<u32>(arg) == vec2<u32>(first + p.w, first + p.w + 1u),
    );
    // Even w: both rows start at an even element, a whole vec2.
    let at = (win.x + first) / 2u;
    dx[at] = top;
    dx[at + p.w / 2u] = bottom;
}
