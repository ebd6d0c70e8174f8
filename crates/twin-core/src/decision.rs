//! Turning a score into a decision: a threshold chosen from the model's calibrated
//! operating points or given explicitly, and the audit trail of how it was made.

use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::metric::Metric;

/// A threshold calibrated on labelled data for a target false-accept rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    /// Display name, e.g. "FAR 1 %".
    pub name: String,
    pub metric: Metric,
    /// Target FAR in (0, 1).
    pub target_far: f64,
    /// Match when `score >= threshold`.
    pub threshold: f64,
    /// FAR measured at `threshold` on the calibration data.
    #[serde(default)]
    pub measured_far: f64,
    /// FRR measured at `threshold` on the calibration data.
    #[serde(default)]
    pub measured_frr: f64,
    /// What the threshold was calibrated on.
    #[serde(default)]
    pub calibrated_on: String,
}

/// The display name for a target FAR: 0.01 → "FAR 1 %", 0.001 → "FAR 0.1 %".
pub fn far_name(target_far: f64) -> String {
    let percent = target_far * 100.0;
    let text = format!("{percent:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("FAR {text} %")
}

/// How the threshold of a decision is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ThresholdChoice {
    /// The model's default operating point.
    Default,
    /// A calibrated operating point at this target FAR.
    TargetFar(f64),
    /// An explicit threshold in score units.
    Explicit(f64),
}

/// The threshold a decision used and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedThreshold {
    pub threshold: f64,
    /// "FAR 1 %" or "explicit".
    pub operating_point: String,
    /// 0 for explicit thresholds.
    pub target_far: f64,
    pub calibrated_on: String,
}

/// Tolerance when matching a requested target FAR against calibrated ones
/// (clients send 0.01 as a double; manifests store 0.01).
const FAR_TOLERANCE: f64 = 1e-9;

/// What a threshold choice asks for, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Wanted {
    /// An explicit threshold, already resolved.
    Explicit(ResolvedThreshold),
    /// A calibrated operating point at this target FAR, in (0, 1).
    TargetFar(f64),
}

/// Checks `choice` on its own (a finite explicit threshold, a target FAR in (0, 1)), so that
/// a bad policy is refused before any work is done for the request.
pub fn wanted(choice: ThresholdChoice, default_far: f64) -> Result<Wanted, CoreError> {
    let target = match choice {
        ThresholdChoice::Explicit(threshold) => {
            if !threshold.is_finite() {
                return Err(CoreError::InvalidArgument(format!(
                    "explicit threshold must be a finite number, got {threshold}"
                )));
            }
            return Ok(Wanted::Explicit(ResolvedThreshold {
                threshold,
                operating_point: "explicit".to_owned(),
                target_far: 0.0,
                calibrated_on: String::new(),
            }));
        }
        ThresholdChoice::TargetFar(far) => far,
        ThresholdChoice::Default => default_far,
    };
    if !(target > 0.0 && target < 1.0) {
        return Err(CoreError::InvalidArgument(format!(
            "target FAR must be in (0, 1), got {target}"
        )));
    }
    Ok(Wanted::TargetFar(target))
}

/// Picks the threshold for `metric` from `points` as `choice` says.
///
/// `default_far` is the model's default operating point's target FAR.
pub fn resolve_threshold(
    points: &[OperatingPoint],
    metric: Metric,
    choice: ThresholdChoice,
    default_far: f64,
) -> Result<ResolvedThreshold, CoreError> {
    let target = match wanted(choice, default_far)? {
        Wanted::Explicit(resolved) => return Ok(resolved),
        Wanted::TargetFar(target) => target,
    };
    points
        .iter()
        .find(|p| p.metric == metric && (p.target_far - target).abs() <= FAR_TOLERANCE)
        .map(|p| ResolvedThreshold {
            threshold: p.threshold,
            operating_point: p.name.clone(),
            target_far: p.target_far,
            calibrated_on: p.calibrated_on.clone(),
        })
        .ok_or_else(|| {
            let available: Vec<String> = points
                .iter()
                .filter(|p| p.metric == metric)
                .map(|p| format!("{} ({})", p.target_far, p.name))
                .collect();
            CoreError::NoOperatingPoint {
                metric: metric.to_string(),
                target_far: target,
                available: if available.is_empty() {
                    "none: pass an explicit threshold".to_owned()
                } else {
                    available.join(", ")
                },
            }
        })
}

