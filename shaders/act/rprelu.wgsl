// ReActNet RPReLU forward: a PReLU shifted per channel before and after.
//
// x:     f32 [N, C, S].
// beta:  f32 [C], the slope below the knee.
// gamma: f32 [C], the input shift (the knee).
// zeta:  f32 [C], the output shift.
// y:     f32 [N, C, S], written here:
//        y = x - gamma[c] + zeta[c]            if x > gamma[c]
//        y = beta[c] * (x - gamma[c]) + zeta[c] otherwise.

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
@group(0) @binding(4) var<storage, read> zeta: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn rprelu_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i >= p.n * p.c * p.s) {
        return;
    }
    let ch = (i / p.s) % p.c;
    let xi = x[i];
    let t = xi - gamma[ch];
    y[i] = select(beta[ch] * t, t, xi > gamma[ch]) + zeta[ch];
}
