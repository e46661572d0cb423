// ReActNet RPReLU backward.
//
// x:      f32 [N, C, S], the forward input.
// beta, gamma: f32 [C] (zeta is not needed: dy/dzeta = 1).
// g:      f32 [N, C, S], the upstream gradient.
// dx:     f32 [N, C, S], written here: g * (1 if x > gamma[c] else beta[c]).
// dbeta:  f32 [C], written here: sum over n, s of g * (x - gamma[c]) * 1[x <= gamma[c]].
// dgamma: f32 [C], written here: -(sum over n, s of dx).
// dzeta:  f32 [C], written here: sum over n, s of g.
//
// One workgroup per channel, as in rsign_backward: the lanes write dx and
// accumulate the three sums, a workgroup-memory tree adds the lanes.
// That is 8 storage bindings, WebGPU's guaranteed minimum per stage.

struct Params {
    n: u32,
    c: u32,
    s: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> beta: array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> g: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
@group(0) @binding(6) var<storage, read_write> dbeta: array<f32>;
@group(0) @binding(7) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(8) var<storage, read_write> dzeta: array<f32>;

override WG: u32 = 256u;
var<workgroup> red: array<vec3<f32>, WG>;

@compute @workgroup_size(WG)
fn rprelu_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Uniform across the workgroup, so the early exit keeps barriers uniform.
    let ch = wid.x + wid.y * nwg.x;
    if (ch >= p.c) {
        return;
    }
    let b = beta[ch];
    let k0 = gamma[ch];
    // (dbeta, sum of dx, dzeta) of this lane's elements.
    var acc = vec3<f32>(0.0);
    for (var j = lid; j < p.n * p.s; j += WG) {
        let nn = j / p.s;
        let i = (nn * p.c + ch) * p.s + (j - nn * p.s);
        let xi = x[i];
        let t = xi - k0;
        let gi = g[i];
        // Compare x with gamma, not t with 0: the same test as the forward
        // even where the device flushes a tiny difference to zero.
        let above = xi > k0;
        let d = select(b * gi, gi, above);
        dx[i] = d;
        acc += vec3<f32>(select(gi * t, 0.0, above), d, gi);
    }
    red[lid] = acc;
    workgroupBarrier();
    for (var k = WG / 2u; k > 0u; k >>= 1u) {
        if (lid < k) {
            red[lid] += red[lid + k];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        dbeta[ch] = red[0].x;
        dgamma[ch] = -red[0].y;
        dzeta[ch] = red[0].z;
    }
}
