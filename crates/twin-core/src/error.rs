//! The domain's error type. Messages are lowercase, say what was wrong and, where it
//! helps, what to do.

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("unknown metric {0:?}: expected one of l2, squared_l2, l1, dot, cosine, rbf, learned")]
    UnknownMetric(String),
    #[error("vector has {actual} dimensions, expected {expected}")]
    DimensionMismatch { expected: usize, actual: usize },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error(
        "no operating point for metric {metric} at target FAR {target_far}; available: {available}"
    )]
    NoOperatingPoint {
        /// The metric's name (`Metric`'s display form).
        metric: String,
        target_far: f64,
        available: String,
    },
    #[error("no subject-level operating point for {wanted}; calibrated: {available}")]
    NoSubjectOperatingPoint { wanted: String, available: String },
    #[error("invalid subject id: {0}")]
    InvalidSubject(String),
}
