// Sign bit packing (after pack_common.wgsl: Params, WG, THRESH).
//
// x:   f32, viewed as [outer, k, inner] (a matrix is inner = 1; NCHW
//      activations packed along channels are outer = N, k = C, inner = H*W).
// out: u32, one row of kw = ceil(k / 32) words per (outer, inner) pair:
//      row-major [outer * inner, kw], or word-major [kw, outer * inner].
// Element 32j + i of a row goes to bit i of word j (least significant bit
// first); bit 1 means x >= THRESH (0: the sign, +1; 0.5 packs {0, 1}
// values as bit = value). Padding bits of the last word are 0.

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(WG)
fn pack_signs(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = (wid.x + wid.y * nwg.x) * WG + lid;
    if (idx >= p.rows * p.kw) {
        return;
    }
    let row = idx / p.kw;
    let j = idx % p.kw;
    let outer = row / p.inner;
    let s = row % p.inner;
    let k0 = j * 32u;
    let count = min(32u, p.k - k0);
    var word = 0u;
    for (var i = 0u; i < count; i++) {
        if (x[(outer * p.k + k0 + i) * p.inner + s] >= THRESH) {
            word |= 1u << i;
        }
    }
    if (p.word_major != 0u) {
        out[j * p.rows + row] = word;
    } else {
        out[idx] = word;
    }
}
