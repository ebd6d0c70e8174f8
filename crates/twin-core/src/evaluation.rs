//! Verification figures from labelled scores: ROC, equal error rate, ROC AUC, FAR/FRR at a
//! threshold and the threshold for a target FAR. Pure math, no I/O.
//!
//! Every function mirrors `training/twin_train/metrics.py` line for line, so `twin eval` and
//! the training pipeline quote the same figures for the same scores. Scores follow twin's one
//! convention (higher = more similar; distances negated) and a pair is accepted exactly as
//! serving decides it: [`crate::decision::decide`], `score >= threshold`.
//!
//! Verification pairs (positives, skilled and random negatives) are built in [`pairs`];
//! subject-level scores, by simulated enrolment, in [`enrolment`].

pub mod enrolment;
pub mod pairs;

use serde::Serialize;

use crate::decision::decide;

/// Why figures cannot be computed from the scores given.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvaluationError {
    #[error(
        "no {what} scores: the data gives no such pairs (a subject needs two genuine images for \
         a positive pair, a forgery for a skilled one, another subject for a random one)"
    )]
    Empty { what: &'static str },
    #[error("a {what} score is {value}, not a finite number; the embeddings are broken")]
    NonFinite { what: &'static str, value: f64 },
    #[error("target FAR must be in (0, 1), got {0}")]
    TargetFar(f64),
}

/// False-accept and false-reject rates at one threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rates {
    /// Share of negatives accepted (`score >= threshold`).
    pub far: f64,
    /// Share of positives rejected (`score < threshold`).
    pub frr: f64,
}

/// The ROC at every distinct score, thresholds ascending, with `+inf` last (where
/// everything is rejected): `far[i]` and `frr[i]` are the rates at `thresholds[i]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Roc {
    pub thresholds: Vec<f64>,
    pub far: Vec<f64>,
    pub frr: Vec<f64>,
}

/// The equal error rate and the threshold where it is reached.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Eer {
    pub rate: f64,
    pub threshold: f64,
}

/// EER, its threshold and ROC AUC of one set of positive and negative scores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Figures {
    pub eer: f64,
    pub eer_threshold: f64,
    pub auc: f64,
    pub positives: usize,
    pub negatives: usize,
}

fn check(what: &'static str, scores: &[f64]) -> Result<(), EvaluationError> {
    if scores.is_empty() {
        return Err(EvaluationError::Empty { what });
    }
    match scores.iter().find(|s| !s.is_finite()) {
        Some(&value) => Err(EvaluationError::NonFinite { what, value }),
        None => Ok(()),
    }
}

fn check_both(positive: &[f64], negative: &[f64]) -> Result<(), EvaluationError> {
    check("positive", positive)?;
    check("negative", negative)
}

