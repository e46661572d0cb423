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


SG = 8  # subgroup lanes that share the loads of a in the *_s kernels


def prologue(name, rm, comment, subgroups, split_end=None, cols=4, side_by_side=False):
    """Comment, signature, early exit and the block's first row and column.
    With `split_end` (the K loop's end, e.g. "p.kw"), a K split: the grid
    is p.slices copies of the p.groups tiles, copy s runs the K loop over
    [k_lo, k_hi) = [s * p.slice_len, (s + 1) * p.slice_len) clipped to the
    end, and sets the header's private `slice_index`, from which store4 puts
    its partial sums in slice s's part of c (for GPUs, where a long-K shape
    has too few tiles to fill the device). `side_by_side`: a lane's columns
    are n0 .. n0 + cols - 1 rather than WG apart."""
    L = [f"// {line}" for line in comment]
    L.append("@compute @workgroup_size(WG)")
    L.append(f"fn {name}(")
    L.append("    @builtin(workgroup_id) wid: vec3<u32>,")
    L.append("    @builtin(num_workgroups) nwg: vec3<u32>,")
    L.append("    @builtin(local_invocation_index) lid: u32,")
    if subgroups:
        L.append("    @builtin(subgroup_invocation_id) sid: u32,")
    L.append(") {")
    if split_end is None:
        L.append("    let g = wid.x + wid.y * nwg.x;")
        L.append("    if (g >= p.groups) {")
        L.append("        return;")
        L.append("    }")
    else:
        L.append("    let gs = wid.x + wid.y * nwg.x;")
        L.append("    if (gs >= p.groups * p.slices) {")
        L.append("        return;")
        L.append("    }")
        L.append("    slice_index = gs / p.groups;")
        L.append("    let g = gs - slice_index * p.groups;")
        L.append("    let k_lo = slice_index * p.slice_len;")
        L.append(f"    let k_hi = min({split_end}, k_lo + p.slice_len);")
    L.append(f"    let m0 = (g / p.groups_x) * {rm}u;")
    lane = f"{cols}u * lid" if side_by_side else "lid"
    L.append(f"    let n0 = (g % p.groups_x) * WG * {cols}u + {lane};")
    return L


def blocked_loops(L, rm, end, step, load_a, body, subgroups, start="0u"):
    """The k loop over [start, end). With subgroups: blocks of SG steps where
    lane l loads step l of each row and broadcasts hand the steps round, then
    the remainder one step at a time. `load_a(i, idx)` is row i's operand at
    k index idx; `body(L, t, a_of)` emits one step t (None in the remainder
    loop)."""
    if subgroups:
        L.append(f"    let lane = min(sid, {SG - 1}u);")
        if start == "0u":
            L.append(f"    let k_end = {end} / {SG}u * {SG}u;")
        else:
            L.append(f"    let k_end = {start} + ({end} - {start}) / {SG}u * {SG}u;")
        L.append(f"    for (var kb = {start}; kb < k_end; kb += {SG}u) {{")
        for i in range(rm):
            L.append(f"        let v{i} = {load_a(i, 'kb + lane')};")
        for t in range(SG):
            body(L, f"kb + {t}u", t, lambda i, t=t: f"subgroupBroadcast(v{i}, {t}u)")
        L.append("    }")
        L.append(f"    for (var {step} = k_end; {step} < {end}; {step}++) {{")
    else:
        L.append(f"    for (var {step} = {start}; {step} < {end}; {step}++) {{")
    body(L, step, "", lambda i: load_a(i, step))
    L.append("    }")