/// A match when the score reaches the threshold (scores are higher-is-similar).
pub fn decide(score: f64, threshold: f64) -> bool {
    score >= threshold
}

/// How the probe's scores against a subject's references become one score.
///
/// Written in manifests as `"best"`, `"mean"`, `"adapted"` or `"k_of_n:K"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Aggregation {
    /// The highest score.
    Best,
    /// The mean score.
    Mean,
    /// The k-th highest score (at least k references match), k ≥ 1.
    KOfN(usize),
    /// Writer-adapted: the mean score minus the mean of the references' scores among
    /// themselves. 0 means the probe is as close to the references as they are to each
    /// other; a writer who signs consistently is held to that. A shift, so it keeps the
    /// meaning of every metric's scores. Needs two or more references.
    Adapted,
}

/// Aggregates a probe's reference scores; returns the score and the index (into `scores`)
/// of the reference that decided it (for `Mean` and `Adapted`, the best one).
/// `among_references` holds the references' scores among themselves (each pair once): read
/// only by aggregations that [`Aggregation::needs_scores_among_references`].
pub fn aggregate(
    scores: &[f64],
    among_references: &[f64],
    aggregation: Aggregation,
) -> Result<(f64, usize), CoreError> {
    if scores.is_empty() {
        return Err(CoreError::InvalidArgument(
            "no reference scores to aggregate".to_owned(),
        ));
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    match aggregation {
        Aggregation::Best => Ok((scores[order[0]], order[0])),
        Aggregation::Mean => {
            let mean = scores.iter().sum::<f64>() / scores.len() as f64;
            Ok((mean, order[0]))
        }
        Aggregation::KOfN(k) => {
            if k == 0 || k > scores.len() {
                return Err(CoreError::InvalidArgument(format!(
                    "k-of-n needs 1 <= k <= {} (the subject's reference count), got k = {k}",
                    scores.len()
                )));
            }
            let index = order[k - 1];
            Ok((scores[index], index))
        }
        Aggregation::Adapted => {
            if scores.len() < 2 || among_references.is_empty() {
                return Err(CoreError::InvalidArgument(format!(
                    "the adapted aggregation compares the probe with how the references match \
                     each other, so it needs at least 2 references; the subject has {}",
                    scores.len()
                )));
            }
            let mean = scores.iter().sum::<f64>() / scores.len() as f64;
            let spread = among_references.iter().sum::<f64>() / among_references.len() as f64;
            Ok((mean - spread, order[0]))
        }
    }
}

impl Aggregation {
    /// How a decision over `references` references is described: "best of 5",
    /// "mean of 5", "2 of 5" (at least two references match), "adapted mean of 5".
    pub fn describe(self, references: usize) -> String {
        match self {
            Aggregation::Best => format!("best of {references}"),
            Aggregation::Mean => format!("mean of {references}"),
            Aggregation::KOfN(k) => format!("{k} of {references}"),
            Aggregation::Adapted => format!("adapted mean of {references}"),
        }
    }

    /// Whether [`aggregate`] reads the references' scores among themselves.
    pub fn needs_scores_among_references(self) -> bool {
        matches!(self, Aggregation::Adapted)
    }

    /// The fewest references the aggregation is defined for.
    pub fn min_references(self) -> usize {
        match self {
            Aggregation::Best | Aggregation::Mean => 1,
            Aggregation::KOfN(k) => k.max(1),
            Aggregation::Adapted => 2,
        }
    }
}

/// The scores of every pair of `references` (each pair once), as `score(a, b)` gives them:
/// what [`Aggregation::Adapted`] normalises by. Computed when the decision is made, from the
/// stored vectors: n(n-1)/2 dot products, a few microseconds for the 64 references compared
/// by default, so nothing has to be kept in step with enrolment.
pub fn scores_among<T>(
    references: &[T],
    mut score: impl FnMut(&T, &T) -> Result<f64, CoreError>,
) -> Result<Vec<f64>, CoreError> {
    pairs_among(references.len())
        .map(|(i, j)| score(&references[i], &references[j]))
        .collect()
}

/// The index pairs (i, j), i < j, of `count` references, in the order [`scores_among`]
/// scores them (for scorers that take all pairs in one call).
pub fn pairs_among(count: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..count).flat_map(move |i| (i + 1..count).map(move |j| (i, j)))
}

