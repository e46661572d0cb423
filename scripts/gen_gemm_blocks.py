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
        L.append(f"        c{i} += term4(a[r{i} + w], bw);")
    L.append("    }")
    for i in range(rm):
        L.append(f"    store4(m0 + {i}u, n0, c{i});")
    L.append("}")
    return "\n".join(L)


def xnor_s_entry(rm, sg=8):
    """xnor_entry with a's words loaded sg per subgroup and broadcast."""
    L = []
    L.append(f"// {rm} rows x 4 columns, word-major b; a's words loaded {sg} per subgroup")
    L.append("// (one per lane) and broadcast.")
    L.append("@compute @workgroup_size(WG)")
    L.append(f"fn xnor_gemm_cols_s_r{rm}(")
    L.append("    @builtin(workgroup_id) wid: vec3<u32>,")
    L.append("    @builtin(num_workgroups) nwg: vec3<u32>,")
    L.append("    @builtin(local_invocation_index) lid: u32,")
    L.append("    @builtin(subgroup_invocation_id) sid: u32,")
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
    L.append(f"    let lane = min(sid, {sg - 1}u);")
    L.append(f"    let w_end = p.kw / {sg}u * {sg}u;")
    L.append(f"    for (var w0 = 0u; w0 < w_end; w0 += {sg}u) {{")
    for i in range(rm):
        L.append(f"        let v{i} = a[r{i} + w0 + lane];")
    for t in range(sg):
        L.append(f"        let base{t} = (w0 + {t}u) * p.n;")
        L.append(f"        let bw{t} = vec4<u32>(b[base{t} + cols.x], b[base{t} + cols.y], b[base{t} + cols.z], b[base{t} + cols.w]);")
        for i in range(rm):
            L.append(f"        c{i} += term4(subgroupBroadcast(v{i}, {t}u), bw{t});")
    L.append("    }")
    L.append("    for (var w = w_end; w < p.kw; w++) {")
    L.append("        let base = w * p.n;")
    L.append("        let bw = vec4<u32>(b[base + cols.x], b[base + cols.y], b[base + cols.z], b[base + cols.w]);")
    for i in range(rm):
        L.append(f"        c{i} += term4(a[r{i} + w], bw);")
    L.append("    }")
    for i in range(rm):
        L.append(f"    store4(m0 + {i}u, n0, c{i});")
    L.append("}")
    return "\n".join(L)


def nt4_entry(rm=8, uniform=False):
    """`uniform`: read a's rows from the 64 KiB uniform window `ua`."""
    name = "f32_gemm_nt4u" if uniform else "f32_gemm_nt4"
    src = "ua" if uniform else "a"
    L = []
    if uniform:
        L.append(f"// {rm} rows x 4 columns, a's rows from the uniform window.")
    else:
        L.append(f"// {rm} rows x 4 columns, four k steps per vec4 load.")
    L.append("@compute @workgroup_size(WG)")
    L.append(f"fn {name}(")
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
    for j in range(4):
        L.append(f"    let bn{j} = min(n0 + {j}u * WG, p.n - 1u) * p.k4 + p.k0;")
    for i in range(rm):
        L.append(f"    let am{i} = min(m0 + {i}u, p.m - 1u) * p.a_k4;")
    for i in range(rm):
        L.append(f"    var c{i} = vec4<f32>(0.0);")
    L.append("    for (var kk = 0u; kk < p.kc4; kk++) {")
    for j in range(4):
        L.append(f"        let b{j} = b[bn{j} + kk];")
    for i in range(rm):
        L.append(f"        let a{i} = {src}[am{i} + kk];")
        L.append(f"        c{i} += vec4<f32>(dot(a{i}, b0), dot(a{i}, b1), dot(a{i}, b2), dot(a{i}, b3));")
    L.append("    }")
    for i in range(rm):
        L.append(f"    store4(m0 + {i}u, n0, c{i});")
    L.append("}")
    return "\n".join(L)


