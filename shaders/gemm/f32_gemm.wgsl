// f32 GEMM with strided operands, which covers A*B, A^T*B and A*B^T.
//
// a:     f32, element (m, kk) at a[m * a_sm + kk * a_sk]
// b:     f32, element (kk, n) at b[kk * b_sk + n * b_sn]
// scale: f32 [n], read when has_scale != 0
// bias:  f32 [n], read when has_bias != 0
// c:     f32 [m, n] row-major;
//        c = (sum_kk a(m, kk) * b(kk, n)) * scale[n] + bias[n] (+ c if accumulate).
//
// f32_gemm_block: each invocation computes RM x RN outputs; the workgroup
// shares its RM rows and spreads columns over lanes (column j of lane l is
// n0 + l + j * WG), no workgroup memory. f32_gemm_tiled: 64 x 64 tiles staged
// through workgroup memory, for real GPUs.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    a_sm: u32,
    a_sk: u32,
    b_sk: u32,
    b_sn: u32,
    has_scale: u32,
    has_bias: u32,
    accumulate: u32,
    groups_x: u32,
    groups: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> scale: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> c: array<f32>;

override WG: u32 = 64u;
override RM: u32 = 4u;
override RN: u32 = 4u;
const MAX_RM: u32 = 8u;
const MAX_RN: u32 = 4u;

fn store(m: u32, n: u32, acc: f32) {
    var v = acc;
    if (p.has_scale != 0u) {
        v *= scale[n];
    }
    if (p.has_bias != 0u) {
        v += bias[n];
    }
    let i = m * p.n + n;
    if (p.accumulate != 0u) {
        v += c[i];
    }
    c[i] = v;
}