impl std::fmt::Display for Aggregation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Aggregation::Best => f.write_str("best"),
            Aggregation::Mean => f.write_str("mean"),
            Aggregation::KOfN(k) => write!(f, "k_of_n:{k}"),
            Aggregation::Adapted => f.write_str("adapted"),
        }
    }
}

impl std::str::FromStr for Aggregation {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "best" => Ok(Aggregation::Best),
            "mean" => Ok(Aggregation::Mean),
            "adapted" => Ok(Aggregation::Adapted),
            other => other
                .strip_prefix("k_of_n:")
                .and_then(|k| k.parse::<usize>().ok())
                .filter(|&k| k >= 1)
                .map(Aggregation::KOfN)
                .ok_or_else(|| {
                    format!(
                        "aggregation {other:?}: expected best, mean, adapted or k_of_n:K with K >= 1"
                    )
                }),
        }
    }
}

impl TryFrom<String> for Aggregation {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<Aggregation> for String {
    fn from(aggregation: Aggregation) -> Self {
        aggregation.to_string()
    }
}

/// A threshold for probe-vs-subject decisions, calibrated by simulating enrolment: for
/// `references` references per subject and one aggregation, the aggregated scores of every
/// other genuine sample and every skilled forgery (see
/// [`crate::evaluation::enrolment`]). Aggregating more scores moves the score distributions
/// (best of 5 is higher than one pair's score), so a pairwise threshold would not keep its
/// FAR; each aggregation and reference count gets its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubjectOperatingPoint {
    /// Display name, e.g. "FAR 1 %, best of 5".
    pub name: String,
    pub metric: Metric,
    pub aggregation: Aggregation,
    /// References compared per decision.
    pub references: u32,
    /// Target FAR in (0, 1).
    pub target_far: f64,
    /// Match when the aggregated score `>= threshold`.
    pub threshold: f64,
    /// FAR measured at `threshold` on the calibration negatives: skilled forgeries, or
    /// other subjects' genuine samples for data without forgeries (`calibrated_on` says).
    #[serde(default)]
    pub measured_far: f64,
    /// FRR measured at `threshold` on the calibration data.
    #[serde(default)]
    pub measured_frr: f64,
    /// Random-forgery FAR (other subjects' genuine samples) measured at `threshold`.
    #[serde(default)]
    pub measured_far_random: f64,
    /// What the threshold was calibrated on.
    #[serde(default)]
    pub calibrated_on: String,
}

/// The display name of a subject-level operating point: "FAR 1 %, best of 5".
pub fn subject_point_name(target_far: f64, aggregation: Aggregation, references: usize) -> String {
    format!(
        "{}, {}",
        far_name(target_far),
        aggregation.describe(references)
    )
}

/// A probe-vs-subject threshold and how many of the subject's references it was
/// calibrated for.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectThreshold {
    pub resolved: ResolvedThreshold,
    /// Compare this many references (the most recent ones): the calibrated count, so that
    /// the decision runs exactly where it was calibrated; for an explicit threshold, all
    /// `available`.
    pub references: usize,
}

