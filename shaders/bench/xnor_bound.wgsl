// What bounds the XNOR GEMM's register-block kernel (xnor_gemm_cols_r16 in
// gemm/xnor_gemm.wgsl) on an adapter: the same loop, grid and loads, with
// parts taken out by the bits of MODE (an override constant, so each
// variant compiles without the others' code):
//   bit 0: b's words made in registers from the loop counter (no loads of b);
//   bit 1: no popcount (xor + add only);
//   bit 2: a's words made in registers (no loads of a);
//   bit 3: a's words read from a uniform buffer (64 KiB, indices wrapped)
//          instead of the storage buffer: same addresses across lanes, but
//          lavapipe loads uniform memory with one gather where it walks a
//          storage load lane by lane.
// MODE 0 is the GEMM's loop. `bitprop bench gemm` times the variants side
// by side; the differences are the costs of the loads and the popcounts.
// out: u32 [m, n], one sum per output so no work can be dropped.

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
@group(0) @binding(3) var<storage, read_write> out: array<u32>;
@group(0) @binding(4) var<uniform> ua: array<vec4<u32>, 4096>;

override WG: u32 = 64u;
override MODE: u32 = 0u;

fn step(c: vec4<u32>, x: vec4<u32>, y: vec4<u32>) -> vec4<u32> {
    if ((MODE & 2u) == 0u) {
        return c + countOneBits(x ^ y);
    }
    return c + (x ^ y);
}

fn aw(r: u32, w: u32) -> u32 {
    if ((MODE & 4u) != 0u) {
        return (r + w) * 2246822519u;
    }
    if ((MODE & 8u) != 0u) {
        return ua[(r + w) & 4095u].x;
    }
    return a[r + w];
}

@compute @workgroup_size(WG)
fn xnor_r16_bound(
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
        var bw: vec4<u32>;
        if ((MODE & 1u) != 0u) {
            bw = (cols + vec4<u32>(w)) * vec4<u32>(2654435761u);
        } else {
            let base = w * p.n;
            bw = vec4<u32>(b[base + cols.x], b[base + cols.y], b[base + cols.z], b[base + cols.w]);
        }
        c0 = step(c0, vec4<u32>(aw(r0, w)), bw);
        c1 = step(c1, vec4<u32>(aw(r1, w)), bw);
        c2 = step(c2, vec4<u32>(aw(r2, w)), bw);
        c3 = step(c3, vec4<u32>(aw(r3, w)), bw);
        c4 = step(c4, vec4<u32>(aw(r4, w)), bw);
        c5 = step(c5, vec4<u32>(aw(r5, w)), bw);
        c6 = step(c6, vec4<u32>(aw(r6, w)), bw);
        c7 = step(c7, vec4<u32>(aw(r7, w)), bw);
        c8 = step(c8, vec4<u32>(aw(r8, w)), bw);
        c9 = step(c9, vec4<u32>(aw(r9, w)), bw);
        c10 = step(c10, vec4<u32>(aw(r10, w)), bw);
        c11 = step(c11, vec4<u32>(aw(r11, w)), bw);
        c12 = step(c12, vec4<u32>(aw(r12, w)), bw);
        c13 = step(c13, vec4<u32>(aw(r13, w)), bw);
        c14 = step(c14, vec4<u32>(aw(r14, w)), bw);
        c15 = step(c15, vec4<u32>(aw(r15, w)), bw);
    }
    let s = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11 + c12 + c13 + c14 + c15;
    if (m0 < p.m && n0 < p.n) {
        out[m0 * p.n + n0] = s.x + s.y + s.z + s.w;
    }
}