def xnor_entry(rm, subgroups=False, side_by_side=False):
    """`side_by_side`: xnor_gemm_c.wgsl's kernels, a lane's four columns
    together, b's four words one vec4 load and a row one vec4 store."""
    name = "xnor_gemm_cols_" + ("s" if subgroups else "") + ("c" if side_by_side else "")
    name = name.rstrip("_") + f"_r{rm}"
    comment = [f"{rm} rows x 4 columns in vec4 registers, word-major b."]
    if subgroups:
        comment.append(f"a's words loaded {SG} per subgroup (one per lane) and broadcast.")
    if side_by_side:
        comment.append("A lane's four columns side by side: one vec4 of b a word, one vec4 store a row.")
    L = prologue(name, rm, comment, subgroups, side_by_side=side_by_side)
    if side_by_side:
        L.append("    let col4 = min(n0, p.n - 4u) / 4u;")
    else:
        L.append("    let cols = min(vec4<u32>(n0, n0 + WG, n0 + 2u * WG, n0 + 3u * WG), vec4<u32>(p.n - 1u));")
    L.append("    let lastm = p.m - 1u;")
    for i in range(rm):
        L.append(f"    let r{i} = min(m0 + {i}u, lastm) * p.kw;")
    for i in range(rm):
        L.append(f"    var c{i} = vec4<u32>(0u);")

    def body(L, w, t, a_of):
        w = f"({w})" if " " in w else w
        L.append(f"        let base{t} = {w} * p.n;")
        if side_by_side:
            L.append(f"        let bw{t} = b4[base{t} / 4u + col4];")
        else:
            L.append(f"        let bw{t} = vec4<u32>(b[base{t} + cols.x], b[base{t} + cols.y], b[base{t} + cols.z], b[base{t} + cols.w]);")
        for i in range(rm):
            L.append(f"        c{i} += term4({a_of(i)}, bw{t});")

    blocked_loops(L, rm, "p.kw", "w", lambda i, idx: f"a[r{i} + {idx}]", body, subgroups)
    store = "store4c" if side_by_side else "store4"
    for i in range(rm):
        L.append(f"    {store}(m0 + {i}u, n0, c{i});")
    L.append("}")
    return "\n".join(L)


def nt4_entry(rm=8, src="a", subgroups=False, side_by_side=False):
    """`src` "ua": a's rows from the 64 KiB uniform window; `subgroups`: a's
    vec4s loaded SG per subgroup and broadcast; `side_by_side`: a lane's
    four columns together, stored as one vec4 (f32_gemm_nt4c.wgsl)."""
    name = {"ua": "f32_gemm_nt4u"}.get(src, "f32_gemm_nt4s" if subgroups else "f32_gemm_nt4")
    name += "c" if side_by_side else ""
    comment = [f"{rm} rows x 4 columns, four k steps per vec4 load."]
    if src == "ua":
        comment.append("a's rows from the uniform window.")
    if subgroups:
        comment.append(f"a's vec4s loaded {SG} per subgroup (one per lane) and broadcast.")
    if side_by_side:
        comment.append("A lane's four columns side by side, one vec4 store a row.")
    split = "p.kc4" if src == "a" else None
    L = prologue(name, rm, comment, subgroups, split_end=split, side_by_side=side_by_side)
    step = "" if side_by_side else " * WG"
    for j in range(4):
        L.append(f"    let bn{j} = min(n0 + {j}u{step}, p.n - 1u) * p.k4 + p.k0;")
    for i in range(rm):
        L.append(f"    let am{i} = min(m0 + {i}u, p.m - 1u) * p.a_k4;")
    for i in range(rm):
        L.append(f"    var c{i} = vec4<f32>(0.0);")

    def body(L, kk, t, a_of):
        t = f"_{t}" if t != "" else ""
        for j in range(4):
            L.append(f"        let b{j}{t} = b[bn{j} + {kk}];")
        for i in range(rm):
            L.append(f"        let a{i}{t} = {a_of(i)};")
            dots = ", ".join(f"dot(a{i}{t}, b{j}{t})" for j in range(4))
            L.append(f"        c{i} += vec4<f32>({dots});")

    end, start = ("k_hi", "k_lo") if split else ("p.kc4", "0u")
    blocked_loops(L, rm, end, "kk", lambda i, idx: f"{src}[am{i} + {idx}]", body, subgroups, start)
    store = "store4c" if side_by_side else "store4"
    for i in range(rm):
        L.append(f"    {store}(m0 + {i}u, n0, c{i});")
    L.append("}")
    return "\n".join(L)


