// Takes the padding terms out of a weight gradient computed on
// im2col_bits' rows, where taps outside the image read as +1:
//   s [O, K + T + 1]: row k < K the gradient with those taps as +1,
//   column K + t: sum of g where tap t is outside minus where inside,
//   column K + T: the sum of g.
// The outside sum of tap t is (s[o, K + t] + s[o, K + T]) / 2, so
//   dw[o, k] = s[o, k] - (s[o, K + t] + s[o, K + T]) / 2, t = k % T.

struct Params {
    o: u32,
    k: u32,
    taps: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> s: array<f32>;
@group(0) @binding(2) var<storage, read_write> dw: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn pad_correct(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i >= p.o * p.k) {
        return;
    }
    let o = i / p.k;
    let k = i % p.k;
    let row = o * (p.k + p.taps + 1u);
    let outside = 0.5 * (s[row + p.k + k % p.taps] + s[row + p.k + p.taps]);
    dw[i] = s[row + k] - outside;
}
