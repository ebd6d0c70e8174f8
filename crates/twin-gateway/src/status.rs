//! The one place where errors become gRPC statuses. Every service returns
//! [`ApiError`]; its conversion to [`tonic::Status`] picks the code clients act on.

use tonic::{Code, Status};
use twin_core::preprocess::PreprocessError;
use twin_core::CoreError;
use twin_embed::EmbedError;
use twin_queue::QueueError;
use twin_store::StoreError;

use crate::auth::AuthError;

/// Whatever a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    /// A bad sample (image or text); `which` names the request field ("a", "probe",
    /// "image", "item 3").
    #[error("{which}: {source}")]
    BadInput {
        which: String,
        #[source]
        source: PreprocessError,
    },
    #[error("{0}")]
    DeadlineExceeded(String),
    /// The key may not do this (another tenant's audit trail).
    #[error("{0}")]
    PermissionDenied(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The gateway is not set up for the request (a feature switched off).
    #[error("{0}")]
    FailedPrecondition(String),
    /// Not the client's fault.
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl ApiError {
    /// An embedding error for the image in field `which`: bad images say which one.
    pub fn embedding(which: &str, error: EmbedError) -> Self {
        match error {
            EmbedError::Preprocess(source) => ApiError::BadInput {
                which: which.to_owned(),
                source,
            },
            other => ApiError::Embed(other),
        }
    }

    pub fn code(&self) -> Code {
        match self {
            ApiError::InvalidArgument(_) | ApiError::BadInput { .. } => Code::InvalidArgument,
            ApiError::NotFound(_) => Code::NotFound,
            ApiError::DeadlineExceeded(_) => Code::DeadlineExceeded,
            ApiError::PermissionDenied(_) | ApiError::Auth(AuthError::Scope { .. }) => {
                Code::PermissionDenied
            }
            ApiError::Auth(AuthError::Missing | AuthError::Invalid) => Code::Unauthenticated,
            ApiError::Auth(AuthError::Request(_)) => Code::InvalidArgument,
            ApiError::Auth(AuthError::UnknownKey(_)) => Code::NotFound,
            ApiError::Auth(AuthError::NoKeysFile) => Code::FailedPrecondition,
            ApiError::Auth(AuthError::File { .. }) => Code::Internal,
            ApiError::FailedPrecondition(_) => Code::FailedPrecondition,
            ApiError::Internal(_) => Code::Internal,
            ApiError::Core(CoreError::UnknownMetric(_))
            | ApiError::Core(CoreError::DimensionMismatch { .. })
            | ApiError::Core(CoreError::InvalidArgument(_))
            | ApiError::Core(CoreError::NoOperatingPoint { .. })
            | ApiError::Core(CoreError::NoSubjectOperatingPoint { .. })
            | ApiError::Core(CoreError::InvalidSubject(_)) => Code::InvalidArgument,
            ApiError::Embed(EmbedError::Preprocess(_) | EmbedError::InvalidInput(_)) => {
                Code::InvalidArgument
            }
            ApiError::Embed(EmbedError::Closed) => Code::Unavailable,
            ApiError::Embed(_) => Code::Internal,
            ApiError::Store(StoreError::NotFound(_)) => Code::NotFound,
            ApiError::Store(StoreError::InvalidArgument(_)) => Code::InvalidArgument,
            ApiError::Store(StoreError::Unavailable(_) | StoreError::Locked(_)) => {
                Code::Unavailable
            }
            ApiError::Store(StoreError::Conflict(_)) => Code::FailedPrecondition,
            ApiError::Store(StoreError::Internal(_)) => Code::Internal,
            ApiError::Queue(QueueError::TooLarge { .. } | QueueError::Decode(_)) => {
                Code::InvalidArgument
            }
            ApiError::Queue(QueueError::Full { .. }) => Code::ResourceExhausted,
            ApiError::Queue(e) if e.is_retryable() => Code::Unavailable,
            ApiError::Queue(QueueError::Closed) => Code::Unavailable,
            ApiError::Queue(_) => Code::Internal,
        }
    }
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        let code = error.code();
        let message = error.to_string();
        if matches!(code, Code::Internal | Code::Unavailable) {
            tracing::error!(code = ?code, error = %message, "request failed");
        } else {
            tracing::info!(code = ?code, error = %message, "request refused");
        }
        Status::new(code, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_what_the_client_can_do() {
        let bad = ApiError::embedding("a", EmbedError::Preprocess(PreprocessError::Empty));
        assert_eq!(bad.code(), Code::InvalidArgument);
        assert!(bad.to_string().starts_with("a: image is empty"), "{bad}");
        assert_eq!(
            ApiError::Store(StoreError::Unavailable("down".into())).code(),
            Code::Unavailable
        );
        assert_eq!(
            ApiError::Queue(QueueError::Unavailable("down".into())).code(),
            Code::Unavailable
        );
        assert_eq!(
            ApiError::Queue(QueueError::Full { capacity: 1 }).code(),
            Code::ResourceExhausted
        );
        assert_eq!(
            ApiError::Store(StoreError::NotFound("x".into())).code(),
            Code::NotFound
        );
        assert_eq!(
            ApiError::Core(CoreError::InvalidSubject("empty".into())).code(),
            Code::InvalidArgument
        );
    }
}