def sign_block(name, rm, subgroups, rows, split=False, cols=4, side_by_side=False):
    """The f32 x packed-signs register block: one word of bits per column
    serves 32 k steps (8 vec4s of a); with subgroups lane l loads a's vec4 l
    of the word. `split`: a K split over words (see prologue). `cols`: the
    columns a lane holds (4, or 2 where few columns would leave lanes idle;
    the accumulators are then vec2s, and store(i) gets them as such).
    `rows` says where row i's operand comes from:
    setup (per row, before the loop), word (lines at the top of each word),
    scale(lane) (the vec4 scaling a's vec4 `lane` of the word), a(i, lane)
    (row i's vec4 `lane` of the word) and store(i). `side_by_side`: a lane's
    columns n0 .. n0 + cols - 1 rather than WG apart."""
    comment = [f"{rm} rows x {cols} columns, one word of signs per column per 32 k steps."]
    if subgroups:
        comment.append(f"a's vec4s loaded {SG} per subgroup (one per lane) and broadcast.")
    if side_by_side:
        comment.append(f"A lane's {cols} columns side by side, one vec{cols} store a row.")
    L = prologue(name, rm, comment, subgroups, split_end="p.kw" if split else None, cols=cols,
                 side_by_side=side_by_side)
    step = "" if side_by_side else " * WG"
    for j in range(cols):
        L.append(f"    let bn{j} = min(n0 + {j}u{step}, p.n - 1u) * p.kw;")
    for i in range(rm):
        L.append(f"    {rows['setup'](i)}")
    for i in range(rm):
        L.append(f"    var c{i} = vec{cols}<f32>(0.0);")
    if subgroups:
        L.append(f"    let lane = min(sid, {SG - 1}u);")
    if split:
        L.append("    for (var w = k_lo; w < k_hi; w++) {")
    else:
        L.append("    for (var w = 0u; w < p.kw; w++) {")
    L.extend(f"        {line}" for line in rows["word"](rm))
    for j in range(cols):
        L.append(f"        let w{j} = bits[bn{j} + w];")
    if subgroups:
        L.append(f"        let ks = {rows['scale']('lane')};")
        for i in range(rm):
            L.append(f"        let v{i} = {rows['a'](i, 'lane')} * ks;")
    # Each k step: the columns' signs as one vector, then one multiply-add
    # a row (a dot product and an add took five ops for four steps).
    ws = ", ".join(f"w{j}" for j in range(cols))
    L.append(f"        let nw = ~vec{cols}<u32>({ws});")
    for t in range(8):
        for x in range(4):
            L.append(f"        let st{x}_{t} = col_signs{cols}(nw, {4 * t + x}u);")
        if not subgroups:
            L.append(f"        let ks{t} = {rows['scale'](f'{t}u')};")
        for i in range(rm):
            if subgroups:
                L.append(f"        let a{i}_{t} = subgroupBroadcast(v{i}, {t}u);")
            else:
                L.append(f"        let a{i}_{t} = {rows['a'](i, f'{t}u')} * ks{t};")
            for x, comp in enumerate("xyzw"):
                L.append(f"        c{i} = fma(vec{cols}<f32>(a{i}_{t}.{comp}), st{x}_{t}, c{i});")
    L.append("    }")
    for i in range(rm):
        L.append(f"    {rows['store'](i)}")
    L.append("}")
    return "\n".join(L)


def sign_entry(rm=8, subgroups=False, side_by_side=False):
    """f32 x packed signs (shaders/gemm/sign_gemm.wgsl): a's rows row-major.
    `side_by_side`: sign_gemm_c.wgsl's kernels (one vec4 store a row)."""
    store = "store4c" if side_by_side else "store4"
    rows = {
        "setup": lambda i: f"let am{i} = min(m0 + {i}u, p.m - 1u) * p.a_k4;",
        "word": lambda rm: [],
        "scale": lambda lane: f"kscale4(w * 32u + 4u * {lane})",
        "a": lambda i, lane: f"a[am{i} + w * 8u + {lane}]",
        "store": lambda i: f"{store}(m0 + {i}u, n0, c{i});",
    }
    name = {(False, False): "sign_gemm", (True, False): "sign_gemm_s",
            (False, True): "sign_gemm_c", (True, True): "sign_gemm_sc"}[(subgroups, side_by_side)]
    return sign_block(name, rm, subgroups, rows, split=True, side_by_side=side_by_side)


