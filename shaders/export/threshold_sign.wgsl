// Folded batch norm + sign of a packed model: integers to +-1 by a
// per-channel threshold, elementwise over x viewed as [N, C, S].
//
// x:      f32 [N, C, S] (read): exact integers below 2^24 in magnitude, as
//         xnor_gemm, binary_conv2d (no scale), max pooling of those, or an
//         f32 GEMM of small integers write them, so i32(x) is exact.
// thr:    u32 [C] (read): the i32 threshold's bit pattern.
// flip:   u32 [C] (read): 0 or 1.
// y:      f32 [N, C, S], written: +1 where (flip == 0 and x >= thr) or
//         (flip == 1 and x <= thr), -1 elsewhere.
// Integer comparisons only, so every device agrees with the CPU runtime.

struct Params {
    total: u32,
    c: u32,
    s: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> thr: array<u32>;
@group(0) @binding(3) var<storage, read> flip: array<u32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn threshold_sign(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = (wid.x + wid.y * nwg.x) * WG + lid;
    if (idx >= p.total) {
        return;
    }
    let ch = (idx / p.s) % p.c;
    let v = i32(x[idx]);
    let t = bitcast<i32>(thr[ch]);
    let on = select(v >= t, v <= t, flip[ch] != 0u);
    y[idx] = select(-1.0, 1.0, on);
}
