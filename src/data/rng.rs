//! A small, documented, portable PRNG for data shuffling.
//!
//! SplitMix64 (Steele, Lea, Flood, "Fast splittable pseudorandom number
//! generators", OOPSLA 2014; constants as in Vigna's reference `splitmix64.c`):
//!
//! ```text
//! state <- state + 0x9E3779B97F4A7C15            (mod 2^64)
//! z = state
//! z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
//! z = (z ^ (z >> 27)) * 0x94D049BB133111EB
//! out = z ^ (z >> 31)
//! ```
//!
//! The whole state is one `u64`, so a resume can store it as is. The output
//! sequence is fixed by this file (no dependence on a crate's version), which
//! keeps shuffles reproducible across builds and platforms.

/// The golden-ratio increment of SplitMix64: `floor(2^64 / phi)`, odd.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64 generator; `state` is its entire state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitMix64 {
    /// The 64-bit counter; the next output is `mix64(state + GAMMA)`.
    pub state: u64,
}

/// The SplitMix64 output finalizer (a bijection on u64):
/// `z = (z ^ z>>30) * 0xBF58476D1CE4E5B9; z = (z ^ z>>27) * 0x94D049BB133111EB; z ^ z>>31`.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl SplitMix64 {
    /// A generator whose state is `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The generator for epoch `epoch` of a run seeded with `seed`:
    /// `state = mix64(seed + mix64(epoch))`.
    ///
    /// Hashing rather than `seed + epoch` keeps epochs on unrelated streams
    /// (SplitMix64 streams whose states differ by a multiple of GAMMA are
    /// shifted copies of each other).
    pub fn for_epoch(seed: u64, epoch: u64) -> Self {
        Self::new(mix64(seed.wrapping_add(mix64(epoch))))
    }

    /// Next 64 random bits: `state += GAMMA; mix64(state)`.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix64(self.state)
    }

    /// Uniform in [0, 1) with 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.next_f64() as f32
    }

    /// An independent generator for a named sub-stream (e.g. weight init).
    pub fn fork(&self, salt: u64) -> SplitMix64 {
        SplitMix64::new(mix64(self.state ^ mix64(salt)))
    }

    /// A uniform integer in `[0, bound)` (`bound > 0`), without modulo bias,
    /// by Lemire's multiply-shift with rejection ("Fast random integer
    /// generation in an interval", 2019): `floor(x * bound / 2^64)` for a
    /// random `x`, rejecting the `2^64 mod bound` values of the low word that
    /// would over-represent some results. Returns 0 when `bound == 0`.
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        let threshold = bound.wrapping_neg() % bound; // 2^64 mod bound
        loop {
            let m = (self.next_u64() as u128) * (bound as u128);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }
}

/// The order in which to visit `n` samples in epoch `epoch`: a permutation
/// of `0..n` from a Fisher-Yates shuffle driven by
/// [`SplitMix64::for_epoch`]`(seed, epoch)`, so it depends on (seed, epoch) only.
///
/// For `i` from `n-1` down to 1: swap `order[i]` with `order[j]`, `j = below(i+1)`.
pub fn shuffled_order(n: usize, seed: u64, epoch: u64) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut rng = SplitMix64::for_epoch(seed, epoch);
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_reference_splitmix64() {
        // First outputs of Vigna's splitmix64.c seeded with 1234567.
        let mut r = SplitMix64::new(1234567);
        let expected = [
            6457827717110365317u64,
            3203168211198807973,
            9817491932198370423,
            4593380528125082431,
            16408922859458223821,
        ];
        for e in expected {
            assert_eq!(r.next_u64(), e);
        }
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut r = SplitMix64::new(7);
        let mut seen = [0u32; 7];
        for _ in 0..7000 {
            let v = r.below(7);
            assert!(v < 7);
            seen[v as usize] += 1;
        }
        // Each bucket expects 1000; 800 is > 6 sigma below.
        assert!(seen.iter().all(|&c| c > 800), "{seen:?}");
        assert_eq!(r.below(1), 0);
        assert_eq!(r.below(0), 0);
    }

    #[test]
    fn shuffle_is_a_permutation_and_differs_by_epoch() {
        let a = shuffled_order(1000, 42, 0);
        let b = shuffled_order(1000, 42, 1);
        let mut s = a.clone();
        s.sort_unstable();
        assert_eq!(s, (0..1000).collect::<Vec<u32>>());
        assert_ne!(a, b);
        assert_eq!(a, shuffled_order(1000, 42, 0));
    }
}
