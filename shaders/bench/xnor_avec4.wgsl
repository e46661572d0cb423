// An experiment beside xnor_bound.wgsl: the 16-row register-block XNOR
// loop with a read as vec4 (four K words of a row per load, so a quarter of
// the loads of a). Needs kw a multiple of 4. Same Params and bindings as
// xnor_bound.wgsl; timed by `bitprop bench gemm` as "a as vec4".

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
@group(0) @binding(1) var<storage, read> a: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> b: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn xnor_r16_avec4(
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
    let r0 = min(m0 + 0u, lastm) * p.kw / 4u;
    let r1 = min(m0 + 1u, lastm) * p.kw / 4u;
    let r2 = min(m0 + 2u, lastm) * p.kw / 4u;
    let r3 = min(m0 + 3u, lastm) * p.kw / 4u;
    let r4 = min(m0 + 4u, lastm) * p.kw / 4u;
    let r5 = min(m0 + 5u, lastm) * p.kw / 4u;
    let r6 = min(m0 + 6u, lastm) * p.kw / 4u;
    let r7 = min(m0 + 7u, lastm) * p.kw / 4u;
    let r8 = min(m0 + 8u, lastm) * p.kw / 4u;
    let r9 = min(m0 + 9u, lastm) * p.kw / 4u;
    let r10 = min(m0 + 10u, lastm) * p.kw / 4u;
    let r11 = min(m0 + 11u, lastm) * p.kw / 4u;
    let r12 = min(m0 + 12u, lastm) * p.kw / 4u;
    let r13 = min(m0 + 13u, lastm) * p.kw / 4u;
    let r14 = min(m0 + 14u, lastm) * p.kw / 4u;
    let r15 = min(m0 + 15u, lastm) * p.kw / 4u;
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
    for (var w4 = 0u; w4 < p.kw / 4u; w4++) {
        let a0 = a[r0 + w4];
        let a1 = a[r1 + w4];
        let a2 = a[r2 + w4];
        let a3 = a[r3 + w4];
        let a4 = a[r4 + w4];
        let a5 = a[r5 + w4];
        let a6 = a[r6 + w4];
        let a7 = a[r7 + w4];
        let a8 = a[r8 + w4];
        let a9 = a[r9 + w4];
        let a10 = a[r10 + w4];
        let a11 = a[r11 + w4];
        let a12 = a[r12 + w4];
        let a13 = a[r13 + w4];
        let a14 = a[r14 + w4];
        let a15 = a[r15 + w4];
        {
            let base = (w4 * 4u + 0u) * p.n;
            let bw = vec4<u32>(b[base + cols.x], b[base + cols.y], b[base + cols.z], b[base + cols.w]);
            c0 += countOneBits(vec4<u32>(a0.x) ^ bw);
            c1 += countOneBits(vec4<u32>(a1.x) ^ bw);
            c2 += countOneBits(vec4<u32>(a2.x) ^ bw);
            c3 += countOneBits(vec4<u32>(a3.x) ^ bw);
            c4 += countOneBits(vec4<u32>(a4.x) ^ bw);
            c5 += countOneBits(vec4<u32>(a5.x) ^ bw);
            c6 += countOneBits(vec4<u32>(a6.x) ^ bw);
            c7 += countOneBits(vec4<u32>(a7.x) ^ bw);
            c8 += countOneBits(vec4<u32>(a8.x) ^ bw);
            c9 += countOneBits(vec4<u32>(a9.x) ^ bw);
            c10 += countOneBits(vec4<u32>(a10.x) ^ bw);
            c11 += countOneBits(vec4<u32>(a11.x) ^ bw);
            c12 += countOneBits(vec4<u32>(a12.x) ^ bw);
            c13 += countOneBits(vec4<u32>(a13.x) ^ bw);
            c14 += countOneBits(vec4<u32>(a14.x) ^ bw);
            c15 += countOneBits(vec4<u32>(a15.x) ^ bw);
        }
        {
            let base = (w4 * 4u + 1u) * p.n;
            let bw = vec4<u32>(b[base + cols.x], b[base + cols.y], b[base + cols.z], b[base + cols.w]);
            c0 += countOneBits(vec4<u32>(a0.y) ^ bw);
            c1 += countOneBits(vec4<u32>(a1.y) ^ bw);
            c2 += countOneBits(vec4<u32>(a2.y) ^ bw);
            c3 += countOneBits(vec4<u32>(a3.y) ^ bw);
            c4 += countOneBits(vec4<u32>(a4.y) ^ bw);
            c5 += countOneBits(vec4<u32>(a5.y) ^ bw);
            c6 += countOneBits(vec4<u32>(a6.y) ^ bw);
            c7 += countOneBits(vec4<u32>(a7.y) ^ bw);
            c8 += countOneBits(vec4<u32>(a8.y) ^ bw);
            c9 += countOneBits(vec4<u32>(a9.y) ^ bw);
            c10 += countOneBits(vec4<u32>(a10.y) ^ bw);
            c11 += countOneBits(vec4<u32>(a11.y) ^ bw);
            c12 += countOneBits(vec4<u32>(a12.y) ^ bw);
            c13 += countOneBits(vec4<u32>(a13.y) ^ bw);
            c14 += countOneBits(vec4<u32>(a14.y) ^ bw);
            c15 += countOneBits(vec4<u32>(a15.y) ^ bw);
        }
        {
            let base = (w4 * 4u + 2u) * p.n;
            let bw = vec4<u32>(b[base + cols.x], b[base + cols.y], b[base + cols.z], b[base + cols.w]);
            c0 += countOneBits(vec4<u32>(a0.z) ^ bw);
            c1 += countOneBits(vec4<u32>(a1.z) ^ bw);
            c2 += countOneBits(vec4<u32>(a2.z) ^ bw);
            c3 += countOneBits(vec4<u32>(a3.z) ^ bw);
            c4 += countOneBits(vec4<u32>(a4.z) ^ bw);
            c5 += countOneBits(vec4<u32>(a5.z) ^ bw);
            c6 += countOneBits(vec4<u32>(a6.z) ^ bw);
            c7 += countOneBits(vec4<u32>(a7.z) ^ bw);
            c8 += countOneBits(vec4<u32>(a8.z) ^ bw);
            c9 += countOneBits(vec4<u32>(a9.z) ^ bw);
            c10 += countOneBits(vec4<u32>(a10.z) ^ bw);
            c11 += countOneBits(vec4<u32>(a11.z) ^ bw);
            c12 += countOneBits(vec4<u32>(a12.z) ^ bw);
            c13 += countOneBits(vec4<u32>(a13.z) ^ bw);
            c14 += countOneBits(vec4<u32>(a14.z) ^ bw);
            c15 += countOneBits(vec4<u32>(a15.z) ^ bw);
        }
        {
            let base = (w4 * 4u + 3u) * p.n;
            let bw = vec4<u32>(b[base + cols.x], b[base + cols.y], b[base + cols.z], b[base + cols.w]);
            c0 += countOneBits(vec4<u32>(a0.w) ^ bw);
            c1 += countOneBits(vec4<u32>(a1.w) ^ bw);
            c2 += countOneBits(vec4<u32>(a2.w) ^ bw);
            c3 += countOneBits(vec4<u32>(a3.w) ^ bw);
            c4 += countOneBits(vec4<u32>(a4.w) ^ bw);
            c5 += countOneBits(vec4<u32>(a5.w) ^ bw);
            c6 += countOneBits(vec4<u32>(a6.w) ^ bw);
            c7 += countOneBits(vec4<u32>(a7.w) ^ bw);
            c8 += countOneBits(vec4<u32>(a8.w) ^ bw);
            c9 += countOneBits(vec4<u32>(a9.w) ^ bw);
            c10 += countOneBits(vec4<u32>(a10.w) ^ bw);
            c11 += countOneBits(vec4<u32>(a11.w) ^ bw);
            c12 += countOneBits(vec4<u32>(a12.w) ^ bw);
            c13 += countOneBits(vec4<u32>(a13.w) ^ bw);
            c14 += countOneBits(vec4<u32>(a14.w) ^ bw);
            c15 += countOneBits(vec4<u32>(a15.w) ^ bw);
        }
    }
    let s = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11 + c12 + c13 + c14 + c15;
    if (m0 < p.m && n0 < p.n) {
        out[m0 * p.n + n0] = s.x + s.y + s.z + s.w;
    }
}
