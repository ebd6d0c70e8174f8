//! Subject-level scores by simulated enrolment, as `VerifySubject` would produce them.
//!
//! For each subject with more genuine samples than `references`, `draws` times: draw
//! `references` of its genuine samples as the enrolled references (uniformly, seeded); then
//! aggregate each probe's scores against them, for
//!
//! - genuine probes: the subject's other genuine samples;
//! - skilled probes: the subject's forgeries;
//! - random probes: other subjects' genuine samples (at most `random_probes` per draw,
//!   a seeded uniform sample; all of them when 0).
//!
//! Several draws per subject use more of the data than one enrolment could (each probe is
//! judged against several reference sets), which steadies thresholds on a few writers.

use crate::decision::{aggregate, scores_among, Aggregation};
use crate::error::CoreError;
use crate::evaluation::pairs::{by_subject, sample_indices, SampleKind};

/// How enrolment is simulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enrolment {
    /// References enrolled per subject (≥ 1).
    pub references: usize,
    /// Reference sets drawn per subject (≥ 1).
    pub draws: usize,
    /// Random probes kept per draw; 0 keeps them all.
    pub random_probes: usize,
    pub seed: u64,
}

/// Aggregated probe scores, by kind of probe.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubjectScores {
    pub genuine: Vec<f64>,
    pub skilled: Vec<f64>,
    pub random: Vec<f64>,
    /// Subjects enrolled (those with more genuine samples than `references`).
    pub subjects: usize,
    /// Subjects left out for having too few genuine samples.
    pub too_few: usize,
}