def sign_conv_entry(rm=8, subgroups=False, cols=4):
    """The implicit-GEMM binary conv data gradient
    (shaders/conv/sign_conv_data.wgsl): row i's operand for word w comes
    from source row src{i}, the pixel shifted by the word's tap."""
    rows = {
        "setup": lambda i: f"let r{i} = pixel(m0);" if i == 0 else f"let r{i} = next_pixel(r{i - 1});",
        "word": lambda rm: [
            "let t = w / p.words_per_tap;",
            "let o0 = (w - t * p.words_per_tap) * 32u;",
            "let ky = t / p.kwidth;",
            "let dy = i32(p.pad) - i32(ky);",
            "let dxx = i32(p.pad) - i32(t - ky * p.kwidth);",
        ]
        + [f"let src{i} = source(r{i}, dy, dxx);" for i in range(rm)],
        "scale": lambda lane: f"alpha[o0 / 4u + {lane}]",
        "a": lambda i, lane: f"operand(src{i}, o0, {lane})",
        "store": (lambda i: f"store4(r{i}, m0 + {i}u, n0, c{i});")
        if cols == 4
        else (lambda i: f"store2(r{i}, m0 + {i}u, n0, c{i});"),
    }
    name = ("sign_conv_data_s" if subgroups else "sign_conv_data") + ("2" if cols == 2 else "")
    return sign_block(name, rm, subgroups, rows, cols=cols)


def appended(base, what):
    return (
        f"// Appended to {base} ({what})\n"
        "// in its own module, which only adapters with subgroups compile.\n"
        "// Generated by scripts/gen_gemm_blocks.py; do not edit.\n\n"
    )


def splice(path, entries):
    text = path.read_text()
    marker = "// ---- generated by scripts/gen_gemm_blocks.py below; do not edit ----"
    head = text.split(marker)[0].rstrip() + "\n\n"
    path.write_text(head + marker + "\n\n" + "\n\n".join(entries) + "\n")


splice(ROOT / "xnor_gemm.wgsl", [xnor_entry(rm) for rm in RMS])
splice(ROOT / "f32_gemm_nt4.wgsl", [nt4_entry(8), nt4_entry(8, src="ua")])
(ROOT / "f32_gemm_nt4s.wgsl").write_text(
    appended("f32_gemm_nt4_common.wgsl and f32_gemm_nt4.wgsl", "Params, bindings and store4")
    + nt4_entry(8, subgroups=True) + "\n"
)
splice(ROOT / "f32_gemm_nt4c.wgsl", [nt4_entry(8, side_by_side=True)])
(ROOT / "f32_gemm_nt4sc.wgsl").write_text(
    appended("f32_gemm_nt4_common.wgsl and f32_gemm_nt4c.wgsl", "Params, bindings and store4c")
    + nt4_entry(16, subgroups=True, side_by_side=True) + "\n"
)
(ROOT / "xnor_gemm_s.wgsl").write_text(
    appended("xnor_gemm_common.wgsl and xnor_gemm.wgsl", "Params, bindings, term4 and store4")
    + "\n\n".join(xnor_entry(rm, subgroups=True) for rm in RMS) + "\n"
)
splice(ROOT / "xnor_gemm_c.wgsl", [xnor_entry(rm, side_by_side=True) for rm in RMS])
(ROOT / "xnor_gemm_sc.wgsl").write_text(
    appended("xnor_gemm_common.wgsl and xnor_gemm_c.wgsl", "Params, bindings, term4 and store4c")
    + "\n\n".join(xnor_entry(rm, subgroups=True, side_by_side=True) for rm in RMS) + "\n"
)
splice(ROOT / "sign_gemm.wgsl", [sign_entry(8)])
CONV = ROOT.parent / "conv"
splice(CONV / "sign_conv_data.wgsl", [sign_conv_entry(8), sign_conv_entry(8, cols=2)])
(CONV / "sign_conv_data_s.wgsl").write_text(
    appended("sign_conv_data.wgsl", "its Params, bindings and helpers")
    + sign_conv_entry(8, subgroups=True) + "\n\n"
    + sign_conv_entry(8, subgroups=True, cols=2) + "\n"
)
(ROOT / "sign_gemm_s.wgsl").write_text(
    appended("sign_gemm_common.wgsl and sign_gemm.wgsl", "Params, bindings, kscale4, col_signs4 and store4")
    + sign_entry(8, subgroups=True) + "\n"
)
splice(ROOT / "sign_gemm_c.wgsl", [sign_entry(8, side_by_side=True)])
(ROOT / "sign_gemm_sc.wgsl").write_text(
    appended("sign_gemm_common.wgsl and sign_gemm_c.wgsl", "Params, bindings, kscale4, col_signs4 and store4c")
    + sign_entry(8, subgroups=True, side_by_side=True) + "\n"
)
