//! Writer-independent verification pairs, as `training/twin_train/pairs.py` builds them:
//!
//! - positives: every pair of one subject's genuine samples;
//! - skilled negatives: each of a subject's genuine samples against each of its forgeries;
//! - random negatives: each genuine sample of a subject against each genuine sample of
//!   every later subject (subjects sorted by name).
//!
//! Positives and skilled negatives are always enumerated in full. Random negatives grow
//! with the square of the data, so they can be capped: a uniform sample without
//! replacement, deterministic for a seed, kept in enumeration order.

use std::collections::{BTreeMap, HashSet};

/// Genuine sample or forgery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SampleKind {
    Genuine,
    Forged,
}

/// Which random negatives to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RandomPairs {
    /// Every one, as `pairs.py` does.
    All,
    /// At most `cap`, sampled with `seed` when there are more.
    AtMost { cap: usize, seed: u64 },
}

/// Index pairs into the sample list, by kind; `[genuine, other]` for negatives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pairs {
    pub positive: Vec<[usize; 2]>,
    pub skilled: Vec<[usize; 2]>,
    pub random: Vec<[usize; 2]>,
    /// Random negatives before sampling (equal to `random.len()` when none was dropped).
    pub random_total: u64,
}

/// Sample indices of each subject's genuine samples and of its forgeries, subjects in name
/// order.
pub(crate) type BySubject<'a> = BTreeMap<&'a str, Vec<usize>>;

pub(crate) fn by_subject<S: AsRef<str>>(
    samples: &[(S, SampleKind)],
) -> (BySubject<'_>, BySubject<'_>) {
    let mut genuine = BySubject::new();
    let mut forged = BySubject::new();
    for (i, (subject, kind)) in samples.iter().enumerate() {
        let by_kind = match kind {
            SampleKind::Genuine => &mut genuine,
            SampleKind::Forged => &mut forged,
        };
        by_kind.entry(subject.as_ref()).or_default().push(i);
    }
    (genuine, forged)
}

/// The pairs among `samples`, each given as (subject, kind).
pub fn build_pairs<S: AsRef<str>>(samples: &[(S, SampleKind)], random: RandomPairs) -> Pairs {
    let (genuine, forged) = by_subject(samples);
    let mut pairs = Pairs::default();
    for (subject, g) in &genuine {
        for (a, &first) in g.iter().enumerate() {
            for &second in &g[a + 1..] {
                pairs.positive.push([first, second]);
            }
        }
        for &a in g {
            for &f in forged.get(subject).map(Vec::as_slice).unwrap_or_default() {
                pairs.skilled.push([a, f]);
            }
        }
    }
    let groups: Vec<&Vec<usize>> = genuine.values().collect();
    // Blocks of random pairs in enumeration order: subject x against each later subject y.
    let blocks: Vec<(usize, usize)> = (0..groups.len())
        .flat_map(|x| (x + 1..groups.len()).map(move |y| (x, y)))
        .collect();
    let block_len = |&(x, y): &(usize, usize)| (groups[x].len() * groups[y].len()) as u64;
    pairs.random_total = blocks.iter().map(block_len).sum();
    let pair_at = |&(x, y): &(usize, usize), offset: u64| {
        let width = groups[y].len() as u64;
        [
            groups[x][(offset / width) as usize],
            groups[y][(offset % width) as usize],
        ]
    };
    match random {
        RandomPairs::AtMost { cap, seed } if (cap as u64) < pairs.random_total => {
            let mut chosen = sample_indices(pairs.random_total, cap, seed);
            chosen.sort_unstable();
            // Walk the blocks once, mapping each chosen global index into its block.
            let mut start = 0u64;
            let mut next = chosen.iter().peekable();
            for block in &blocks {
                let end = start + block_len(block);
                while let Some(&&index) = next.peek().filter(|&&&i| i < end) {
                    pairs.random.push(pair_at(block, index - start));
                    next.next();
                }
                start = end;
            }
        }
        _ => {
            for block in &blocks {
                pairs
                    .random
                    .extend((0..block_len(block)).map(|offset| pair_at(block, offset)));
            }
        }
    }
    pairs
}

