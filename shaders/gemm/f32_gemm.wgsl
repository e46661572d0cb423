// f32 GEMM with strided operands, which covers A*B, A^T*B and A*B^T.
//
// a:     f32, element (m, kk) at a[m * a_sm + kk * a_sk]
// b:     f32, element (kk, n) at b[kk * b_sk + n * b_sn]
// scale: f32 [n], read when has_scale != 0
// bias:  f32 [n], read when has_bias != 0
// c:     f32 [m, n] row-major;
//        c = (sum_kk a(m, kk) * b(kk, n)) * scale[n] + bias[n] (+ c if accumulate).
//
// f32_gemm_tiled: 64 x 64 output tiles staged through workgroup memory, for
// real GPUs. CPU adapters do better with f32_gemm_nt4.wgsl's vec4 loads.

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
