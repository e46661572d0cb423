// Appended to im2col_common.wgsl: im2col.wgsl's channel_rows and pixel_rows
// on vec4s, for planes of whole vec4s (OH * OW % 4 == 0, so four pixels
// never straddle images): a quarter of the storage accesses, which a CPU
// adapter executes lane by lane.
//
// channel_rows4: x = g [N, O, OH, OW] -> out [O, pp]  (zero for p >= P), a lane per four pixels
// pixel_rows4:   x = g [N, O, OH, OW] -> out [P, op]  (zero past O), a lane per 4 x 4 block

@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;

// Pixels q .. q + 3 of channel o (q % 4 == 0, q < P).
fn pixels4(o: u32, q: u32) -> vec4<f32> {
    let plane = p.oh * p.ow;
    return x[(((p.n0 + q / plane) * p.o + o) * plane + q % plane) / 4u];
}

@compute @workgroup_size(WG)
fn channel_rows4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = index(wid, nwg, lid);
    let pp4 = p.pp / 4u;
    if (i >= p.o * pp4) {
        return;
    }
    let o = i / pp4;
    let q = (i % pp4) * 4u;
    var v = vec4<f32>(0.0);
    if (q < p.images * p.oh * p.ow) {
        v = pixels4(o, q);
    }
    out[i] = v;
}

// channel_rows4 for CPU adapters: a lane writes RUN consecutive vec4s of a
// row, dividing once for the first one's (image, offset) and stepping
// after; lavapipe runs integer divisions lane by lane, and the two a vec4
// were most of channel_rows4's time.
override RUN: u32 = 8u;

@compute @workgroup_size(WG)
fn channel_rows4_runs(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let pp4 = p.pp / 4u;
    let runs = (pp4 + RUN - 1u) / RUN;
    let i = index(wid, nwg, lid);
    if (i >= p.o * runs) {
        return;
    }
    let o = i / runs;
    let r0 = (i - o * runs) * RUN;
    let plane4 = p.oh * p.ow / 4u;
    let pixels4 = p.images * plane4;
    var img = r0 / plane4;
    var off = r0 - img * plane4;
    for (var j = 0u; j < RUN; j++) {
        let r = r0 + j;
        if (r < pp4) {
            var v = vec4<f32>(0.0);
            if (r < pixels4) {
                v = x[((p.n0 + img) * p.o + o) * plane4 + off];
            }
            out[o * pp4 + r] = v;
        }
        off += 1u;
        let next_image = off == plane4;
        off = select(off, 0u, next_image);
        img += select(0u, 1u, next_image);
    }
}

@compute @workgroup_size(WG)
fn pixel_rows4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = index(wid, nwg, lid);
    let pixels = p.images * p.oh * p.ow;
    let op4 = p.op / 4u;
    if (i >= pixels / 4u * op4) {
        return;
    }
    let q = (i / op4) * 4u;
    let o = (i % op4) * 4u;
    // Rows: channels o .. o + 3 (zero past O); columns: pixels q .. q + 3.
    let zero = vec4<f32>(0.0);
    let r0 = pixels4(o, q);
    let r1 = select(zero, pixels4(min(o + 1u, p.o - 1u), q), o + 1u < p.o);
    let r2 = select(zero, pixels4(min(o + 2u, p.o - 1u), q), o + 2u < p.o);
    let r3 = select(zero, pixels4(min(o + 3u, p.o - 1u), q), o + 3u < p.o);
    let at = q * op4 + o / 4u;
    out[at] = vec4<f32>(r0.x, r1.x, r2.x, r3.x);
    out[at + op4] = vec4<f32>(r0.y, r1.y, r2.y, r3.y);
    out[at + 2u * op4] = vec4<f32>(r0.z, r1.z, r2.z, r3.z);
    out[at + 3u * op4] = vec4<f32>(r0.w, r1.w, r2.w, r3.w);
}
