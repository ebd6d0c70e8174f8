//! The store's error type. Each variant says what a caller can do about it, so the
//! gateway maps them to gRPC codes in one place and the worker knows what to retry.

/// What went wrong in a store call.
///
/// | variant           | gRPC code (gateway)   | retry?                         |
/// |-------------------|-----------------------|--------------------------------|
/// | `NotFound`        | `NOT_FOUND`           | no                             |
/// | `InvalidArgument` | `INVALID_ARGUMENT`    | no: the request is wrong       |
/// | `Unavailable`     | `UNAVAILABLE`         | yes, with backoff              |
/// | `Conflict`        | `FAILED_PRECONDITION` | no: state must change first    |
/// | `Locked`          | `UNAVAILABLE`         | no: another process owns data  |
/// | `Internal`        | `INTERNAL`            | no                             |
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A collection, alias or point that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A request the store cannot take as it is (wrong vector size, bad name, …).
    #[error("{0}")]
    InvalidArgument(String),
    /// The store is (for now) out of reach: server down, timeout, overload. Transient.
    #[error("{0}")]
    Unavailable(String),
    /// The request clashes with what is stored (a collection with another size or
    /// metric, an alias named like a collection).
    #[error("{0}")]
    Conflict(String),
    /// The embedded store's directory is held by another process.
    #[error("{0}")]
    Locked(String),
    /// Anything else: a bug, corrupt data, a disk error.
    #[error("{0}")]
    Internal(String),
}

impl StoreError {
    /// True for errors worth retrying with backoff.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// A short stable name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::NotFound(_) => "not_found",
            StoreError::InvalidArgument(_) => "invalid_argument",
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Conflict(_) => "conflict",
            StoreError::Locked(_) => "locked",
            StoreError::Internal(_) => "internal",
        }
    }
}
