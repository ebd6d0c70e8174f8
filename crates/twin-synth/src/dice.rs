//! Seeded randomness: every image is a pure function of (spec seed, writer, kind, index), so one
//! sample can be regenerated alone and datasets are byte-identical for a seed.

use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;

/// A small random source with the few distributions the generator needs.
pub(crate) struct Dice(Pcg64);

/// Stream tags keep the random sequences of different purposes apart.
pub(crate) mod stream {
    pub const WRITER: u64 = 0x5752_4954_4552;
    pub const GENUINE: u64 = 0x4745_4e55;
    pub const FORGERY: u64 = 0x464f_5247;
    pub const FORGER: u64 = 0x4841_4e44;
}

/// SplitMix64 finaliser: spreads nearby inputs (writer 1, writer 2) over the whole seed space.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Dice {
    /// A source for `seed` narrowed by a path of tags (stream, writer, index, ...).
    pub fn new(seed: u64, path: &[u64]) -> Self {
        let state = path
            .iter()
            .fold(mix(seed), |state, &part| mix(state ^ mix(part)));
        Self(Pcg64::seed_from_u64(state))
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.0.random::<f64>()
    }

    /// Normal with mean 0 and standard deviation `sd` (Box–Muller).
    pub fn normal(&mut self, sd: f64) -> f64 {
        let u1 = 1.0 - self.0.random::<f64>();
        let u2 = self.0.random::<f64>();
        sd * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.0.random::<f64>() < p
    }

    /// Uniform integer in `lo..=hi`.
    pub fn int(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.0.random::<u64>() % (hi - lo + 1) as u64) as usize
    }

    /// `+1.0` or `-1.0` with equal odds.
    pub fn sign(&mut self) -> f64 {
        if self.chance(0.5) {
            1.0
        } else {
            -1.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_path_same_numbers_and_different_paths_differ() {
        let draw = |path: &[u64]| {
            let mut dice = Dice::new(7, path);
            (0..4).map(|_| dice.uniform(0.0, 1.0)).collect::<Vec<_>>()
        };
        assert_eq!(draw(&[1, 2]), draw(&[1, 2]));
        assert_ne!(draw(&[1, 2]), draw(&[2, 1]));
        assert_ne!(draw(&[1]), draw(&[1, 0]));
    }

    #[test]
    fn normal_has_the_requested_spread() {
        let mut dice = Dice::new(1, &[]);
        let n = 20_000;
        let samples: Vec<f64> = (0..n).map(|_| dice.normal(2.0)).collect();
        let mean = samples.iter().sum::<f64>() / n as f64;
        let var = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((var.sqrt() - 2.0).abs() < 0.05, "sd {}", var.sqrt());
    }
}
