// Register-only microkernels that measure an adapter's arithmetic peaks.
//
// out: u32/f32 [invocations], one value per invocation so the compiler
//      cannot drop the work. Each invocation runs `iters` iterations of 16
//      independent chains: popcount_peak does 16 xor + popcount + add per
//      iteration (16 words = 16 * 64 binary ops), fma_peak 16 FMAs.

struct Params {
    iters: u32,
    seed: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn popcount_peak(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = (wid.x + wid.y * nwg.x) * WG + lid;
    var x: array<u32, 16>;
    var acc: array<u32, 16>;
    for (var i = 0u; i < 16u; i++) {
        x[i] = (idx + p.seed) * (2654435761u + i);
    }
    for (var it = 0u; it < p.iters; it++) {
        for (var i = 0u; i < 16u; i++) {
            acc[i] += countOneBits(x[i] ^ (it + i));
        }
    }
    var s = 0u;
    for (var i = 0u; i < 16u; i++) {
        s += acc[i];
    }
    out[idx] = s;
}

@compute @workgroup_size(WG)
fn fma_peak(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = (wid.x + wid.y * nwg.x) * WG + lid;
    var acc: array<f32, 16>;
    let m = 1.0 + f32(p.seed) * 1e-9;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = f32(idx + i) * 1e-6;
    }
    for (var it = 0u; it < p.iters; it++) {
        for (var i = 0u; i < 16u; i++) {
            acc[i] = fma(acc[i], m, 1e-7);
        }
    }
    var s = 0.0;
    for (var i = 0u; i < 16u; i++) {
        s += acc[i];
    }
    out[idx] = bitcast<u32>(s);
}
