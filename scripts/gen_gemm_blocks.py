#!/usr/bin/env python3
"""Writes the unrolled register-block GEMM entry points.

CPU adapters (lavapipe) keep WGSL arrays that loops index in memory, and
each lane-varying load costs one scalar load per lane, so the fast kernels
hold a block of RM rows x 4 columns in RM vec4 registers, load A (shared by
the workgroup, so uniform) once per row and B (one word per column per lane)
once per column. Run: python3 scripts/gen_gemm_blocks.py
"""
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent / "shaders" / "gemm"
RMS = [4, 8, 16]


def xnor_entry(rm):
    L = []
    L.append(f"// {rm} rows x 4 columns in vec4 registers, word-major b.")
    L.append("@compute @workgroup_size(WG)")
    L.append(f"fn xnor_gemm_cols_r{rm}(")
    L.append("    @builtin(workgroup_id) wid: vec3<u32>,")
    L.append("    @builtin(num_workgroups) nwg: vec3<u32>,")
    L.append("    @builtin(local_invocation_index) lid: u32,")
    L.append(") {")
    L.append("    let g = wid.x + wid.y * nwg.x;")
    L.append("    if (g >= p.groups) {")
    L.append("        return;")
    L.append("    }")
    L.append(f"    let m0 = (g / p.groups_x) * {rm}u;")
    L.append("    let n0 = (g % p.groups_x) * WG * 4u + lid;")
    L.append("    let cols = min(vec4<u32>(n0, n0 + WG, n0 + 2u * WG, n0 + 3u * WG), vec4<u32>(p.n - 1u));")
    L.append("    let lastm = p.m - 1u;")
    for i in range(rm):
        L.append(f"    let r{i} = min(m0 + {i}u, lastm) * p.kw;")
    for i in range(rm):
        L.append(f"    var c{i} = vec4<u32>(0u);")
    L.append("    for (var w = 0u; w < p.kw; w++) {")
    L.append("        let base = w * p.n;")
    L.append("        let bw = vec4<u32>(b[base + cols.x], b[base + cols.y], b[base + cols.z], b[base + cols.w]);")
    for i in range(rm):
        L.append(f"        c{i} += countOneBits(vec4<u32>(a[r{i} + w]) ^ bw);")
    L.append("    }")
    for i in range(rm):
        L.append(f"    store4(m0 + {i}u, n0, c{i});")
    L.append("}")
    return "\n".join(L)


def f32_entry(rm):
    L = []
    L.append(f"// {rm} rows x 4 columns in vec4 registers.")
    L.append("@compute @workgroup_size(WG)")
    L.append(f"fn f32_gemm_r{rm}(")
    L.append("    @builtin(workgroup_id) wid: vec3<u32>,")
    L.append("    @builtin(num_workgroups) nwg: vec3<u32>,")
    L.append("    @builtin(local_invocation_index) lid: u32,")
    L.append(") {")
    L.append("    let g = wid.x + wid.y * nwg.x;")
    L.append("    if (g >= p.groups) {")
    L.append("        return;")
    L.append("    }")
    L.append(f"    let m0 = (g / p.groups_x) * {rm}u;")
    L.append("    let n0 = (g % p.groups_x) * WG * 4u + lid;")
    L.append("    let cols = min(vec4<u32>(n0, n0 + WG, n0 + 2u * WG, n0 + 3u * WG), vec4<u32>(p.n - 1u)) * p.b_sn;")
    L.append("    let lastm = p.m - 1u;")
    for i in range(rm):
        L.append(f"    let r{i} = min(m0 + {i}u, lastm) * p.a_sm;")
    for i in range(rm):
        L.append(f"    var c{i} = vec4<f32>(0.0);")
    L.append("    for (var kk = 0u; kk < p.k; kk++) {")
    L.append("        let bk = kk * p.b_sk;")
    L.append("        let bv = vec4<f32>(b[bk + cols.x], b[bk + cols.y], b[bk + cols.z], b[bk + cols.w]);")
    L.append("        let ak = kk * p.a_sk;")
    for i in range(rm):
        L.append(f"        c{i} = fma(vec4<f32>(a[r{i} + ak]), bv, c{i});")
    L.append("    }")
    for i in range(rm):
        L.append(f"    store4(m0 + {i}u, n0, c{i});")
    L.append("}")
    return "\n".join(L)


def sign_entry(rm):
    L = []
    L.append(f"// {rm} rows x 4 blocks of 32 columns.")
    L.append("@compute @workgroup_size(32)")
    L.append(f"fn sign_gemm_r{rm}(")
    L.append("    @builtin(workgroup_id) wid: vec3<u32>,")
    L.append("    @builtin(num_workgroups) nwg: vec3<u32>,")
    L.append("    @builtin(local_invocation_index) lid: u32,")
    L.append(") {")
    L.append("    let g = wid.x + wid.y * nwg.x;")
    L.append("    if (g >= p.groups) {")
    L.append("        return;")
    L.append("    }")
    L.append(f"    let m0 = (g / p.groups_x) * {rm}u;")
    L.append("    let w0 = (g % p.groups_x) * 4u;")
    L.append("    let words = min(vec4<u32>(w0, w0 + 1u, w0 + 2u, w0 + 3u), vec4<u32>(p.nw - 1u));")
    L.append("    let lastm = p.m - 1u;")
    for i in range(rm):
        L.append(f"    let r{i} = min(m0 + {i}u, lastm) * p.a_sm;")
    for i in range(rm):
        L.append(f"    var c{i} = vec4<f32>(0.0);")
    L.append("    for (var kk = 0u; kk < p.k; kk++) {")
    L.append("        let sk = kk * p.nw;")
    L.append("        let bits = (vec4<u32>(s[sk + words.x], s[sk + words.y], s[sk + words.z], s[sk + words.w]) >> vec4<u32>(lid)) & vec4<u32>(1u);")
    L.append("        let sg = vec4<f32>(bits) * 2.0 - 1.0;")
    L.append("        let ak = kk * p.a_sk;")
    for i in range(rm):
        L.append(f"        c{i} = fma(vec4<f32>(a[r{i} + ak]), sg, c{i});")
    L.append("    }")
    for i in range(rm):
        L.append(f"    store4(m0 + {i}u, w0 * 32u + lid, c{i});")
    L.append("}")
    return "\n".join(L)


def splice(path, entries):
    text = path.read_text()
    marker = "// ---- generated by scripts/gen_gemm_blocks.py below; do not edit ----"
    head = text.split(marker)[0].rstrip() + "\n\n"
    path.write_text(head + marker + "\n\n" + "\n\n".join(entries) + "\n")


splice(ROOT / "xnor_gemm.wgsl", [xnor_entry(rm) for rm in RMS])
splice(ROOT / "f32_gemm.wgsl", [f32_entry(rm) for rm in RMS])
splice(ROOT / "sign_gemm.wgsl", [sign_entry(rm) for rm in RMS])