fn sorted(scores: &[f64]) -> Vec<f64> {
    let mut v = scores.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// Number of values of the ascending `sorted` strictly below `t` (numpy's
/// `searchsorted(side="left")`).
fn count_below(sorted: &[f64], t: f64) -> usize {
    sorted.partition_point(|&s| s < t)
}

/// FAR = share of negatives accepted, FRR = share of positives rejected, at `threshold`.
pub fn far_frr(
    positive: &[f64],
    negative: &[f64],
    threshold: f64,
) -> Result<Rates, EvaluationError> {
    check_both(positive, negative)?;
    let accepted = negative.iter().filter(|&&s| decide(s, threshold)).count();
    let rejected = positive.iter().filter(|&&s| !decide(s, threshold)).count();
    Ok(Rates {
        far: accepted as f64 / negative.len() as f64,
        frr: rejected as f64 / positive.len() as f64,
    })
}

/// The ROC at every distinct score (see [`Roc`]).
pub fn roc(positive: &[f64], negative: &[f64]) -> Result<Roc, EvaluationError> {
    check_both(positive, negative)?;
    let pos = sorted(positive);
    let neg = sorted(negative);
    let mut thresholds: Vec<f64> = pos.iter().chain(&neg).copied().collect();
    thresholds.push(f64::INFINITY);
    thresholds.sort_by(f64::total_cmp);
    thresholds.dedup();
    let (n_pos, n_neg) = (pos.len() as f64, neg.len() as f64);
    // Accepted negatives at t: those not strictly below t (score >= t).
    let far = thresholds
        .iter()
        .map(|&t| 1.0 - count_below(&neg, t) as f64 / n_neg)
        .collect();
    let frr = thresholds
        .iter()
        .map(|&t| count_below(&pos, t) as f64 / n_pos)
        .collect();
    Ok(Roc {
        thresholds,
        far,
        frr,
    })
}

/// The equal error rate and its threshold.
///
/// FAR falls and FRR rises as the threshold rises; between the last threshold where
/// FAR > FRR and the first where FAR <= FRR the crossing is interpolated linearly in the
/// rates, and the threshold is the same interpolation between the two thresholds (the
/// second is taken as the first + 1e-6 when it is +inf), as `metrics.py` does.
pub fn eer(positive: &[f64], negative: &[f64]) -> Result<Eer, EvaluationError> {
    let Roc {
        thresholds: t,
        far,
        frr,
    } = roc(positive, negative)?;
    let diff: Vec<f64> = far.iter().zip(&frr).map(|(a, r)| a - r).collect();
    // Exists: at +inf FAR = 0 and FRR = 1.
    let i = diff
        .iter()
        .position(|&d| d <= 0.0)
        .unwrap_or(diff.len() - 1);
    if i == 0 {
        return Ok(Eer {
            rate: (far[0] + frr[0]) / 2.0,
            threshold: t[0],
        });
    }
    let (d0, d1) = (diff[i - 1], diff[i]);
    let w = d0 / (d0 - d1); // in (0, 1]
    let rate = far[i - 1] + w * (far[i] - far[i - 1]);
    let hi = if t[i].is_finite() {
        t[i]
    } else {
        t[i - 1] + 1e-6
    };
    Ok(Eer {
        rate,
        threshold: t[i - 1] + w * (hi - t[i - 1]),
    })
}

/// ROC AUC = P(positive score > negative score) + ½ P(tie), from average ranks
/// (Mann–Whitney U).
pub fn auc(positive: &[f64], negative: &[f64]) -> Result<f64, EvaluationError> {
    check_both(positive, negative)?;
    let mut both: Vec<(f64, bool)> = positive
        .iter()
        .map(|&s| (s, true))
        .chain(negative.iter().map(|&s| (s, false)))
        .collect();
    both.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum = 0.0;
    let mut first = 0;
    while first < both.len() {
        let value = both[first].0;
        let count = both[first..].iter().take_while(|s| s.0 == value).count();
        // Tied scores share the average of their 1-based ranks first+1 ..= first+count.
        let rank = first as f64 + (count as f64 + 1.0) / 2.0;
        let tied_positives = both[first..first + count].iter().filter(|s| s.1).count();
        rank_sum += rank * tied_positives as f64;
        first += count;
    }
    let (n_pos, n_neg) = (positive.len() as f64, negative.len() as f64);
    Ok((rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg))
}

/// The lowest threshold whose FAR on `negative` is at most `target_far`.
///
/// With the negatives sorted high to low (s0 >= s1 >= ...), at most k = ⌊target · n⌋ may be
/// accepted; the threshold lies between s_k and the next higher distinct score (their
/// midpoint, a margin on both sides), or just above s_k when none is higher — exactly
/// `threshold_for_far` in `metrics.py`.
pub fn threshold_at_far(negative: &[f64], target_far: f64) -> Result<f64, EvaluationError> {
    if !(target_far > 0.0 && target_far < 1.0) {
        return Err(EvaluationError::TargetFar(target_far));
    }
    check("negative", negative)?;
    let mut s = negative.to_vec();
    s.sort_by(|a, b| b.total_cmp(a));
    // The 1e-9 keeps 0.29 · 100 = 28.999… from losing an accepted pair, as in Python.
    let k = (target_far * s.len() as f64 + 1e-9).floor() as usize;
    if k >= s.len() {
        return Ok(s[s.len() - 1]);
    }
    let higher = s[..k]
        .iter()
        .copied()
        .filter(|&v| v > s[k])
        .min_by(f64::total_cmp);
    Ok(match higher {
        Some(h) => (s[k] + h) / 2.0,
        None => s[k].next_up(),
    })
}

/// The lowest threshold at which the *mean* of several collections' FARs is at most
/// `target_far` (`threshold_for_mean_far` in `metrics.py`): each collection weighs the same
/// however many negatives it has, so a large collection cannot hide a small one's false
/// accepts. With one collection this is [`threshold_at_far`].
pub fn threshold_for_mean_far(
    collections: &[&[f64]],
    target_far: f64,
) -> Result<f64, EvaluationError> {
    if !(target_far > 0.0 && target_far < 1.0) {
        return Err(EvaluationError::TargetFar(target_far));
    }
    if collections.is_empty() {
        return Err(EvaluationError::Empty { what: "negative" });
    }
    for negative in collections {
        check("negative", negative)?;
    }
    if let [only] = collections {
        return threshold_at_far(only, target_far);
    }
    let sorted: Vec<Vec<f64>> = collections.iter().map(|n| self::sorted(n)).collect();
    let mut candidates: Vec<f64> = sorted.iter().flatten().copied().collect();
    candidates.sort_by(f64::total_cmp);
    candidates.dedup();
    let mean_far = |t: f64| {
        sorted
            .iter()
            .map(|n| 1.0 - count_below(n, t) as f64 / n.len() as f64)
            .sum::<f64>()
            / sorted.len() as f64
    };
    // The mean FAR falls as the threshold rises: the first candidate that meets the target.
    match candidates
        .iter()
        .position(|&t| mean_far(t) <= target_far + 1e-12)
    {
        None => Ok(candidates[candidates.len() - 1].next_up()),
        Some(0) => Ok(candidates[0]),
        // Nothing lies strictly between the two candidates: the midpoint has the same rates.
        Some(i) => Ok((candidates[i - 1] + candidates[i]) / 2.0),
    }
}

/// EER, its threshold and AUC (`figures` in `metrics.py`).
pub fn figures(positive: &[f64], negative: &[f64]) -> Result<Figures, EvaluationError> {
    let e = eer(positive, negative)?;
    Ok(Figures {
        eer: e.rate,
        eer_threshold: e.threshold,
        auc: auc(positive, negative)?,
        positives: positive.len(),
        negatives: negative.len(),
    })
}

/// Accuracy, precision, recall and F1 of the decision `score >= threshold`, with the
/// positives as the positive class (a paraphrase, a genuine pair).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Classification {
    pub threshold: f64,
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// [`Classification`] at `threshold`.
pub fn classification(
    positive: &[f64],
    negative: &[f64],
    threshold: f64,
) -> Result<Classification, EvaluationError> {
    check_both(positive, negative)?;
    let tp = positive.iter().filter(|&&s| decide(s, threshold)).count() as f64;
    let fp = negative.iter().filter(|&&s| decide(s, threshold)).count() as f64;
    let fn_ = positive.len() as f64 - tp;
    let tn = negative.len() as f64 - fp;
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, tp + fn_);
    Ok(Classification {
        threshold,
        accuracy: (tp + tn) / (tp + tn + fp + fn_),
        precision,
        recall,
        f1: ratio(2.0 * precision * recall, precision + recall),
    })
}

