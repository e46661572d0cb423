// Prepended to a batch-norm module whose Params has `c` and `s` (x viewed as
// [N, C, S]), for its four-per-lane and runs entries: vec4 q holds elements 4q .. 4q + 3,
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

// The *_runs entries (CPU adapters, S % 4 == 0): a lane takes RUN
// consecutive vec4s and loads a channel's values once per plane it meets
// instead of once per vec4; lavapipe runs every lane-varying load lane by
// lane, and these were most of the loads. The arithmetic stays the same.
override RUN: u32 = 8u;

// Where a run starting at vec4 q0 begins: its channel, and how many vec4s
// of that channel's plane are left from q0 on.
fn run_start(q0: u32) -> vec2<u32> {
    let plane4 = p.s / 4u;
    return vec2<u32>(channel_of4(q0), plane4 - q0 % plane4);
}

// run_start for the one-element-a-lane *_runs1 entries (planes of S > 1
// values that are not whole vec4s): element i0's channel, and how many
// values of its plane are left from i0 on.
fn run_start1(i0: u32) -> vec2<u32> {
    return vec2<u32>((i0 / p.s) % p.c, p.s - i0 % p.s);
}

// The channel after `ch`, wrapping to the next image's first.
fn next_channel(ch: u32) -> u32 {
    return select(ch + 1u, 0u, ch + 1u == p.c);
}