/// `count` distinct indices in `0..total` (count < total), uniformly: Floyd's algorithm,
/// with SplitMix64 so the choice depends on nothing but the seed.
pub(crate) fn sample_indices(total: u64, count: usize, seed: u64) -> Vec<u64> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut chosen = HashSet::with_capacity(count);
    for j in total - count as u64..total {
        // Modulo bias is below 2^-40 for any realistic total.
        let t = next() % (j + 1);
        if !chosen.insert(t) {
            chosen.insert(j);
        }
    }
    chosen.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use SampleKind::{Forged, Genuine};

    fn samples() -> Vec<(&'static str, SampleKind)> {
        vec![
            ("b", Genuine), // 0
            ("a", Genuine), // 1
            ("a", Forged),  // 2
            ("b", Genuine), // 3
            ("a", Genuine), // 4
            ("c", Forged),  // 5: a subject without genuine samples is never paired
            ("b", Forged),  // 6
            ("a", Genuine), // 7
        ]
    }

    #[test]
    fn pairs_are_enumerated_like_pairs_py() {
        let p = build_pairs(&samples(), RandomPairs::All);
        // a: genuine 1 4 7, forged 2; b: genuine 0 3, forged 6 (subjects in name order).
        assert_eq!(p.positive, vec![[1, 4], [1, 7], [4, 7], [0, 3]]);
        assert_eq!(p.skilled, vec![[1, 2], [4, 2], [7, 2], [0, 6], [3, 6]]);
        assert_eq!(
            p.random,
            vec![[1, 0], [1, 3], [4, 0], [4, 3], [7, 0], [7, 3]]
        );
        assert_eq!(p.random_total, 6);
    }

    #[test]
    fn a_cap_above_the_total_keeps_everything() {
        let all = build_pairs(&samples(), RandomPairs::All);
        let capped = build_pairs(&samples(), RandomPairs::AtMost { cap: 6, seed: 1 });
        assert_eq!(all, capped);
    }

    #[test]
    fn sampled_random_pairs_are_distinct_valid_and_seeded() {
        // 30 subjects × 4 genuine: C(30, 2) · 16 = 6960 random pairs.
        let subjects: Vec<String> = (0..30).map(|s| format!("s{s:02}")).collect();
        let data: Vec<(&str, SampleKind)> = subjects
            .iter()
            .flat_map(|s| std::iter::repeat_n((s.as_str(), Genuine), 4))
            .collect();
        let all = build_pairs(&data, RandomPairs::All);
        assert_eq!(all.random.len(), 6960);
        let a = build_pairs(&data, RandomPairs::AtMost { cap: 500, seed: 7 });
        let b = build_pairs(&data, RandomPairs::AtMost { cap: 500, seed: 7 });
        let c = build_pairs(&data, RandomPairs::AtMost { cap: 500, seed: 8 });
        assert_eq!(a, b);
        assert_ne!(a.random, c.random);
        assert_eq!(a.random.len(), 500);
        assert_eq!(a.random_total, 6960);
        let distinct: HashSet<[usize; 2]> = a.random.iter().copied().collect();
        assert_eq!(distinct.len(), 500);
        let everything: HashSet<[usize; 2]> = all.random.iter().copied().collect();
        assert!(a.random.iter().all(|p| everything.contains(p)));
        // Kept in enumeration order, like the full list.
        let position = |p: &[usize; 2]| all.random.iter().position(|q| q == p);
        assert!(a
            .random
            .windows(2)
            .all(|w| position(&w[0]) < position(&w[1])));
        assert_eq!(a.positive, all.positive);
    }

    #[test]
    fn floyd_sampling_is_close_to_uniform() {
        // 2000 draws of 10 from 0..20: every index should be chosen about 1000 times.
        let mut hits = [0u32; 20];
        for seed in 0..2000 {
            for i in sample_indices(20, 10, seed) {
                hits[i as usize] += 1;
            }
        }
        assert!(hits.iter().all(|&h| (850..1150).contains(&h)), "{hits:?}");
    }
}
