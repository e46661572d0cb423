// Binary conv2d forward: XNOR-popcount over packed sign bits, an implicit
// GEMM with M = N*OH*OW output pixels, N = O output channels and
// K = C*KH*KW, walked as KH*KW taps of CW = ceil(C / 32) words.
//
// x:     u32, rows n*H*W + y*W + x of CW words: the input's signs packed
//        along channels (pack_signs with outer = N, k = C, inner = H*W);
//        word j of row r at x[r * x_row + j * x_word], which covers the
//        row-major [N*H*W, CW] and word-major [CW, N*H*W] layouts.
// wt:    u32, rows o*KH*KW + ky*KW + kx of CW words: the weights' signs
//        packed along channels per tap (pack_signs with outer = O, k = C,
//        inner = KH*KW); word j of row r at wt[r * w_row + j * w_word].
//        Padding bits of the last word are 0 in both.
// scale: f32 [O], read when has_scale != 0.
// out:   f32 [N, O, OH, OW], written here:
//        out = scale[o] * sum over taps t of (C - 2 * popcount(x_t xor w_t)).
//        Taps in the padding contribute 0 (pad_one = 0, the input padded
//        with zeros), or see an input of all +1 (pad_one = 1), which
//        contributes sum_c w_c = 2 * popcount(w_t) - C.
//        With the override AND_X = 1, x holds {0, 1} values (bit 1 = 1) and
//        out = scale[o] * sum over taps of (2 * popcount(x_t and w_t) -
//        popcount(x_t)), accumulated modulo 2^32 and read as i32 (exact);
//        padded taps read x = 0 and add nothing (zero padding only).
//
// Each invocation computes RP output pixels x RO output channels. A
// workgroup shares its RO channels, so weight loads are uniform across it,
// and spreads pixels over lanes (pixel j of lane l is m0 + l + j * WG) so
// neighbouring lanes write neighbouring outputs. No workgroup memory:
// barriers are expensive on CPU adapters. Params: binary_conv2d_params.wgsl.

@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read> wt: array<u32>;
@group(0) @binding(3) var<storage, read> scale: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
// The padding terms of the XNOR-GEMM convolution (conv_pad_terms, conv_finish).
@group(0) @binding(5) var<storage, read_write> terms: array<i32>;

override WG: u32 = 64u;
override RO: u32 = 8u;
override RP: u32 = 2u;
const MAX_RO: u32 = 16u;
const MAX_RP: u32 = 4u;
override AND_X: u32 = 0u;

