//! The nemesis RNG: SplitMix64, written out here instead of taken from a crate.
//!
//! A fault schedule must be reproducible from the seed in a run's plan.json, also after
//! dependency upgrades; general-purpose RNG crates do not promise a stable stream across versions
//! (rand's `StdRng` explicitly does not). SplitMix64 is ten lines, passes BigCrush, and its
//! output for a given seed is fixed by its definition, which the tests pin.

/// A small deterministic generator. Not for cryptography.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// A generator for one purpose (`"nemesis"`, `"stall"`), independent of other purposes
    /// drawing from the same run seed.
    pub fn derive(seed: u64, purpose: &str) -> SplitMix64 {
        // FNV-1a of the purpose, mixed into the seed.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in purpose.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let mut g = SplitMix64::new(seed ^ h);
        g.next_u64();
        g
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), without modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0)");
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo <= hi, "range({lo}, {hi})");
        if hi - lo == u64::MAX {
            return self.next_u64();
        }
        lo + self.below(hi - lo + 1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_stream() {
        // Reference values of SplitMix64 seeded with 1234567 (from the algorithm's definition).
        let mut g = SplitMix64::new(1234567);
        let got: Vec<u64> = (0..5).map(|_| g.next_u64()).collect();
        assert_eq!(
            got,
            vec![
                6457827717110365317,
                3203168211198807973,
                9817491932198370423,
                4593380528125082431,
                16408922859458223821
            ]
        );
    }

    #[test]
    fn purposes_draw_independent_streams() {
        let a = SplitMix64::derive(7, "nemesis").next_u64();
        let b = SplitMix64::derive(7, "stall").next_u64();
        assert_ne!(a, b);
        assert_eq!(a, SplitMix64::derive(7, "nemesis").next_u64());
    }

    #[test]
    fn below_and_range_stay_in_bounds() {
        let mut g = SplitMix64::new(3);
        for _ in 0..1000 {
            assert!(g.below(3) < 3);
            let r = g.range(5, 9);
            assert!((5..=9).contains(&r));
        }
        let mut seen = [false; 3];
        for _ in 0..100 {
            seen[g.below(3) as usize] = true;
        }
        assert_eq!(seen, [true; 3], "every value is drawn");
    }
}
