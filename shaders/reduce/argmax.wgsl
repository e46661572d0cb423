// Row argmax and classification accuracy.
//
// x:      f32 [rows, cols] (logits).
// labels: u32 [rows], read only by accuracy_count (argmax_rows binds any
//         read-only tensor there).
// out:    u32, written here: argmax_rows writes [rows], the column of the
//         first maximum of each row; accuracy_count writes [1], the number of
//         rows whose argmax equals the label (labels >= cols never match).
//
// argmax_rows: one invocation per row, scanning the row in order so ties go
// to the lowest column. accuracy_count: one workgroup; each lane scans rows
// lid, lid + WG, ... and a workgroup-memory tree adds the lanes' counts.
// NaN compares false: a NaN in column 0 keeps column 0, a NaN elsewhere never wins.

struct Params {
    rows: u32,
    cols: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

override WG: u32 = 64u;
var<workgroup> counts: array<u32, WG>;

fn row_argmax(r: u32) -> u32 {
    let base = r * p.cols;
    var best = x[base];
    var arg = 0u;
    for (var j = 1u; j < p.cols; j++) {
        let v = x[base + j];
        if (v > best) {
            best = v;
            arg = j;
        }
    }
    return arg;
}

@compute @workgroup_size(WG)
fn argmax_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let r = (wid.x + wid.y * nwg.x) * WG + lid;
    if (r >= p.rows) {
        return;
    }
    out[r] = row_argmax(r);
}

@compute @workgroup_size(WG)
fn accuracy_count(@builtin(local_invocation_index) lid: u32) {
    var hits = 0u;
    for (var r = lid; r < p.rows; r += WG) {
        if (row_argmax(r) == labels[r]) {
            hits += 1u;
        }
    }
    counts[lid] = hits;
    workgroupBarrier();
    for (var k = WG / 2u; k > 0u; k >>= 1u) {
        if (lid < k) {
            counts[lid] += counts[lid + k];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        out[0] = counts[0];
    }
}
