// max_pool.wgsl's forward for even h and w: one invocation per window,
// which reads the window's two rows as vec2s (half the loads of four
// scalar ones, each of which a CPU adapter executes lane by lane).

@group(0) @binding(1) var<storage, read> x: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> argmax: array<u32>;

@compute @workgroup_size(WG)
fn max_pool_forward2(
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
    let first = win.y;
    // Even w: both rows start at an even element, a whole vec2.
    let at = (win.x + first) / 2u;
    let m = window_max(x[at], x[at + p.w / 2u], first);
    y[i] = bitcast<f32>(m.x);
    argmax[i] = m.y;
}
