// Register-only microkernels that measure an adapter's arithmetic peaks.
//
// out: u32/f32 [invocations], one value per invocation so the compiler
//      cannot drop the work. Each invocation runs `iters` iterations:
//      popcount_peak does 16 xor + popcount + add (16 independent chains; 16
//      words = 16 * 64 binary ops; the y update adds a vector add per four
//      xor-popcount-adds), fma_peak 32 FMAs in 32 independent chains. With
//      16 FMA chains lavapipe measured 20-30% below this: the loop's own
//      cost (its exec-mask bookkeeping) is then a visible share, and a peak
//      measured low would overstate every "% of FMA peak".

struct Params {
    iters: u32,
    seed: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;

override WG: u32 = 64u;

// Four vec4 chains = 16 independent lanes of work per invocation, held in
// registers (no arrays, which a compiler may keep in memory).
@compute @workgroup_size(WG)
fn popcount_peak(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = (wid.x + wid.y * nwg.x) * WG + lid;
    let x = vec4<u32>(idx + p.seed) * vec4<u32>(2654435761u, 2246822519u, 3266489917u, 668265263u);
    var a0 = vec4<u32>(0u);
    var a1 = vec4<u32>(0u);
    var a2 = vec4<u32>(0u);
    var a3 = vec4<u32>(0u);
    var y = x;
    for (var it = 0u; it < p.iters; it++) {
        a0 += countOneBits(x ^ y);
        a1 += countOneBits(x ^ y.yzwx);
        a2 += countOneBits(x ^ y.zwxy);
        a3 += countOneBits(x ^ y.wxyz);
        y += vec4<u32>(1u);
    }
    let s = a0 + a1 + a2 + a3;
    out[idx] = s.x + s.y + s.z + s.w;
}

@compute @workgroup_size(WG)
fn fma_peak(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = (wid.x + wid.y * nwg.x) * WG + lid;
    let m = vec4<f32>(1.0 + f32(p.seed) * 1e-9);
    let c = vec4<f32>(1e-7);
    var a0 = vec4<f32>(f32(idx) * 1e-6);
    var a1 = a0 + vec4<f32>(1e-3);
    var a2 = a0 + vec4<f32>(2e-3);
    var a3 = a0 + vec4<f32>(3e-3);
    var a4 = a0 + vec4<f32>(4e-3);
    var a5 = a0 + vec4<f32>(5e-3);
    var a6 = a0 + vec4<f32>(6e-3);
    var a7 = a0 + vec4<f32>(7e-3);
    for (var it = 0u; it < p.iters; it++) {
        a0 = fma(a0, m, c);
        a1 = fma(a1, m, c);
        a2 = fma(a2, m, c);
        a3 = fma(a3, m, c);
        a4 = fma(a4, m, c);
        a5 = fma(a5, m, c);
        a6 = fma(a6, m, c);
        a7 = fma(a7, m, c);
    }
    let s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
    out[idx] = bitcast<u32>(s.x + s.y + s.z + s.w);
}
