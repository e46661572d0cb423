// XNOR-popcount GEMM over packed sign bits.
//
// a:     u32 [m, kw] row-major: row m's k sign bits, 32 per word (bit 1 = +1),
//        padding bits 0.
// b:     u32 [n, kw] row-major (xnor_gemm_rows, xnor_gemm_tiled) or
//        [kw, n] word-major (xnor_gemm_cols); padding bits 0.
// scale: f32 [n] per-output-column scale, read only when has_scale != 0.
// c:     f32 [m, n] = scale[n] * (k - 2 * popcount(a[m] xor b[n])), or with
//        plane != 0 the same values as [n / plane, m, plane].
//
// With the override AND_A = 1, a holds {0, 1} values (bit 1 = 1) and b
// {-1, +1} signs, whose dot product is not the XNOR identity:
// c = scale[n] * (2 * popcount(a[m] and b[n]) - popcount(a[m])). The terms
// are accumulated in u32 modulo 2^32 and read back as i32, which is exact.
// Padding bits are 0 in a, so they add nothing to either popcount.
//
// xnor_gemm_cols_r{4,8,16}: each invocation holds R rows x 4 columns in vec4
// registers; the workgroup shares its R rows (uniform loads of a) and spreads
// columns over lanes, column j of lane l being n0 + l + j * WG so
// neighbouring lanes read neighbouring words of a word-major b. No workgroup
// memory: barriers are expensive on CPU adapters. xnor_gemm_tiled stages
// 64 x 64 output tiles through workgroup memory, which suits real GPUs.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    kw: u32,
    has_scale: u32,
    groups_x: u32,
    groups: u32,
    // Nonzero: c is written as [n / plane, m, plane] (a convolution's
    // [N, O, OH*OW] with the pixels as columns) instead of [m, n], from
    // element out_offset on.
    plane: u32,
    out_offset: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<u32>;
@group(0) @binding(2) var<storage, read> b: array<u32>;
@group(0) @binding(3) var<storage, read> scale: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

override WG: u32 = 64u;
override AND_A: u32 = 0u;

// One word pair's share of the accumulator (see the header).
fn term(aw: u32, bw: u32) -> u32 {
    if (AND_A != 0u) {
        return 2u * countOneBits(aw & bw) - countOneBits(aw);
    }
    return countOneBits(aw ^ bw);
}

fn term4(aw: u32, bw: vec4<u32>) -> vec4<u32> {
    if (AND_A != 0u) {
        return 2u * countOneBits(vec4<u32>(aw) & bw) - vec4<u32>(countOneBits(aw));
    }
    return countOneBits(vec4<u32>(aw) ^ bw);
}

fn store(m: u32, n: u32, pop: u32) {
    var v = f32(i32(p.k) - 2 * i32(pop));
    if (AND_A != 0u) {
        v = f32(bitcast<i32>(pop));
    }
    if (p.has_scale != 0u) {
        v *= scale[n];
    }
    if (p.plane != 0u) {
        c[p.out_offset + ((n / p.plane) * p.m + m) * p.plane + n % p.plane] = v;
    } else {
        c[m * p.n + n] = v;
    }
}

// Tiled: 256 invocations as 16 x 16, each 4 x 4 outputs of a 64 x 64 tile;
// k is walked in chunks of 16 words staged in workgroup memory.
const TILE: u32 = 64u;
const KC: u32 = 16u;
var<workgroup> ta: array<u32, 1024>;
var<workgroup> tb: array<u32, 1024>;