@compute @workgroup_size(WG)
fn f32_gemm_block(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= p.groups) {
        return;
    }
    let m0 = (g / p.groups_x) * RM;
    let n0 = (g % p.groups_x) * WG * RN + lid;
    var acc: array<array<f32, MAX_RN>, MAX_RM>;
    var cols: array<u32, MAX_RN>;
    var rows: array<u32, MAX_RM>;
    for (var j = 0u; j < RN; j++) {
        cols[j] = min(n0 + j * WG, p.n - 1u) * p.b_sn;
    }
    for (var i = 0u; i < RM; i++) {
        rows[i] = min(m0 + i, p.m - 1u) * p.a_sm;
    }
    for (var kk = 0u; kk < p.k; kk++) {
        var bv: array<f32, MAX_RN>;
        let bk = kk * p.b_sk;
        for (var j = 0u; j < RN; j++) {
            bv[j] = b[bk + cols[j]];
        }
        let ak = kk * p.a_sk;
        for (var i = 0u; i < RM; i++) {
            let av = a[rows[i] + ak];
            for (var j = 0u; j < RN; j++) {
                acc[i][j] = fma(av, bv[j], acc[i][j]);
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

const TILE: u32 = 64u;
const KC: u32 = 16u;
var<workgroup> ta: array<f32, 1024>;
var<workgroup> tb: array<f32, 1024>;

@compute @workgroup_size(256)
fn f32_gemm_tiled(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= p.groups) {
        return;
    }
    let m_tile = (g / p.groups_x) * TILE;
    let n_tile = (g % p.groups_x) * TILE;
    let tx = lid % 16u;
    let ty = lid / 16u;
    var acc: array<array<f32, 4>, 4>;
    for (var k0 = 0u; k0 < p.k; k0 += KC) {
        for (var e = lid; e < TILE * KC; e += 256u) {
            let r = e / KC;
            let kk = k0 + e % KC;
            let m = m_tile + r;
            let n = n_tile + r;
            var va = 0.0;
            var vb = 0.0;
            if (m < p.m && kk < p.k) {
                va = a[m * p.a_sm + kk * p.a_sk];
            }
            if (n < p.n && kk < p.k) {
                vb = b[kk * p.b_sk + n * p.b_sn];
            }
            ta[e] = va;
            tb[e] = vb;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < KC; kk++) {
            var bv: array<f32, 4>;
            for (var j = 0u; j < 4u; j++) {
                bv[j] = tb[(tx + 16u * j) * KC + kk];
            }
            for (var i = 0u; i < 4u; i++) {
                let av = ta[(ty + 16u * i) * KC + kk];
                for (var j = 0u; j < 4u; j++) {
                    acc[i][j] = fma(av, bv[j], acc[i][j]);
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
fn store4(m: u32, n0: u32, acc: vec4<f32>) {
    if (m >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let n = n0 + j * WG;
        if (n < p.n) {
            store(m, n, acc[j]);
        }
    }
}

// ---- generated by scripts/gen_gemm_blocks.py below; do not edit ----

// 4 rows x 4 columns in vec4 registers.
@compute @workgroup_size(WG)
fn f32_gemm_r4(
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
    let cols = min(vec4<u32>(n0, n0 + WG, n0 + 2u * WG, n0 + 3u * WG), vec4<u32>(p.n - 1u)) * p.b_sn;
    let lastm = p.m - 1u;
    let r0 = min(m0 + 0u, lastm) * p.a_sm;
    let r1 = min(m0 + 1u, lastm) * p.a_sm;
    let r2 = min(m0 + 2u, lastm) * p.a_sm;
    let r3 = min(m0 + 3u, lastm) * p.a_sm;
    var c0 = vec4<f32>(0.0);
    var c1 = vec4<f32>(0.0);
    var c2 = vec4<f32>(0.0);
    var c3 = vec4<f32>(0.0);
    for (var kk = 0u; kk < p.k; kk++) {
        let bk = kk * p.b_sk;
        let bv = vec4<f32>(b[bk + cols.x], b[bk + cols.y], b[bk + cols.z], b[bk + cols.w]);
        let ak = kk * p.a_sk;
        c0 = fma(vec4<f32>(a[r0 + ak]), bv, c0);
        c1 = fma(vec4<f32>(a[r1 + ak]), bv, c1);
        c2 = fma(vec4<f32>(a[r2 + ak]), bv, c2);
        c3 = fma(vec4<f32>(a[r3 + ak]), bv, c3);
    }
    store4(m0 + 0u, n0, c0);
    store4(m0 + 1u, n0, c1);
    store4(m0 + 2u, n0, c2);
    store4(m0 + 3u, n0, c3);
}

// 8 rows x 4 columns in vec4 registers.
@compute @workgroup_size(WG)
fn f32_gemm_r8(
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
    let cols = min(vec4<u32>(n0, n0 + WG, n0 + 2u * WG, n0 + 3u * WG), vec4<u32>(p.n - 1u)) * p.b_sn;
    let lastm = p.m - 1u;
    let r0 = min(m0 + 0u, lastm) * p.a_sm;
    let r1 = min(m0 + 1u, lastm) * p.a_sm;
    let r2 = min(m0 + 2u, lastm) * p.a_sm;
    let r3 = min(m0 + 3u, lastm) * p.a_sm;
    let r4 = min(m0 + 4u, lastm) * p.a_sm;
    let r5 = min(m0 + 5u, lastm) * p.a_sm;
    let r6 = min(m0 + 6u, lastm) * p.a_sm;
    let r7 = min(m0 + 7u, lastm) * p.a_sm;
    var c0 = vec4<f32>(0.0);
    var c1 = vec4<f32>(0.0);
    var c2 = vec4<f32>(0.0);
    var c3 = vec4<f32>(0.0);
    var c4 = vec4<f32>(0.0);
    var c5 = vec4<f32>(0.0);
    var c6 = vec4<f32>(0.0);
    var c7 = vec4<f32>(0.0);
    for (var kk = 0u; kk < p.k; kk++) {
        let bk = kk * p.b_sk;
        let bv = vec4<f32>(b[bk + cols.x], b[bk + cols.y], b[bk + cols.z], b[bk + cols.w]);
        let ak = kk * p.a_sk;
        c0 = fma(vec4<f32>(a[r0 + ak]), bv, c0);
        c1 = fma(vec4<f32>(a[r1 + ak]), bv, c1);
        c2 = fma(vec4<f32>(a[r2 + ak]), bv, c2);
        c3 = fma(vec4<f32>(a[r3 + ak]), bv, c3);
        c4 = fma(vec4<f32>(a[r4 + ak]), bv, c4);
        c5 = fma(vec4<f32>(a[r5 + ak]), bv, c5);
        c6 = fma(vec4<f32>(a[r6 + ak]), bv, c6);
        c7 = fma(vec4<f32>(a[r7 + ak]), bv, c7);
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

// 16 rows x 4 columns in vec4 registers.
@compute @workgroup_size(WG)
fn f32_gemm_r16(
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
    let cols = min(vec4<u32>(n0, n0 + WG, n0 + 2u * WG, n0 + 3u * WG), vec4<u32>(p.n - 1u)) * p.b_sn;
    let lastm = p.m - 1u;
    let r0 = min(m0 + 0u, lastm) * p.a_sm;
    let r1 = min(m0 + 1u, lastm) * p.a_sm;
    let r2 = min(m0 + 2u, lastm) * p.a_sm;
    let r3 = min(m0 + 3u, lastm) * p.a_sm;
    let r4 = min(m0 + 4u, lastm) * p.a_sm;
    let r5 = min(m0 + 5u, lastm) * p.a_sm;
    let r6 = min(m0 + 6u, lastm) * p.a_sm;
    let r7 = min(m0 + 7u, lastm) * p.a_sm;
    let r8 = min(m0 + 8u, lastm) * p.a_sm;
    let r9 = min(m0 + 9u, lastm) * p.a_sm;
    let r10 = min(m0 + 10u, lastm) * p.a_sm;
    let r11 = min(m0 + 11u, lastm) * p.a_sm;
    let r12 = min(m0 + 12u, lastm) * p.a_sm;
    let r13 = min(m0 + 13u, lastm) * p.a_sm;
    let r14 = min(m0 + 14u, lastm) * p.a_sm;
    let r15 = min(m0 + 15u, lastm) * p.a_sm;
    var c0 = vec4<f32>(0.0);
    var c1 = vec4<f32>(0.0);
    var c2 = vec4<f32>(0.0);
    var c3 = vec4<f32>(0.0);
    var c4 = vec4<f32>(0.0);
    var c5 = vec4<f32>(0.0);
    var c6 = vec4<f32>(0.0);
    var c7 = vec4<f32>(0.0);
    var c8 = vec4<f32>(0.0);
    var c9 = vec4<f32>(0.0);
    var c10 = vec4<f32>(0.0);
    var c11 = vec4<f32>(0.0);
    var c12 = vec4<f32>(0.0);
    var c13 = vec4<f32>(0.0);
    var c14 = vec4<f32>(0.0);
    var c15 = vec4<f32>(0.0);
    for (var kk = 0u; kk < p.k; kk++) {
        let bk = kk * p.b_sk;
        let bv = vec4<f32>(b[bk + cols.x], b[bk + cols.y], b[bk + cols.z], b[bk + cols.w]);
        let ak = kk * p.a_sk;
        c0 = fma(vec4<f32>(a[r0 + ak]), bv, c0);
        c1 = fma(vec4<f32>(a[r1 + ak]), bv, c1);
        c2 = fma(vec4<f32>(a[r2 + ak]), bv, c2);
        c3 = fma(vec4<f32>(a[r3 + ak]), bv, c3);
        c4 = fma(vec4<f32>(a[r4 + ak]), bv, c4);
        c5 = fma(vec4<f32>(a[r5 + ak]), bv, c5);
        c6 = fma(vec4<f32>(a[r6 + ak]), bv, c6);
        c7 = fma(vec4<f32>(a[r7 + ak]), bv, c7);
        c8 = fma(vec4<f32>(a[r8 + ak]), bv, c8);
        c9 = fma(vec4<f32>(a[r9 + ak]), bv, c9);
        c10 = fma(vec4<f32>(a[r10 + ak]), bv, c10);
        c11 = fma(vec4<f32>(a[r11 + ak]), bv, c11);
        c12 = fma(vec4<f32>(a[r12 + ak]), bv, c12);
        c13 = fma(vec4<f32>(a[r13 + ak]), bv, c13);
        c14 = fma(vec4<f32>(a[r14 + ak]), bv, c14);
        c15 = fma(vec4<f32>(a[r15 + ak]), bv, c15);
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
