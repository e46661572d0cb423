// pack_signs.wgsl (same parameters, same bits) reading x as vec4s: a
// quarter of the loads, which a CPU adapter executes lane by lane.
//
// pack_rows4:  inner == 1 and k % 4 == 0: a lane packs one word of a row
//              from 8 vec4s.
// pack_inner4: inner % 4 == 0: a lane packs word j of four neighbouring
//              rows (s .. s + 3 of one outer index), one vec4 per k step.

@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

// A select, not a branch on p.word_major: with four branched stores lavapipe
// re-specialized the kernel at every dispatch (about 2 ms each).
fn store(row: u32, j: u32, word: u32) {
    out[select(row * p.kw + j, j * p.rows + row, p.word_major != 0u)] = word;
}

// Bits 1 where the four values reach THRESH, as bits 0..3.
fn nibble(v: vec4<f32>) -> u32 {
    let b = vec4<u32>(v >= vec4<f32>(THRESH)) << vec4<u32>(0u, 1u, 2u, 3u);
    return b.x | b.y | b.z | b.w;
}

@compute @workgroup_size(WG)
fn pack_rows4(
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
    let k0 = j * 32u;
    let quads = min(32u, p.k - k0) / 4u;
    let base = (row * p.k + k0) / 4u;
    var word = 0u;
    for (var i = 0u; i < quads; i++) {
        word |= nibble(x[base + i]) << (4u * i);
    }
    store(row, j, word);
}

@compute @workgroup_size(WG)
fn pack_inner4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = (wid.x + wid.y * nwg.x) * WG + lid;
    let quads = p.rows / 4u;
    if (idx >= quads * p.kw) {
        return;
    }
    let quad = idx / p.kw;
    let j = idx % p.kw;
    // Rows 4 quad .. 4 quad + 3 share their outer index (inner % 4 == 0).
    let row = 4u * quad;
    let outer = row / p.inner;
    let s = row % p.inner;
    let k0 = j * 32u;
    let count = min(32u, p.k - k0);
    var words = vec4<u32>(0u);
    for (var i = 0u; i < count; i++) {
        let v = x[((outer * p.k + k0 + i) * p.inner + s) / 4u];
        words |= vec4<u32>(v >= vec4<f32>(THRESH)) << vec4<u32>(i);
    }
    store(row, j, words.x);
    store(row + 1u, j, words.y);
    store(row + 2u, j, words.z);
    store(row + 3u, j, words.w);
}
