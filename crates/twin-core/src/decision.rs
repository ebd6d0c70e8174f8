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

/// Picks the threshold for `metric` from `points` as `choice` says.
///
/// `default_far` is the model's default operating point's target FAR.
pub fn resolve_threshold(
    points: &[OperatingPoint],
    metric: Metric,
    choice: ThresholdChoice,
    default_far: f64,
) -> Result<ResolvedThreshold, CoreError> {
    let target = match choice {
        ThresholdChoice::Explicit(threshold) => {
            if !threshold.is_finite() {
                return Err(CoreError::InvalidArgument(format!(
                    "explicit threshold must be a finite number, got {threshold}"
                )));
            }
            return Ok(ResolvedThreshold {
                threshold,
                operating_point: "explicit".to_owned(),
                target_far: 0.0,
                calibrated_on: String::new(),
            });
        }
        ThresholdChoice::TargetFar(far) => far,
        ThresholdChoice::Default => default_far,
    };
    if !(target > 0.0 && target < 1.0) {
        return Err(CoreError::InvalidArgument(format!(
            "target FAR must be in (0, 1), got {target}"
        )));
    }
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
                metric,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    /// The highest score.
    Best,
    /// The mean score.
    Mean,
    /// The k-th highest score (at least k references match), k ≥ 1.
    KOfN(usize),
}

/// Aggregates reference scores; returns the score and the index (into `scores`) of the
/// reference that decided it (for `Mean`, the best one).
pub fn aggregate(scores: &[f64], aggregation: Aggregation) -> Result<(f64, usize), CoreError> {
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
    }
}
