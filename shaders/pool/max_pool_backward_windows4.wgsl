// max_pool_backward_windows.wgsl for w % 4 == 0 and even h: one invocation
// per two neighbouring windows (as max_pool_forward4.wgsl), which reads
// their gradients and argmaxes as vec2s and writes their four dx rows'
// halves as two vec4s: half the storage accesses of one window a lane,
// which a CPU adapter executes lane by lane.
//
// g:      f32 [planes, ho, wo] seen as vec2 (wo is even: a pair lies in a row).
// argmax: u32 [planes, ho, wo] seen as vec2, from the forward.
// dx:     f32 [planes, h, w] seen as vec4, written here: g of each window
//         at its argmax element, 0 at the other three.

@group(0) @binding(1) var<storage, read> g: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> argmax: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read_write> dx: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn max_pool_backward_windows4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q = (wid.x + wid.y * nwg.x) * WG + lid;
    if (2u * q >= p.planes * p.ho * p.wo) {
        return;
    }
    let win = window_of(2u * q);
    let first = win.y;
    let arg = argmax[q];
    let v = g[q];
    // Columns first .. first + 3 of the two rows: the left window's two,
    // then the right one's (which starts at first + 2).
    let cols = vec4<u32>(first, first + 1u, first + 2u, first + 3u);
    let args = vec4<u32>(arg.x, arg.x, arg.y, arg.y);
    let vals = vec4<f32>(v.x, v.x, v.y, v.y);
    let zero = vec4<f32>(0.0);
    // w % 4 == 0 and an even output column: both rows start at a multiple of 4.
    let at = (win.x + first) / 4u;
    dx[at] = select(zero, vals, args == cols);
    dx[at + p.w / 4u] = select(zero, vals, args == cols + vec4<u32>(p.w));
}