def nt4s_entry(rm=8, sg=8):
    """Each lane of a subgroup loads one vec4 of a row (sg consecutive k
    steps per row for the subgroup); subgroupBroadcast hands them round."""
    L = []
    L.append(f"// {rm} rows x 4 columns; a's rows loaded {sg} vec4s per subgroup and")
    L.append("// broadcast, so each lane loads one vec4 of a row per eight k steps.")
    L.append("@compute @workgroup_size(WG)")
    L.append("fn f32_gemm_nt4s(")
    L.append("    @builtin(workgroup_id) wid: vec3<u32>,")
    L.append("    @builtin(num_workgroups) nwg: vec3<u32>,")
    L.append("    @builtin(local_invocation_index) lid: u32,")
    L.append("    @builtin(subgroup_invocation_id) sid: u32,")
    L.append(") {")
    L.append("    let g = wid.x + wid.y * nwg.x;")
    L.append("    if (g >= p.groups) {")
    L.append("        return;")
    L.append("    }")
    L.append(f"    let m0 = (g / p.groups_x) * {rm}u;")
    L.append("    let n0 = (g % p.groups_x) * WG * 4u + lid;")
    for j in range(4):
        L.append(f"    let bn{j} = min(n0 + {j}u * WG, p.n - 1u) * p.k4 + p.k0;")
    for i in range(rm):
        L.append(f"    let am{i} = min(m0 + {i}u, p.m - 1u) * p.a_k4;")
    for i in range(rm):
        L.append(f"    var c{i} = vec4<f32>(0.0);")
    L.append(f"    let lane = min(sid, {sg - 1}u);")
    L.append(f"    let kb_end = p.kc4 / {sg}u * {sg}u;")
    L.append(f"    for (var kb = 0u; kb < kb_end; kb += {sg}u) {{")
    for i in range(rm):
        L.append(f"        let v{i} = a[am{i} + kb + lane];")
    for t in range(sg):
        for j in range(4):
            L.append(f"        let b{j}_{t} = b[bn{j} + kb + {t}u];")
        for i in range(rm):
            L.append(f"        let a{i}_{t} = subgroupBroadcast(v{i}, {t}u);")
            L.append(f"        c{i} += vec4<f32>(dot(a{i}_{t}, b0_{t}), dot(a{i}_{t}, b1_{t}), dot(a{i}_{t}, b2_{t}), dot(a{i}_{t}, b3_{t}));")
    L.append("    }")
    L.append("    for (var kk = kb_end; kk < p.kc4; kk++) {")
    for j in range(4):
        L.append(f"        let b{j} = b[bn{j} + kk];")
    for i in range(rm):
        L.append(f"        let a{i} = a[am{i} + kk];")
        L.append(f"        c{i} += vec4<f32>(dot(a{i}, b0), dot(a{i}, b1), dot(a{i}, b2), dot(a{i}, b3));")
    L.append("    }")
    for i in range(rm):
        L.append(f"    store4(m0 + {i}u, n0, c{i});")
    L.append("}")
    return "\n".join(L)


def splice(path, entries):
    text = path.read_text()
    marker = "// ---- generated by scripts/gen_gemm_blocks.py below; do not edit ----"
    head = text.split(marker)[0].rstrip() + "\n\n"
    path.write_text(head + marker + "\n\n" + "\n\n".join(entries) + "\n")


splice(ROOT / "xnor_gemm.wgsl", [xnor_entry(rm) for rm in RMS])
splice(ROOT / "f32_gemm_nt4.wgsl", [nt4_entry(8), nt4_entry(8, uniform=True)])
(ROOT / "f32_gemm_nt4s.wgsl").write_text(
    "// Appended to f32_gemm_nt4.wgsl (its Params, bindings and store4) in its\n"
    "// own module, which only adapters with subgroups compile.\n"
    "// Generated by scripts/gen_gemm_blocks.py; do not edit.\n\n" + nt4s_entry() + "\n"
)
(ROOT / "xnor_gemm_s.wgsl").write_text(
    "// Appended to xnor_gemm.wgsl (its Params, bindings, term4 and store4) in\n"
    "// its own module, which only adapters with subgroups compile.\n"
    "// Generated by scripts/gen_gemm_blocks.py; do not edit.\n\n"
    + "\n\n".join(xnor_s_entry(rm) for rm in RMS) + "\n"
)
