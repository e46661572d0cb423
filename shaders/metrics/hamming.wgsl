// Hamming distance between two packed sign tensors, accumulated on the
// device: acc[slot] += popcount(a xor b) over n words.
//
// a, b: u32 [n] packed signs (same layout, padding bits 0 in both).
// acc:  u32 [slots], read-modify-written with atomicAdd at `slot`; it is
//       never cleared here, so an epoch's counts can add up before one read.
// Each invocation covers 64 words, so a tensor of a million weights costs
// about 500 atomics.

struct Params {
    n: u32,
    slot: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<u32>;
@group(0) @binding(2) var<storage, read> b: array<u32>;
@group(0) @binding(3) var<storage, read_write> acc: array<atomic<u32>>;

override WG: u32 = 64u;
const WORDS: u32 = 64u;

@compute @workgroup_size(WG)
fn hamming_accumulate(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let start = ((wid.x + wid.y * nwg.x) * WG + lid) * WORDS;
    if (start >= p.n) {
        return;
    }
    let end = min(start + WORDS, p.n);
    var count = 0u;
    for (var i = start; i < end; i++) {
        count += countOneBits(a[i] ^ b[i]);
    }
    if (count != 0u) {
        atomicAdd(&acc[p.slot], count);
    }
}
