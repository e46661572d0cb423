// max_pool.wgsl's forward for w % 4 == 0: one invocation per two
// neighbouring windows, which reads their rows as vec4s and writes both
// outputs as a vec2 (a quarter of the loads and half the stores of one
// scalar access each, which a CPU adapter executes lane by lane).

@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> argmax: array<vec2<u32>>;

@compute @workgroup_size(WG)
fn max_pool_forward4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Pair q holds outputs 2q and 2q + 1 (wo is even: a pair lies in a row).
    let q = (wid.x + wid.y * nwg.x) * WG + lid;
    let plane_out = p.ho * p.wo;
    if (2u * q >= p.planes * plane_out) {
        return;
    }
    let i = 2u * q;
    let win = window_of(i);
    let first = win.y;
    // w % 4 == 0 and ow even: both rows start at a multiple of 4.
    let at = (win.x + first) / 4u;
    let top = x[at];
    let bottom = x[at + p.w / 4u];
    let a = window_max(top.xy, bottom.xy, first);
    let b = window_max(top.zw, bottom.zw, first + 2u);
    y[q] = vec2<f32>(bitcast<f32>(a.x), bitcast<f32>(b.x));
    argmax[q] = vec2<u32>(a.y, b.y);
}