/// Why enrolment cannot be simulated.
#[derive(Debug, thiserror::Error)]
pub enum EnrolmentError {
    #[error("enrolment needs at least one reference and one draw, got {references} and {draws}")]
    Plan { references: usize, draws: usize },
    #[error("scoring failed: {0}")]
    Score(#[from] CoreError),
}

/// Simulates enrolment over `samples` (subject, kind) with `score(a, b)` the score of
/// sample `a` against sample `b` (higher = more similar), aggregating as `aggregation` says.
pub fn simulate<S: AsRef<str>>(
    samples: &[(S, SampleKind)],
    score: impl Fn(usize, usize) -> Result<f64, CoreError>,
    aggregation: Aggregation,
    plan: Enrolment,
) -> Result<SubjectScores, EnrolmentError> {
    if plan.references == 0 || plan.draws == 0 {
        return Err(EnrolmentError::Plan {
            references: plan.references,
            draws: plan.draws,
        });
    }
    let (genuine, forged) = by_subject(samples);
    let mut out = SubjectScores::default();
    let mut scores = Vec::with_capacity(plan.references);
    let mut aggregated =
        |probe: usize, references: &[usize], among: &[f64]| -> Result<f64, EnrolmentError> {
            scores.clear();
            for &reference in references {
                scores.push(score(probe, reference)?);
            }
            Ok(aggregate(&scores, among, aggregation)?.0)
        };
    for (position, (subject, own)) in genuine.iter().enumerate() {
        if own.len() <= plan.references {
            out.too_few += 1;
            continue;
        }
        out.subjects += 1;
        let others: Vec<usize> = genuine
            .iter()
            .filter(|(other, _)| *other != subject)
            .flat_map(|(_, g)| g.iter().copied())
            .collect();
        for draw in 0..plan.draws {
            // One seed per (subject, draw): a subject's draws do not depend on the others.
            let seed = plan
                .seed
                .wrapping_add((position as u64).wrapping_mul(0x1_0000_0001))
                .wrapping_add(draw as u64);
            let mut chosen: Vec<usize> = sample_indices(own.len() as u64, plan.references, seed)
                .into_iter()
                .map(|i| i as usize)
                .collect();
            chosen.sort_unstable();
            let references: Vec<usize> = chosen.iter().map(|&i| own[i]).collect();
            let among = if aggregation.needs_scores_among_references() {
                scores_among(&references, |&a, &b| score(a, b))?
            } else {
                Vec::new()
            };
            for (i, &probe) in own.iter().enumerate() {
                if chosen.binary_search(&i).is_err() {
                    out.genuine.push(aggregated(probe, &references, &among)?);
                }
            }
            for &probe in forged.get(subject).map(Vec::as_slice).unwrap_or_default() {
                out.skilled.push(aggregated(probe, &references, &among)?);
            }
            if plan.random_probes == 0 || plan.random_probes >= others.len() {
                for &probe in &others {
                    out.random.push(aggregated(probe, &references, &among)?);
                }
            } else {
                let mut kept = sample_indices(others.len() as u64, plan.random_probes, !seed);
                kept.sort_unstable();
                for i in kept {
                    out.random
                        .push(aggregated(others[i as usize], &references, &among)?);
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use SampleKind::{Forged, Genuine};

    /// Samples on a line: the score of a against b is -|x_a - x_b|.
    fn line() -> (Vec<(&'static str, SampleKind)>, Vec<f64>) {
        let samples = vec![
            ("a", Genuine), // 0: x = 0
            ("a", Genuine), // 1: x = 1
            ("a", Forged),  // 2: x = 5
            ("b", Genuine), // 3: x = 10
            ("b", Genuine), // 4: x = 12
            ("b", Forged),  // 5: x = 7
        ];
        (samples, vec![0.0, 1.0, 5.0, 10.0, 12.0, 7.0])
    }

    fn scorer(x: &[f64]) -> impl Fn(usize, usize) -> Result<f64, CoreError> + '_ {
        move |a, b| Ok(-(x[a] - x[b]).abs())
    }

    #[test]
    fn one_reference_scores_every_probe_kind_by_hand() {
        let (samples, x) = line();
        let plan = Enrolment {
            references: 1,
            draws: 1,
            random_probes: 0,
            seed: 3,
        };
        let s = simulate(&samples, scorer(&x), Aggregation::Best, plan).expect("simulates");
        assert_eq!((s.subjects, s.too_few), (2, 0));
        // Whichever genuine sample is the reference, the other is 1 (a) or 2 (b) away.
        assert_eq!(s.genuine, vec![-1.0, -2.0]);
        // a's forgery at 5 is 5 or 4 from a's reference; b's at 7 is 3 or 5 from b's.
        assert!(
            s.skilled[0] == -5.0 || s.skilled[0] == -4.0,
            "{:?}",
            s.skilled
        );
        assert!(
            s.skilled[1] == -3.0 || s.skilled[1] == -5.0,
            "{:?}",
            s.skilled
        );
        // Random probes: the other subject's two genuine samples.
        assert_eq!(s.random.len(), 4);
    }

    #[test]
    fn best_and_mean_aggregate_over_the_drawn_references() {
        // One subject, three genuine at 0, 2, 3 and a forgery at 4; two references leave one
        // genuine probe. Every draw of two from three is one of three sets.
        let samples = vec![
            ("a", Genuine),
            ("a", Genuine),
            ("a", Genuine),
            ("a", Forged),
            ("z", Genuine),
        ];
        let x = [0.0, 2.0, 3.0, 4.0, 100.0];
        let plan = Enrolment {
            references: 2,
            draws: 30,
            random_probes: 0,
            seed: 11,
        };
        let best = simulate(&samples, scorer(&x), Aggregation::Best, plan).expect("best");
        let mean = simulate(&samples, scorer(&x), Aggregation::Mean, plan).expect("mean");
        // z has one genuine sample: too few for two references.
        assert_eq!((best.subjects, best.too_few), (1, 1));
        assert_eq!(best.genuine.len(), 30);
        // References at x 2, 3 → probe 0: best -2, mean -2.5; forgery: best -1, mean -1.5.
        // References at x 0, 3 → probe 2: best -1, mean -1.5; forgery: best -1, mean -2.5.
        // References at x 0, 2 → probe 3: best -1, mean -2;   forgery: best -2, mean -3.
        for (g, s) in best.genuine.iter().zip(&best.skilled) {
            assert!(
                [(-2.0, -1.0), (-1.0, -1.0), (-1.0, -2.0)].contains(&(*g, *s)),
                "best {g} {s}"
            );
        }
        for (g, s) in mean.genuine.iter().zip(&mean.skilled) {
            assert!(
                [(-2.5, -1.5), (-1.5, -2.5), (-2.0, -3.0)].contains(&(*g, *s)),
                "mean {g} {s}"
            );
        }
        // Adapted: the mean minus the references' own score (-1, -3 and -2 for the three
        // sets above).
        let adapted = simulate(&samples, scorer(&x), Aggregation::Adapted, plan).expect("adapted");
        for (g, s) in adapted.genuine.iter().zip(&adapted.skilled) {
            assert!(
                [(-1.5, -0.5), (1.5, 0.5), (0.0, -1.0)].contains(&(*g, *s)),
                "adapted {g} {s}"
            );
        }
        // Thirty seeded draws meet all three reference sets.
        let distinct: std::collections::BTreeSet<i64> =
            best.skilled.iter().map(|s| (*s * 10.0) as i64).collect();
        assert_eq!(distinct.len(), 2, "{:?}", best.skilled);
        let distinct: std::collections::BTreeSet<i64> =
            mean.genuine.iter().map(|s| (*s * 10.0) as i64).collect();
        assert_eq!(distinct.len(), 3, "{:?}", mean.genuine);
        // The same seed gives the same draws.
        let again = simulate(&samples, scorer(&x), Aggregation::Best, plan).expect("again");
        assert_eq!(again, best);
    }

    #[test]
    fn random_probes_are_capped_per_draw() {
        let subjects: Vec<String> = (0..10).map(|s| format!("s{s}")).collect();
        let samples: Vec<(&str, SampleKind)> = subjects
            .iter()
            .flat_map(|s| std::iter::repeat_n((s.as_str(), Genuine), 4))
            .collect();
        let x: Vec<f64> = (0..samples.len()).map(|i| i as f64).collect();
        let plan = Enrolment {
            references: 3,
            draws: 2,
            random_probes: 5,
            seed: 1,
        };
        let s = simulate(&samples, scorer(&x), Aggregation::Best, plan).expect("simulates");
        assert_eq!(s.subjects, 10);
        assert_eq!(s.genuine.len(), 10 * 2);
        assert_eq!(s.random.len(), 10 * 2 * 5);
        let all = Enrolment {
            random_probes: 0,
            ..plan
        };
        let s = simulate(&samples, scorer(&x), Aggregation::Best, all).expect("simulates");
        assert_eq!(s.random.len(), 10 * 2 * 36);
    }

    #[test]
    fn k_of_n_beyond_the_references_and_empty_plans_are_errors() {
        let (samples, x) = line();
        let plan = Enrolment {
            references: 1,
            draws: 1,
            random_probes: 0,
            seed: 0,
        };
        assert!(simulate(&samples, scorer(&x), Aggregation::KOfN(2), plan).is_err());
        let none = Enrolment {
            references: 0,
            ..plan
        };
        assert!(matches!(
            simulate(&samples, scorer(&x), Aggregation::Best, none),
            Err(EnrolmentError::Plan { .. })
        ));
    }
}
