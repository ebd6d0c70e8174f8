//! Metrics between embeddings, all under ONE convention: a higher score means more
//! similar. Distances are reported negated (`score = -distance`) so that a single
//! comparison, `score >= threshold`, decides a match whatever the metric.

use serde::{Deserialize, Serialize};

use crate::error::CoreError;

/// A way to compare two embeddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Euclidean distance; score = -‖x − y‖₂.
    L2,
    /// Squared Euclidean distance; score = -‖x − y‖₂².
    SquaredL2,
    /// Manhattan distance; score = -‖x − y‖₁.
    L1,
    /// Dot product; score = x · y.
    Dot,
    /// Cosine similarity; score = x · y / (‖x‖ ‖y‖), 0 when either vector is zero.
    Cosine,
    /// Radial basis function; score = exp(−‖x − y‖² / σ²).
    Rbf,
    /// The model's learned similarity head (the manifest's `[joint]` graph): a score in
    /// (0, 1). Not a function of the two vectors alone, so [`score`] refuses it; the
    /// embedder that owns the head scores it.
    Learned,
}

impl Metric {
    /// Every metric, in a stable order (for listings and tests).
    pub const ALL: [Metric; 7] = [
        Metric::L2,
        Metric::SquaredL2,
        Metric::L1,
        Metric::Dot,
        Metric::Cosine,
        Metric::Rbf,
        Metric::Learned,
    ];

    /// The metrics [`score`] computes from two vectors (all but `Learned`).
    pub const OF_VECTORS: [Metric; 6] = [
        Metric::L2,
        Metric::SquaredL2,
        Metric::L1,
        Metric::Dot,
        Metric::Cosine,
        Metric::Rbf,
    ];

    /// The stable lowercase name used in manifests, config and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::L2 => "l2",
            Metric::SquaredL2 => "squared_l2",
            Metric::L1 => "l1",
            Metric::Dot => "dot",
            Metric::Cosine => "cosine",
            Metric::Rbf => "rbf",
            Metric::Learned => "learned",
        }
    }

    /// True for metrics that are distances reported negated.
    pub fn is_distance(self) -> bool {
        matches!(self, Metric::L2 | Metric::SquaredL2 | Metric::L1)
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Metric {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Metric::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| CoreError::UnknownMetric(s.to_owned()))
    }
}

/// Default σ for [`Metric::Rbf`] when a request gives none.
pub const DEFAULT_RBF_SIGMA: f64 = 1.0;

/// Euclidean distance ‖x − y‖₂.
pub fn l2_distance(x: &[f32], y: &[f32]) -> f64 {
    squared_l2_distance(x, y).sqrt()
}

/// Squared Euclidean distance ‖x − y‖₂².
pub fn squared_l2_distance(x: &[f32], y: &[f32]) -> f64 {
    x.iter()
        .zip(y)
        .map(|(a, b)| {
            let d = f64::from(*a) - f64::from(*b);
            d * d
        })
        .sum()
}

/// Manhattan distance ‖x − y‖₁.
pub fn l1_distance(x: &[f32], y: &[f32]) -> f64 {
    x.iter()
        .zip(y)
        .map(|(a, b)| (f64::from(*a) - f64::from(*b)).abs())
        .sum()
}

/// Dot product x · y.
pub fn dot(x: &[f32], y: &[f32]) -> f64 {
    x.iter()
        .zip(y)
        .map(|(a, b)| f64::from(*a) * f64::from(*b))
        .sum()
}

/// Euclidean norm ‖x‖₂.
pub fn norm(x: &[f32]) -> f64 {
    dot(x, x).sqrt()
}

/// Cosine similarity; 0 when either vector has zero norm (no direction to compare).
pub fn cosine(x: &[f32], y: &[f32]) -> f64 {
    let denominator = norm(x) * norm(y);
    if denominator == 0.0 {
        0.0
    } else {
        dot(x, y) / denominator
    }
}

/// RBF kernel exp(−‖x − y‖² / σ²).
pub fn rbf(x: &[f32], y: &[f32], sigma: f64) -> f64 {
    // (‖x − y‖ / σ)², not ‖x − y‖² / σ²: σ² underflows to 0 for a tiny σ, and 0 / 0 would
    // make an image's score against itself NaN (found by the gateway's fuzz test).
    let ratio = l2_distance(x, y) / sigma;
    (-(ratio * ratio)).exp()
}

/// Scales `x` to unit L2 norm in place; a zero vector is left as it is.
pub fn l2_normalize(x: &mut [f32]) {
    let n = norm(x);
    if n > 0.0 {
        for v in x.iter_mut() {
            *v = (f64::from(*v) / n) as f32;
        }
    }
}

/// The score of `x` against `y` under `metric` (higher = more similar).
///
/// ```
/// use twin_core::metric::{score, Metric};
/// let a = [1.0, 0.0];
/// let b = [0.0, 1.0];
/// assert!((score(Metric::L2, &a, &b, 1.0).unwrap() + 2f64.sqrt()).abs() < 1e-12);
/// assert_eq!(score(Metric::Dot, &a, &b, 1.0).unwrap(), 0.0);
/// ```
pub fn score(metric: Metric, x: &[f32], y: &[f32], rbf_sigma: f64) -> Result<f64, CoreError> {
    if x.len() != y.len() {
        return Err(CoreError::DimensionMismatch {
            expected: x.len(),
            actual: y.len(),
        });
    }
    if metric == Metric::Rbf && !(rbf_sigma.is_finite() && rbf_sigma > 0.0) {
        return Err(CoreError::InvalidArgument(format!(
            "rbf sigma must be a finite number > 0, got {rbf_sigma}"
        )));
    }
    Ok(match metric {
        Metric::Learned => {
            return Err(CoreError::InvalidArgument(
                "the learned metric is the model's joint head, scored by the model that \
                 declares it, not from two vectors alone"
                    .to_owned(),
            ))
        }
        Metric::L2 => -l2_distance(x, y),
        Metric::SquaredL2 => -squared_l2_distance(x, y),
        Metric::L1 => -l1_distance(x, y),
        Metric::Dot => dot(x, y),
        Metric::Cosine => cosine(x, y),
        Metric::Rbf => rbf(x, y, rbf_sigma),
    })
}