@compute @workgroup_size(256)
fn xnor_gemm_tiled(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Uniform across the workgroup, so the early exit keeps barriers uniform.
    let g = wid.x + wid.y * nwg.x;
    if (g >= p.groups) {
        return;
    }
    let m_tile = (g / p.groups_x) * TILE;
    let n_tile = (g % p.groups_x) * TILE;
    let tx = lid % 16u;
    let ty = lid / 16u;
    var acc: array<array<u32, 4>, 4>;
    for (var w0 = 0u; w0 < p.kw; w0 += KC) {
        for (var e = lid; e < TILE * KC; e += 256u) {
            let r = e / KC;
            let w = w0 + e % KC;
            let m = m_tile + r;
            let n = n_tile + r;
            var va = 0u;
            var vb = 0u;
            if (m < p.m && w < p.kw) {
                va = a[m * p.kw + w];
            }
            if (n < p.n && w < p.kw) {
                vb = b[n * p.kw + w];
            }
            ta[e] = va;
            tb[e] = vb;
        }
        workgroupBarrier();
        // Words past kw are zero in both tiles: they add 0 in either mode.
        for (var w = 0u; w < KC; w++) {
            var bw: array<u32, 4>;
            for (var j = 0u; j < 4u; j++) {
                bw[j] = tb[(tx + 16u * j) * KC + w];
            }
            for (var i = 0u; i < 4u; i++) {
                let aw = ta[(ty + 16u * i) * KC + w];
                for (var j = 0u; j < 4u; j++) {
                    acc[i][j] += term(aw, bw[j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let m = m_tile + ty + 16u * i;
        for (var j = 0u; j < 4u; j++) {
            let n = n_tile + tx + 16u * j;
            if (m < p.m && n < p.n) {
                store(m, n, acc[i][j]);
            }
        }
    }
}

// Stores one row's 4 columns n0, n0 + WG, n0 + 2 WG, n0 + 3 WG.
fn store4(m: u32, n0: u32, pop: vec4<u32>) {
    if (m >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let n = n0 + j * WG;
        if (n < p.n) {
            store(m, n, pop[j]);
        }
    }
}

// ---- generated by scripts/gen_gemm_blocks.py below; do not edit ----

// 4 rows x 4 columns in vec4 registers, word-major b.
@compute @workgroup_size(WG)
fn xnor_gemm_cols_r4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= p.groups) {
        return;
    }
    let m0 = (g / p.groups_x) * 4u;
    let n0 = (g % p.groups_x) * WG * 4u + lid;
    let cols = min(vec4<u32>(n0, n0 + WG, n0 + 2u * WG, n0 + 3u * WG), vec4<u32>(p.n - 1u));
    let lastm = p.m - 1u;
    let r0 = min(m0 + 0u, lastm) * p.kw;
    let r1 = min(m0 + 1u, lastm) * p.kw;
    let r2 = min(m0 + 2u, lastm) * p.kw;
    let r3 = min(m0 + 3u, lastm) * p.kw;
    var c0 = vec4<u32>(0u);
    var c1 = vec4<u32>(0u);
    var c2 = vec4<u32>(0u);
    var c3 = vec4<u32>(0u);
    for (var w = 0u; w < p.kw; w++) {
        let base = w * p.n;
        let bw = vec4<u32>(b[base + cols.x], b[base + cols.y], b[base + cols.z], b[base + cols.w]);
        c0 += term4(a[r0 + w], bw);
        c1 += term4(a[r1 + w], bw);
        c2 += term4(a[r2 + w], bw);
        c3 += term4(a[r3 + w], bw);
    }
    store4(m0 + 0u, n0, c0);
    store4(m0 + 1u, n0, c1);
    store4(m0 + 2u, n0, c2);
    store4(m0 + 3u, n0, c3);
}

// 8 rows x 4 columns in vec4 registers, word-major b.
@compute @workgroup_size(WG)
fn xnor_gemm_cols_r8(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= p.groups) {
        return;
    }
    let m0 = (g / p.groups_x) * 8u;
    let n0 = (g % p.groups_x) * WG * 4u + lid;
    let cols = min(vec4<u32>(n0, n0 + WG, n0 + 2u * WG, n0 + 3u * WG), vec4<u32>(p.n - 1u));
    let lastm = p.m - 1u;
    let r0 = min(m0 + 0u, lastm) * p.kw;
    let r1 = min(m0 + 1u, lastm) * p.kw;
    let r2 = min(m0 + 2u, lastm) * p.kw;
    let r3 = min(m0 + 3u, lastm) * p.kw;
    let r4 = min(m0 + 4u, lastm) * p.kw;
    let r5 = min(m0 + 5u, lastm) * p.kw;
    let r6 = min(m0 + 6u, lastm) * p.kw;
    let r7 = min(m0 + 7u, lastm) * p.kw;
    var c0 = vec4<u32>(0u);
    var c1 = vec4<u32>(0u);
    var c2 = vec4<u32>(0u);
    var c3 = vec4<u32>(0u);
    var c4 = vec4<u32>(0u);
    var c5 = vec4<u32>(0u);
    var c6 = vec4<u32>(0u);
    var c7 = vec4<u32>(0u);
    for (var w = 0u; w < p.kw; w++) {
        let base = w * p.n;
        let bw = vec4<u32>(b[base + cols.x], b[base + cols.y], b[base + cols.z], b[base + cols.w]);
        c0 += term4(a[r0 + w], bw);
        c1 += term4(a[r1 + w], bw);
        c2 += term4(a[r2 + w], bw);
        c3 += term4(a[r3 + w], bw);
        c4 += term4(a[r4 + w], bw);
        c5 += term4(a[r5 + w], bw);
        c6 += term4(a[r6 + w], bw);
        c7 += term4(a[r7 + w], bw);
    }
    store4(m0 + 0u, n0, c0);
    store4(m0 + 1u, n0, c1);
    store4(m0 + 2u, n0, c2);
    store4(m0 + 3u, n0, c3);
    store4(m0 + 4u, n0, c4);
    store4(m0 + 5u, n0, c5);
    store4(m0 + 6u, n0, c6);
    store4(m0 + 7u, n0, c7);
}

// 16 rows x 4 columns in vec4 registers, word-major b.
@compute @workgroup_size(WG)
fn xnor_gemm_cols_r16(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= p.groups) {
        return;
    }
    let m0 = (g / p.groups_x) * 16u;
    let n0 = (g % p.groups_x) * WG * 4u + lid;
    let cols = min(vec4<u32>(n0, n0 + WG, n0 + 2u * WG, n0 + 3u * WG), vec4<u32>(p.n - 1u));
    let lastm = p.m - 1u;
    let r0 = min(m0 + 0u, lastm) * p.kw;
    let r1 = min(m0 + 1u, lastm) * p.kw;
    let r2 = min(m0 + 2u, lastm) * p.kw;
    let r3 = min(m0 + 3u, lastm) * p.kw;
    let r4 = min(m0 + 4u, lastm) * p.kw;
    let r5 = min(m0 + 5u, lastm) * p.kw;
    let r6 = min(m0 + 6u, lastm) * p.kw;
    let r7 = min(m0 + 7u, lastm) * p.kw;
    let r8 = min(m0 + 8u, lastm) * p.kw;
    let r9 = min(m0 + 9u, lastm) * p.kw;
    let r10 = min(m0 + 10u, lastm) * p.kw;
    let r11 = min(m0 + 11u, lastm) * p.kw;
    let r12 = min(m0 + 12u, lastm) * p.kw;
    let r13 = min(m0 + 13u, lastm) * p.kw;
    let r14 = min(m0 + 14u, lastm) * p.kw;
    let r15 = min(m0 + 15u, lastm) * p.kw;
    var c0 = vec4<u32>(0u);
    var c1 = vec4<u32>(0u);
    var c2 = vec4<u32>(0u);
    var c3 = vec4<u32>(0u);
    var c4 = vec4<u32>(0u);
    var c5 = vec4<u32>(0u);
    var c6 = vec4<u32>(0u);
    var c7 = vec4<u32>(0u);
    var c8 = vec4<u32>(0u);
    var c9 = vec4<u32>(0u);
    var c10 = vec4<u32>(0u);
    var c11 = vec4<u32>(0u);
    var c12 = vec4<u32>(0u);
    var c13 = vec4<u32>(0u);
    var c14 = vec4<u32>(0u);
    var c15 = vec4<u32>(0u);
    for (var w = 0u; w < p.kw; w++) {
        let base = w * p.n;
        let bw = vec4<u32>(b[base + cols.x], b[base + cols.y], b[base + cols.z], b[base + cols.w]);
        c0 += term4(a[r0 + w], bw);
        c1 += term4(a[r1 + w], bw);
        c2 += term4(a[r2 + w], bw);
        c3 += term4(a[r3 + w], bw);
        c4 += term4(a[r4 + w], bw);
        c5 += term4(a[r5 + w], bw);
        c6 += term4(a[r6 + w], bw);
        c7 += term4(a[r7 + w], bw);
        c8 += term4(a[r8 + w], bw);
        c9 += term4(a[r9 + w], bw);
        c10 += term4(a[r10 + w], bw);
        c11 += term4(a[r11 + w], bw);
        c12 += term4(a[r12 + w], bw);
        c13 += term4(a[r13 + w], bw);
        c14 += term4(a[r14 + w], bw);
        c15 += term4(a[r15 + w], bw);
    }
    store4(m0 + 0u, n0, c0);
    store4(m0 + 1u, n0, c1);
    store4(m0 + 2u, n0, c2);
    store4(m0 + 3u, n0, c3);
    store4(m0 + 4u, n0, c4);
    store4(m0 + 5u, n0, c5);
    store4(m0 + 6u, n0, c6);
    store4(m0 + 7u, n0, c7);
    store4(m0 + 8u, n0, c8);
    store4(m0 + 9u, n0, c9);
    store4(m0 + 10u, n0, c10);
    store4(m0 + 11u, n0, c11);
    store4(m0 + 12u, n0, c12);
    store4(m0 + 13u, n0, c13);
    store4(m0 + 14u, n0, c14);
    store4(m0 + 15u, n0, c15);
}
