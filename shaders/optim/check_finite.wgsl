// Sets a flag when a tensor holds a NaN or an infinity.
//
// x:    f32 [n] (read), declared as its raw u32 bits.
// flag: u32 [1], read-modify-written: the bits of `tag` are ORed in when
//       some element of x has an all-ones exponent (NaN or +-inf); never
//       cleared here, so several tensors can be checked into one flag, each
//       with its own bit to tell afterwards which one was bad.
//
// WGSL has no isNan (and compilers may fold x != x away), so the test is on
// the bits, loaded as integers so no float path can canonicalise a NaN.
// Only lanes that find a bad value touch the atomic.

struct Params {
    n: u32,
    tag: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> flag: array<atomic<u32>>;

override WG: u32 = 64u;

const EXPONENT: u32 = 0x7f800000u;

@compute @workgroup_size(WG)
fn check_finite(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = (wid.x + wid.y * nwg.x) * WG + lid;
    if (idx >= p.n) {
        return;
    }
    if ((x[idx] & EXPONENT) == EXPONENT) {
        atomicOr(&flag[0], p.tag);
    }
}