/// The threshold of highest accuracy: swept over the midpoints between adjacent distinct
/// scores (and just above the highest), the lowest such threshold on a tie. For tasks
/// judged by accuracy (paraphrase pairs), where no FAR is the target.
pub fn best_accuracy_threshold(positive: &[f64], negative: &[f64]) -> Result<f64, EvaluationError> {
    check_both(positive, negative)?;
    // (score, is_positive), ascending; at threshold t, pairs with score >= t are accepted.
    let mut all: Vec<(f64, bool)> = positive
        .iter()
        .map(|&s| (s, true))
        .chain(negative.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Threshold at the lowest score: everything accepted, correct = positives.
    let mut correct = positive.len() as i64;
    let (mut best, mut best_threshold) = (correct, all[0].0);
    let mut i = 0;
    while i < all.len() {
        let score = all[i].0;
        // Move every pair of this score below the threshold.
        while i < all.len() && all[i].0 == score {
            correct += if all[i].1 { -1 } else { 1 };
            i += 1;
        }
        if correct > best {
            best = correct;
            best_threshold = match all.get(i) {
                Some(&(next, _)) => (score + next) / 2.0,
                None => score.next_up(),
            };
        }
    }
    Ok(best_threshold)
}

/// The standard normal quantile Φ⁻¹(p) (probit), the axis scale of DET plots.
///
/// Acklam's rational approximation (relative error below 1.2e-9, plenty for plotting);
/// −∞ at 0, +∞ at 1, NaN outside [0, 1].
pub fn probit(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const P_LOW: f64 = 0.024_25;
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < P_LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - P_LOW {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn threshold_for_mean_far_weighs_each_collection_the_same_as_metrics_py() {
        // The case of training/tests/test_splits.py: threshold 0.9 gives the big collection
        // FAR 1/100 and the small one 1/4, mean 0.13; 0.85 would give (2/100 + 2/4) / 2.
        let mut big = vec![0.1; 97];
        big.extend([0.9, 0.8, 0.7]);
        let small = [0.2, 0.3, 0.85, 0.95];
        let t = threshold_for_mean_far(&[&big, &small], 0.13).expect("threshold");
        assert!(0.85 < t && t <= 0.9, "{t}");
        let far = |n: &[f64]| n.iter().filter(|&&s| s >= t).count() as f64 / n.len() as f64;
        assert!((far(&big) + far(&small)) / 2.0 <= 0.13);
        let one = threshold_for_mean_far(&[&big], 0.02).expect("one collection");
        assert_eq!(one, threshold_at_far(&big, 0.02).expect("plain"));
        assert!(threshold_for_mean_far(&[&big, &[]], 0.1).is_err());
        assert!(threshold_for_mean_far(&[], 0.1).is_err());
    }

    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn rates_follow_the_serving_rule_score_at_threshold_is_accepted() {
        // pos [0.9 0.8 0.7], neg [0.1 0.2 0.75] at 0.75: the negative 0.75 is accepted
        // (>=), the positive 0.7 rejected.
        let r = far_frr(&[0.9, 0.8, 0.7], &[0.1, 0.2, 0.75], 0.75).expect("rates");
        assert!(close(r.far, 1.0 / 3.0) && close(r.frr, 1.0 / 3.0), "{r:?}");
        let r = far_frr(&[0.9, 0.8, 0.7], &[0.1, 0.2, 0.75], 0.7).expect("rates");
        assert!(close(r.far, 1.0 / 3.0) && close(r.frr, 0.0), "{r:?}");
    }

    #[test]
    fn roc_lists_every_distinct_score_and_infinity() {
        // thresholds 0.1 0.2 0.7 0.75 0.8 0.9 inf
        // FAR (neg >= t): 1 2/3 1/3 1/3 0 0 0; FRR (pos < t): 0 0 0 1/3 1/3 2/3 1
        let r = roc(&[0.9, 0.8, 0.7], &[0.1, 0.2, 0.75]).expect("roc");
        assert_eq!(
            r.thresholds,
            vec![0.1, 0.2, 0.7, 0.75, 0.8, 0.9, f64::INFINITY]
        );
        let third = 1.0 / 3.0;
        let want_far = [1.0, 2.0 * third, third, third, 0.0, 0.0, 0.0];
        let want_frr = [0.0, 0.0, 0.0, third, third, 2.0 * third, 1.0];
        for i in 0..7 {
            assert!(close(r.far[i], want_far[i]), "far[{i}] {:?}", r.far);
            assert!(close(r.frr[i], want_frr[i]), "frr[{i}] {:?}", r.frr);
        }
    }

    #[test]
    fn eer_where_the_rates_meet_exactly() {
        // From the ROC above: FAR - FRR = 1 2/3 1/3 0 ...; the first <= 0 is at t = 0.75
        // with both rates 1/3, so w = 1: EER 1/3 at 0.75.
        let e = eer(&[0.9, 0.8, 0.7], &[0.1, 0.2, 0.75]).expect("eer");
        assert!(
            close(e.rate, 1.0 / 3.0) && close(e.threshold, 0.75),
            "{e:?}"
        );
    }

    #[test]
    fn eer_interpolates_between_thresholds() {
        // pos [0.4 0.8 0.9], neg [0.3 0.5]; thresholds 0.3 0.4 0.5 0.8 0.9 inf
        // FAR 1 1/2 1/2 0 0 0; FRR 0 0 1/3 1/3 2/3 1; FAR - FRR 1 1/2 1/6 -1/3 ...
        // crossing between t = 0.5 (+1/6) and t = 0.8 (-1/3): w = (1/6)/(1/2) = 1/3,
        // rate = 1/2 + 1/3 (0 - 1/2) = 1/3, threshold = 0.5 + 1/3 (0.8 - 0.5) = 0.6.
        let e = eer(&[0.4, 0.8, 0.9], &[0.3, 0.5]).expect("eer");
        assert!(close(e.rate, 1.0 / 3.0), "{e:?}");
        assert!(close(e.threshold, 0.6), "{e:?}");
    }

    #[test]
    fn eer_of_separated_classes_is_zero() {
        // FAR 1 1/2 0 0 0 at 0.1 0.2 0.8 0.9 inf; FRR 0 0 0 1/2 1: they meet at 0.8 at 0.
        let e = eer(&[0.8, 0.9], &[0.1, 0.2]).expect("eer");
        assert!(close(e.rate, 0.0) && close(e.threshold, 0.8), "{e:?}");
    }

    #[test]
    fn eer_threshold_above_the_top_score_is_finite() {
        // pos [0.9 0.9], neg [0.1 0.9]: thresholds 0.1 0.9 inf; FAR 1 1/2 0; FRR 0 0 1;
        // FAR - FRR 1 1/2 -1: the crossing lies between 0.9 and +inf, which counts as
        // 0.9 + 1e-6: w = (1/2)/(3/2) = 1/3, rate 1/2 - 1/6 = 1/3, threshold 0.9 + 1e-6/3.
        let e = eer(&[0.9, 0.9], &[0.1, 0.9]).expect("eer");
        assert!(close(e.rate, 1.0 / 3.0), "{e:?}");
        assert!((e.threshold - (0.9 + 1e-6 / 3.0)).abs() < 1e-15, "{e:?}");
    }

    #[test]
    fn auc_counts_wins_and_half_ties() {
        // 0.9 and 0.8 beat all three negatives, 0.7 beats two: 8 of 9 pairs.
        assert!(close(
            auc(&[0.9, 0.8, 0.7], &[0.1, 0.2, 0.75]).expect("auc"),
            8.0 / 9.0
        ));
        // pos [1 0.5], neg [0.5 0]: 1>0.5, 1>0, 0.5=0.5 (half), 0.5>0: 3.5 of 4.
        assert!(close(auc(&[1.0, 0.5], &[0.5, 0.0]).expect("auc"), 0.875));
        // Everything tied: 0.5.
        assert!(close(auc(&[0.5, 0.5], &[0.5]).expect("auc"), 0.5));
        // Reversed classes: 0.
        assert!(close(auc(&[0.1], &[0.2, 0.3]).expect("auc"), 0.0));
    }

    #[test]
    fn threshold_at_far_takes_midpoints_and_respects_ties() {
        let neg: Vec<f64> = (1..=10).map(|i| f64::from(i) / 10.0).collect();
        // k = 1 of 10 may pass: between 0.9 and 1.0.
        assert!(close(threshold_at_far(&neg, 0.1).expect("t"), 0.95));
        // k = 0: just above the top negative, nothing passes.
        let t = threshold_at_far(&neg, 0.05).expect("t");
        assert!(t > 1.0 && t < 1.0 + 1e-12, "{t}");
        // Three tied at 0.5: two may not pass without the third, so none does.
        let tied = [0.5, 0.5, 0.5, 0.2];
        let t = threshold_at_far(&tied, 0.5).expect("t");
        assert!(t > 0.5 && t < 0.5 + 1e-12, "{t}");
        // k = 3: between 0.2 and 0.5.
        assert!(close(threshold_at_far(&tied, 0.99).expect("t"), 0.35));
        // 0.29 · 100 is 28.999… in floating point; 29 negatives may still pass.
        let hundred: Vec<f64> = (0..100).map(f64::from).collect();
        let t = threshold_at_far(&hundred, 0.29).expect("t");
        assert!(close(t, 70.5), "{t}");
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        assert_eq!(
            far_frr(&[], &[0.1], 0.0),
            Err(EvaluationError::Empty { what: "positive" })
        );
        assert_eq!(
            eer(&[0.1], &[]),
            Err(EvaluationError::Empty { what: "negative" })
        );
        assert!(matches!(
            auc(&[f64::NAN], &[0.1]),
            Err(EvaluationError::NonFinite { .. })
        ));
        assert_eq!(
            threshold_at_far(&[0.1], 1.0),
            Err(EvaluationError::TargetFar(1.0))
        );
        assert_eq!(
            threshold_at_far(&[0.1], 0.0),
            Err(EvaluationError::TargetFar(0.0))
        );
    }

    /// Scores with ties; expected figures printed by `training/twin_train/metrics.py`
    /// (numpy) for the same lists, so the two implementations cannot drift apart.
    #[test]
    fn figures_match_the_python_implementation() {
        let pos = [
            0.91, 0.85, 0.85, 0.78, 0.72, 0.66, 0.93, 0.59, 0.81, 0.70, 0.44, 0.88,
        ];
        let neg = [
            0.12, 0.55, 0.66, 0.31, 0.72, 0.48, 0.05, 0.60, 0.81, 0.39, 0.27, 0.70, 0.52, 0.18,
        ];
        let f = figures(&pos, &neg).expect("figures");
        assert!((f.eer - PY_EER).abs() < 1e-12, "eer {}", f.eer);
        assert!(
            (f.eer_threshold - PY_EER_THRESHOLD).abs() < 1e-12,
            "eer threshold {}",
            f.eer_threshold
        );
        assert!((f.auc - PY_AUC).abs() < 1e-12, "auc {}", f.auc);
        for (target, want) in PY_THRESHOLDS {
            let t = threshold_at_far(&neg, target).expect("threshold");
            assert!((t - want).abs() < 1e-12, "target {target}: {t} vs {want}");
        }
    }

    // `figures(pos, neg)` and `threshold_for_far(neg, t)` in metrics.py, numpy 2.4.
    const PY_EER: f64 = 0.230_769_230_769_230_78;
    const PY_EER_THRESHOLD: f64 = 0.690_769_230_769_230_7;
    const PY_AUC: f64 = 0.869_047_619_047_619_1;
    const PY_THRESHOLDS: [(f64, f64); 3] = [(0.1, 0.765), (0.25, 0.68), (0.5, 0.5)];

    #[test]
    fn probit_matches_normal_quantiles() {
        assert_eq!(probit(0.5), 0.0);
        for (p, z) in [
            (0.975, 1.959_963_984_540_054),
            (0.025, -1.959_963_984_540_054),
            (0.001, -3.090_232_306_167_813_6),
            (0.2, -0.841_621_233_572_914_3),
            (0.999_999, 4.753_424_308_817_089),
        ] {
            let got = probit(p);
            assert!(
                (got - z).abs() < 1e-8 * z.abs().max(1.0),
                "probit({p}) = {got}, want {z}"
            );
        }
        assert_eq!(probit(0.0), f64::NEG_INFINITY);
        assert_eq!(probit(1.0), f64::INFINITY);
        assert!(probit(1.5).is_nan() && probit(-0.1).is_nan() && probit(f64::NAN).is_nan());
    }

    #[test]
    fn the_best_accuracy_threshold_splits_where_most_pairs_are_right() {
        // Sorted: n0.1 n0.3 p0.5 p0.6 p0.7 n0.8 p0.9: the best cut is between 0.3 and 0.5
        // (6 of 7 right), found at their midpoint.
        let positive = [0.5, 0.6, 0.7, 0.9];
        let negative = [0.1, 0.3, 0.8];
        let t = best_accuracy_threshold(&positive, &negative).expect("scores");
        assert!((t - 0.4).abs() < 1e-12, "{t}");
        let c = classification(&positive, &negative, t).expect("scores");
        assert!((c.accuracy - 6.0 / 7.0).abs() < 1e-12);
        assert!((c.precision - 0.8).abs() < 1e-12 && (c.recall - 1.0).abs() < 1e-12);
        assert!((c.f1 - 1.6 / 1.8).abs() < 1e-12);
        // All negatives above all positives: accepting everything (4 of 7) beats any cut.
        let t = best_accuracy_threshold(&[0.1, 0.2, 0.3, 0.4], &[0.8, 0.9, 1.0]).expect("scores");
        assert_eq!(t, 0.1);
        assert!(best_accuracy_threshold(&[], &[0.5]).is_err());
    }
}
