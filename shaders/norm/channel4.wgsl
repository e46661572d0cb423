// Prepended to a batch-norm module whose Params has `c` and `s` (x viewed as
// [N, C, S]), for its four-per-lane entry: vec4 q holds elements 4q .. 4q + 3,
// all of one channel when S % 4 == 0, four neighbouring channels when S == 1
// (the host picks these entries only then, and only when C % 4 == 0, so that
// the per-channel arrays can be read as vec4s).

// The channel of element 4q (the first of four when S == 1).
fn channel_of4(q: u32) -> u32 {
    return (4u * q / p.s) % p.c;
}

// Four per-channel values for vec4 q, from the vec4 `v` that holds channel
// `ch` (v = array[ch / 4]).
fn per_channel4(v: vec4<f32>, ch: u32) -> vec4<f32> {
    if (p.s == 1u) {
        return v;
    }
    return vec4<f32>(v[ch & 3u]);
}
