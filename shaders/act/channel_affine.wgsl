// Per-channel affine map: y[o, c, s] = x[o, c, s] * scale[c] + bias[c], or
// of sign(x) (+1 where x >= 0, else -1) when sign_input != 0 (a binary
// layer's alpha * sign(W) in one pass).
//
// x:     f32 [outer, channels, inner] (a matrix [rows, cols] is outer = rows,
//        channels = cols, inner = 1; NCHW is outer = N, inner = H*W)
// scale: f32 [channels], read when has_scale != 0
// bias:  f32 [channels], read when has_bias != 0
// y:     f32, same shape as x.

struct Params {
    total: u32,
    channels: u32,
    inner: u32,
    has_scale: u32,
    has_bias: u32,
    sign_input: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn channel_affine(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i >= p.total) {
        return;
    }
    let c = (i / p.inner) % p.channels;
    var v = x[i];
    if (p.sign_input != 0u) {
        v = select(-1.0, 1.0, v >= 0.0);
    }
    if (p.has_scale != 0u) {
        v *= scale[c];
    }
    if (p.has_bias != 0u) {
        v += bias[c];
    }
    y[i] = v;
}