@compute @workgroup_size(WG)
fn binary_conv2d(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= p.groups) {
        return;
    }
    let o0 = (g / p.groups_x) * RO;
    let m0 = (g % p.groups_x) * WG * RP + lid;
    let ohw = p.oh * p.ow;
    let taps = p.kh * p.kw;

    // Lanes past the end compute a clamped pixel / channel and skip the store.
    var row0: array<u32, MAX_RP>;
    var iy0: array<i32, MAX_RP>;
    var ix0: array<i32, MAX_RP>;
    for (var j = 0u; j < RP; j++) {
        let m = min(m0 + j * WG, p.pixels - 1u);
        let r = m % ohw;
        row0[j] = (m / ohw) * p.h * p.w;
        iy0[j] = i32((r / p.ow) * p.stride) - i32(p.pad);
        ix0[j] = i32((r % p.ow) * p.stride) - i32(p.pad);
    }
    var wrow: array<u32, MAX_RO>;
    for (var i = 0u; i < RO; i++) {
        wrow[i] = min(o0 + i, p.o - 1u) * taps;
    }

    var pop: array<array<u32, MAX_RO>, MAX_RP>;
    // Taps that contribute, per pixel: all of them with one-padding.
    var used_taps: array<u32, MAX_RP>;
    for (var ky = 0u; ky < p.kh; ky++) {
        for (var kx = 0u; kx < p.kw; kx++) {
            let tap = ky * p.kw + kx;
            var xrow: array<u32, MAX_RP>;
            var inside: array<bool, MAX_RP>;
            for (var j = 0u; j < RP; j++) {
                let iy = iy0[j] + i32(ky);
                let ix = ix0[j] + i32(kx);
                inside[j] = iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w);
                // Outside the image, read row 0 (in bounds) and discard it.
                xrow[j] = select(0u, (row0[j] + u32(iy) * p.w + u32(ix)) * p.x_row, inside[j]);
                used_taps[j] += u32(inside[j] || p.pad_one != 0u);
            }
            // The inner loop is branch-free: a padded input is read as +1
            // (every valid channel bit set), and for zero padding that
            // tap's popcount(ones xor w) = C - popcount(w) is taken back out.
            for (var cw = 0u; cw < p.cw; cw++) {
                var wv: array<u32, MAX_RO>;
                for (var i = 0u; i < RO; i++) {
                    wv[i] = wt[(wrow[i] + tap) * p.w_row + cw * p.w_word];
                }
                let ones = select(0xffffffffu, p.last_mask, cw + 1u == p.cw);
                if (AND_X != 0u) {
                    for (var j = 0u; j < RP; j++) {
                        let xv = select(0u, x[xrow[j] + cw * p.x_word], inside[j]);
                        let xones = countOneBits(xv);
                        for (var i = 0u; i < RO; i++) {
                            pop[j][i] += 2u * countOneBits(xv & wv[i]) - xones;
                        }
                    }
                    continue;
                }
                for (var j = 0u; j < RP; j++) {
                    let xv = select(ones, x[xrow[j] + cw * p.x_word], inside[j]);
                    for (var i = 0u; i < RO; i++) {
                        pop[j][i] += countOneBits(xv ^ wv[i]);
                    }
                }
            }
            var outside = false;
            for (var j = 0u; j < RP; j++) {
                outside = outside || !inside[j];
            }
            // Border pixels only: most invocations skip this.
            if (AND_X == 0u && p.pad_one == 0u && outside) {
                // keep = C - popcount(w_t), the padded tap's share of pop.
                var keep: array<u32, MAX_RO>;
                for (var i = 0u; i < RO; i++) {
                    keep[i] = p.c;
                }
                for (var cw = 0u; cw < p.cw; cw++) {
                    for (var i = 0u; i < RO; i++) {
                        keep[i] -= countOneBits(wt[(wrow[i] + tap) * p.w_row + cw * p.w_word]);
                    }
                }
                for (var j = 0u; j < RP; j++) {
                    if (!inside[j]) {
                        for (var i = 0u; i < RO; i++) {
                            pop[j][i] -= keep[i];
                        }
                    }
                }
            }
        }
    }

    for (var j = 0u; j < RP; j++) {
        let m = m0 + j * WG;
        if (m >= p.pixels) {
            continue;
        }
        let n = m / ohw;
        let r = m % ohw;
        let k = i32(used_taps[j] * p.c);
        for (var i = 0u; i < RO; i++) {
            let o = o0 + i;
            if (o >= p.o) {
                continue;
            }
            var v = f32(k - 2 * i32(pop[j][i]));
            if (AND_X != 0u) {
                v = f32(bitcast<i32>(pop[j][i]));
            }
            if (p.has_scale != 0u) {
                v *= scale[o];
            }
            out[(n * p.o + o) * ohw + r] = v;
        }
    }
}

// The convolution as an XNOR GEMM (conv_gemm.rs: im2col_words, then the
// vec4 XNOR GEMM into out, unscaled) reads taps outside the image as +1;
// zero padding must add nothing. Two passes take those terms out:
//
// conv_pad_terms: for each output channel o and output pixel s of a plane,
//   terms[o, s] = sum over the taps t of s outside the image of S[o, t],
//   S[o, t] = sum over channels of sign(w[o, c, t]) = 2 * popcount(w_t) - C;
//   the same for every image, so computed once (O * OH * OW invocations).
// conv_finish: out[n, o, s] = scale[o] * (out[n, o, s] - terms[o, s]). out
//   holds exact integers before, so the result equals binary_conv2d's bit
//   for bit.

@compute @workgroup_size(WG)
fn conv_pad_terms(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    let plane = p.oh * p.ow;
    if (i >= p.o * plane) {
        return;
    }
    let o = i / plane;
    let s = i % plane;
    let iy0 = i32((s / p.ow) * p.stride) - i32(p.pad);
    let ix0 = i32((s % p.ow) * p.stride) - i32(p.pad);
    var outside = 0i;
    for (var ky = 0u; ky < p.kh; ky++) {
        for (var kx = 0u; kx < p.kw; kx++) {
            let iy = iy0 + i32(ky);
            let ix = ix0 + i32(kx);
            if (iy < 0 || ix < 0 || iy >= i32(p.h) || ix >= i32(p.w)) {
                let row = (o * p.kh * p.kw + ky * p.kw + kx) * p.w_row;
                var ones = 0u;
                for (var j = 0u; j < p.cw; j++) {
                    ones += countOneBits(wt[row + j * p.w_word]);
                }
                outside += 2i * i32(ones) - i32(p.c);
            }
        }
    }
    terms[i] = outside;
}

@compute @workgroup_size(WG)
fn conv_finish(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    let plane = p.oh * p.ow;
    if (i >= p.n * p.o * plane) {
        return;
    }
    // Integer division is scalar on a CPU adapter: two per element.
    let os = i % (p.o * plane);
    var v = out[i] - f32(terms[os]);
    if (p.has_scale != 0u) {
        v *= scale[os / plane];
    }
    out[i] = v;
}