/// Picks the threshold of a probe-vs-subject decision over `available` references.
///
/// A calibrated choice takes the point of `metric` and `aggregation` at the target FAR with
/// the largest reference count not above `available`, and the decision then compares that
/// many references. There is no fallback to the pairwise points: where no point fits, the
/// error says what is calibrated.
pub fn resolve_subject_threshold(
    points: &[SubjectOperatingPoint],
    metric: Metric,
    aggregation: Aggregation,
    available: usize,
    choice: ThresholdChoice,
    default_far: f64,
) -> Result<SubjectThreshold, CoreError> {
    let target = match wanted(choice, default_far)? {
        Wanted::Explicit(resolved) => {
            return Ok(SubjectThreshold {
                resolved,
                references: available,
            })
        }
        Wanted::TargetFar(target) => target,
    };
    let same_kind = |p: &&SubjectOperatingPoint| p.metric == metric && p.aggregation == aggregation;
    let chosen = points
        .iter()
        .filter(same_kind)
        .filter(|p| (p.target_far - target).abs() <= FAR_TOLERANCE)
        .filter(|p| p.references >= 1 && p.references as usize <= available)
        .max_by_key(|p| p.references);
    match chosen {
        Some(p) => Ok(SubjectThreshold {
            resolved: ResolvedThreshold {
                threshold: p.threshold,
                operating_point: p.name.clone(),
                target_far: p.target_far,
                calibrated_on: p.calibrated_on.clone(),
            },
            references: p.references as usize,
        }),
        None => {
            let available_points: Vec<String> = points
                .iter()
                .filter(same_kind)
                .map(|p| p.name.clone())
                .collect();
            Err(CoreError::NoSubjectOperatingPoint {
                wanted: format!(
                    "{}, {} with {metric}",
                    far_name(target),
                    aggregation.describe(available)
                ),
                available: if available_points.is_empty() {
                    format!(
                        "none for {metric} and aggregation {aggregation}: pass an explicit \
                         threshold, or calibrate the model with `twin calibrate --references`"
                    )
                } else {
                    format!(
                        "{} (a point needs no more references than the subject has)",
                        available_points.join(", ")
                    )
                },
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(
        aggregation: Aggregation,
        references: u32,
        far: f64,
        threshold: f64,
    ) -> SubjectOperatingPoint {
        SubjectOperatingPoint {
            name: subject_point_name(far, aggregation, references as usize),
            metric: Metric::Cosine,
            aggregation,
            references,
            target_far: far,
            threshold,
            measured_far: far,
            measured_frr: 0.1,
            measured_far_random: 0.0,
            calibrated_on: "hand".to_owned(),
        }
    }

    fn points() -> Vec<SubjectOperatingPoint> {
        vec![
            point(Aggregation::Best, 1, 0.01, 0.90),
            point(Aggregation::Best, 3, 0.01, 0.93),
            point(Aggregation::Best, 5, 0.01, 0.95),
            point(Aggregation::Mean, 5, 0.01, 0.85),
            point(Aggregation::Best, 5, 0.1, 0.91),
        ]
    }

    #[test]
    fn the_largest_calibrated_count_not_above_the_subjects_is_used() {
        let resolve = |aggregation, available, choice| {
            resolve_subject_threshold(
                &points(),
                Metric::Cosine,
                aggregation,
                available,
                choice,
                0.01,
            )
        };
        let four = resolve(Aggregation::Best, 4, ThresholdChoice::Default).expect("best of 3");
        assert_eq!(four.references, 3);
        assert_eq!(four.resolved.threshold, 0.93);
        assert_eq!(four.resolved.operating_point, "FAR 1 %, best of 3");
        let many = resolve(Aggregation::Best, 40, ThresholdChoice::Default).expect("best of 5");
        assert_eq!((many.references, many.resolved.threshold), (5, 0.95));
        let one = resolve(Aggregation::Best, 1, ThresholdChoice::Default).expect("best of 1");
        assert_eq!((one.references, one.resolved.threshold), (1, 0.90));
        let loose = resolve(Aggregation::Best, 7, ThresholdChoice::TargetFar(0.1)).expect("10 %");
        assert_eq!(loose.resolved.operating_point, "FAR 10 %, best of 5");
        let mean = resolve(Aggregation::Mean, 6, ThresholdChoice::Default).expect("mean of 5");
        assert_eq!(mean.resolved.operating_point, "FAR 1 %, mean of 5");
        let explicit =
            resolve(Aggregation::Mean, 2, ThresholdChoice::Explicit(0.5)).expect("explicit");
        assert_eq!(
            (
                explicit.references,
                explicit.resolved.operating_point.as_str()
            ),
            (2, "explicit")
        );
    }

    #[test]
    fn no_fitting_point_is_an_error_that_says_what_is_calibrated() {
        let resolve = |aggregation, available, choice| {
            resolve_subject_threshold(
                &points(),
                Metric::Cosine,
                aggregation,
                available,
                choice,
                0.01,
            )
        };
        // Mean is calibrated for 5 references only.
        let few = resolve(Aggregation::Mean, 4, ThresholdChoice::Default).expect_err("too few");
        let text = few.to_string();
        assert!(text.contains("FAR 1 %, mean of 4"), "{text}");
        assert!(text.contains("FAR 1 %, mean of 5"), "{text}");
        // Never the pairwise threshold, never another aggregation's.
        let k = resolve(Aggregation::KOfN(2), 5, ThresholdChoice::Default).expect_err("k of n");
        assert!(
            k.to_string()
                .contains("none for cosine and aggregation k_of_n:2"),
            "{k}"
        );
        let far =
            resolve(Aggregation::Best, 5, ThresholdChoice::TargetFar(0.001)).expect_err("0.1 %");
        assert!(
            matches!(far, CoreError::NoSubjectOperatingPoint { .. }),
            "{far}"
        );
        let other_metric = resolve_subject_threshold(
            &points(),
            Metric::L2,
            Aggregation::Best,
            5,
            ThresholdChoice::Default,
            0.01,
        );
        assert!(other_metric.is_err());
        assert!(resolve(Aggregation::Best, 5, ThresholdChoice::TargetFar(1.5)).is_err());
        assert!(resolve(Aggregation::Best, 5, ThresholdChoice::Explicit(f64::NAN)).is_err());
    }

    #[test]
    fn aggregations_read_and_write_their_manifest_form() {
        for (text, aggregation) in [
            ("best", Aggregation::Best),
            ("mean", Aggregation::Mean),
            ("k_of_n:2", Aggregation::KOfN(2)),
            ("adapted", Aggregation::Adapted),
        ] {
            assert_eq!(text.parse::<Aggregation>(), Ok(aggregation));
            assert_eq!(aggregation.to_string(), text);
        }
        for bad in ["", "max", "k_of_n:0", "k_of_n:", "k_of_n:x"] {
            assert!(bad.parse::<Aggregation>().is_err(), "{bad}");
        }
        assert_eq!(Aggregation::KOfN(2).describe(5), "2 of 5");
        assert_eq!(Aggregation::Adapted.describe(5), "adapted mean of 5");
    }

    #[test]
    fn adapted_is_the_mean_minus_the_references_own_mean_by_hand() {
        // References scoring 0.9, 0.8 and 0.7 among themselves (mean 0.8); probe scores
        // 0.6, 0.7, 0.8 (mean 0.7): 0.1 below how the references match each other.
        let (score, decider) =
            aggregate(&[0.6, 0.7, 0.8], &[0.9, 0.8, 0.7], Aggregation::Adapted).expect("adapted");
        assert!((score - (-0.1)).abs() < 1e-12, "{score}");
        assert_eq!(decider, 2);
        let one = aggregate(&[0.6], &[], Aggregation::Adapted).expect_err("one reference");
        assert!(one.to_string().contains("at least 2 references"), "{one}");
        // The pairs among three references, each once, in order.
        let among = scores_among(&[1.0, 2.0, 4.0], |a, b| Ok(a * b)).expect("scores");
        assert_eq!(among, vec![2.0, 4.0, 8.0]);
        assert_eq!(Aggregation::Adapted.min_references(), 2);
    }
}
