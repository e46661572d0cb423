// Logits of a packed model by table lookup: the last layer's integer
// pre-activations index a per-class table of f32 logits the host computed
// (with the CPU runtime's expression), so the device does no float
// arithmetic and its logits equal the CPU's bit for bit.
//
// s:      f32 [N, C] (read): exact integers in [lo, lo + span).
// table:  f32 [C, span] (read): table[c * span + j] is the logit of class c
//         at pre-activation lo + j.
// logits: f32 [N, C], written.
// Out-of-range values (impossible for a validated model) clamp to the table's ends.

struct Params {
    total: u32,
    c: u32,
    span: u32,
    lo: i32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> s: array<f32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read_write> logits: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn logit_lut(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = (wid.x + wid.y * nwg.x) * WG + lid;
    if (idx >= p.total) {
        return;
    }
    let c = idx % p.c;
    let j = clamp(i32(s[idx]) - p.lo, 0, i32(p.span) - 1);
    logits[idx] = table[c * p.span + u32(j)];
}
