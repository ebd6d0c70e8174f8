//! Property tests for the evaluation figures: each pins a relation that a wrong formula (a
//! flipped comparison, a lost tie, an off-by-one in the threshold search) breaks.

use proptest::prelude::*;
use twin_core::evaluation::pairs::{build_pairs, RandomPairs, SampleKind};
use twin_core::evaluation::{auc, eer, far_frr, figures, threshold_at_far};

/// Scores on a coarse grid, so ties between and within classes are common.
fn scores() -> impl Strategy<Value = Vec<f64>> {
    proptest::collection::vec((-20i32..=20).prop_map(|v| f64::from(v) / 10.0), 1..40)
}

proptest! {
    #[test]
    fn swapping_the_classes_mirrors_auc(pos in scores(), neg in scores()) {
        let ab = auc(&pos, &neg).expect("auc");
        let ba = auc(&neg, &pos).expect("auc");
        prop_assert!((ab + ba - 1.0).abs() < 1e-12, "{ab} + {ba} != 1");
        prop_assert!((0.0..=1.0).contains(&ab));
    }

    #[test]
    fn auc_is_the_share_of_won_pairs(pos in scores(), neg in scores()) {
        let mut won = 0.0;
        for p in &pos {
            for n in &neg {
                won += if p > n { 1.0 } else if p == n { 0.5 } else { 0.0 };
            }
        }
        let direct = won / (pos.len() * neg.len()) as f64;
        let got = auc(&pos, &neg).expect("auc");
        prop_assert!((got - direct).abs() < 1e-12, "{got} vs {direct}");
    }

    #[test]
    fn threshold_at_far_is_the_lowest_that_meets_the_target(
        neg in scores(),
        target in 0.001f64..0.999,
    ) {
        let t = threshold_at_far(&neg, target).expect("threshold");
        let rates = far_frr(&[0.0], &neg, t).expect("rates");
        prop_assert!(rates.far <= target + 1e-9, "FAR {} > target {target} at {t}", rates.far);
        // Any lower threshold that lets one more negative score in breaks the target.
        if let Some(lower) = neg.iter().copied().filter(|&s| s < t).max_by(f64::total_cmp) {
            let more = far_frr(&[0.0], &neg, lower).expect("rates");
            prop_assert!(more.far > target, "FAR {} at {lower} still meets {target}", more.far);
        }
    }

    #[test]
    fn eer_lies_between_the_rates_around_its_threshold(pos in scores(), neg in scores()) {
        let e = eer(&pos, &neg).expect("eer");
        prop_assert!((0.0..=1.0).contains(&e.rate), "{e:?}");
        // The rates are step functions: at the EER threshold (just past the crossing)
        // FAR <= EER <= FRR.
        let at = far_frr(&pos, &neg, e.threshold).expect("rates");
        prop_assert!(at.far <= e.rate + 1e-12 && e.rate <= at.frr + 1e-12, "{e:?} vs {at:?}");
    }

    #[test]
    fn separated_classes_give_zero_eer_and_full_auc(pos in scores(), neg in scores()) {
        // Shift the positives above every negative.
        let top = neg.iter().copied().fold(f64::MIN, f64::max);
        let low = pos.iter().copied().fold(f64::MAX, f64::min);
        let shifted: Vec<f64> = pos.iter().map(|p| p - low + top + 0.1).collect();
        let f = figures(&shifted, &neg).expect("figures");
        prop_assert!(f.eer.abs() < 1e-12 && (f.auc - 1.0).abs() < 1e-12, "{f:?}");
    }

    #[test]
    fn pair_counts_follow_the_folder_structure(
        genuine in proptest::collection::vec(0usize..6, 1..8),
        forged in proptest::collection::vec(0usize..4, 8),
    ) {
        let mut samples = Vec::new();
        for (s, &g) in genuine.iter().enumerate() {
            let subject = format!("s{s}");
            samples.extend(std::iter::repeat_n((subject.clone(), SampleKind::Genuine), g));
            samples.extend(std::iter::repeat_n((subject, SampleKind::Forged), forged[s]));
        }
        let p = build_pairs(&samples, RandomPairs::All);
        let positive: usize = genuine.iter().map(|g| g * g.saturating_sub(1) / 2).sum();
        let skilled: usize = genuine.iter().zip(&forged).map(|(g, f)| g * f).sum();
        let total: usize = genuine.iter().sum();
        let squares: usize = genuine.iter().map(|g| g * g).sum();
        prop_assert_eq!(p.positive.len(), positive);
        prop_assert_eq!(p.skilled.len(), skilled);
        prop_assert_eq!(p.random.len(), (total * total - squares) / 2);
        let capped = build_pairs(&samples, RandomPairs::AtMost { cap: 5, seed: 3 });
        prop_assert_eq!(capped.random.len(), p.random.len().min(5));
        for [a, b] in capped.random {
            prop_assert!(samples[a].0 != samples[b].0);
            prop_assert_eq!(samples[a].1, SampleKind::Genuine);
            prop_assert_eq!(samples[b].1, SampleKind::Genuine);
        }
    }
}
