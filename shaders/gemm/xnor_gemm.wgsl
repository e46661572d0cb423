// XNOR-popcount GEMM over packed sign bits.
//
// a:     u32 [m, kw] row-major: row m's k sign bits, 32 per word (bit 1 = +1),
//        padding bits 0.
// b:     u32 [n, kw] row-major (xnor_gemm_rows, xnor_gemm_tiled) or
//        [kw, n] word-major (xnor_gemm_cols); padding bits 0.
// scale: f32 [n] per-output-column scale, read only when has_scale != 0.
// c:     f32 [m, n] = scale[n] * (k - 2 * popcount(a[m] xor b[n])).
//
// Register-blocked variants: each invocation computes RM x RN outputs; the
// workgroup shares its RM rows (uniform loads of a) and spreads columns over
// lanes, column j of lane l being n0 + l + j * WG so neighbouring lanes read
// neighbouring words of a word-major b. No workgroup memory: barriers are
// expensive on CPU adapters. The tiled variant stages 64 x 64 output tiles
// through workgroup memory, which suits real GPUs.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    kw: u32,
    has_scale: u32,
    groups_x: u32,
    groups: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<u32>;
@group(0) @binding(2) var<storage, read> b: array<u32>;
@group(0) @binding(3) var<storage, read> scale: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

override WG: u32 = 64u;
override RM: u32 = 4u;
override RN: u32 = 4u;
const MAX_RM: u32 = 8u;
const MAX_RN: u32 = 4u;

fn store(m: u32, n: u32, pop: u32) {
    var v = f32(i32(p.k) - 2 * i32(pop));
    if (p.has_scale != 0u) {
        v *= scale[n];
    }
    c[m * p.n + n] = v;
}

fn register_block(g: u32, lid: u32, word_major: bool) {
    if (g >= p.groups) {
        return;
    }
    let m0 = (g / p.groups_x) * RM;
    let n0 = (g % p.groups_x) * WG * RN + lid;
    var acc: array<array<u32, MAX_RN>, MAX_RM>;
    var cols: array<u32, MAX_RN>;
    var rows: array<u32, MAX_RM>;
    for (var j = 0u; j < RN; j++) {
        cols[j] = min(n0 + j * WG, p.n - 1u);
    }
    for (var i = 0u; i < RM; i++) {
        rows[i] = min(m0 + i, p.m - 1u) * p.kw;
    }
    for (var w = 0u; w < p.kw; w++) {
        var bw: array<u32, MAX_RN>;
        if (word_major) {
            for (var j = 0u; j < RN; j++) {
                bw[j] = b[w * p.n + cols[j]];
            }
        } else {
            for (var j = 0u; j < RN; j++) {
                bw[j] = b[cols[j] * p.kw + w];
            }
        }
        for (var i = 0u; i < RM; i++) {
            let aw = a[rows[i] + w];
            for (var j = 0u; j < RN; j++) {
                acc[i][j] += countOneBits(aw ^ bw[j]);
            }
        }
    }
    for (var i = 0u; i < RM; i++) {
        let m = m0 + i;
        for (var j = 0u; j < RN; j++) {
            let n = n0 + j * WG;
            if (m < p.m && n < p.n) {
                store(m, n, acc[i][j]);
            }
        }
    }
}

@compute @workgroup_size(WG)
fn xnor_gemm_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    register_block(wid.x + wid.y * nwg.x, lid, false);
}

@compute @workgroup_size(WG)
fn xnor_gemm_cols(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    register_block(wid.x + wid.y * nwg.x, lid, true);
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
        // Words past kw are zero in both tiles: xor 0, popcount 0.
        for (var w = 0u; w < KC; w++) {
            var bw: array<u32, 4>;
            for (var j = 0u; j < 4u; j++) {
                bw[j] = tb[(tx + 16u * j) * KC + w];
            }
            for (var i = 0u; i < 4u; i++) {
                let aw = ta[(ty + 16u * i) * KC + w];
                for (var j = 0u; j < 4u; j++) {
                    acc[i][j] += countOneBits(aw ^ bw[j]);
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

// Register block of 4 rows x 4 columns in vec4 registers (no arrays), word-major b.
@compute @workgroup_size(WG)
fn xnor_gemm_cols_v4(
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
    let last = p.n - 1u;
    let cols = min(vec4<u32>(n0, n0 + WG, n0 + 2u * WG, n0 + 3u * WG), vec4<u32>(last));
    let lastm = p.m - 1u;
    let r0 = min(m0, lastm) * p.kw;
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
        c0 += countOneBits(vec4<u32>(a[r0 + w]) ^ bw);
        c1 += countOneBits(vec4<u32>(a[r1 + w]) ^ bw);
        c2 += countOneBits(vec4<u32>(a[r2 + w]) ^ bw);
        c3 += countOneBits(vec4<u32>(a[r3 + w]) ^ bw);
    }
    let accs = array<vec4<u32>, 4>(c0, c1, c2, c3);
    for (var i = 0u; i < 4u; i++) {
        let m = m0 + i;
        for (var j = 0u; j < 4u; j++) {
            let n = n0 + j * WG;
            if (m < p.m && n < p.n) {
                store(m, n, accs[i][j]);
            }
        }
    }
}
