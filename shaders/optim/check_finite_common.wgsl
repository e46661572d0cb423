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
// Only lanes that find a bad value touch the atomic. This file holds what
// the two entries share: check_finite.wgsl (one element per lane) and
// check_finite4.wgsl (four per lane, for sizes that are multiples of 4: a
// CPU adapter executes a storage load lane by lane).

struct Params {
    n: u32,
    tag: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read_write> flag: array<atomic<u32>>;

override WG: u32 = 64u;

const EXPONENT: u32 = 0x7f800000u;
