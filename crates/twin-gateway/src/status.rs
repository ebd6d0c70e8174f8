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

/// Every gRPC code with its canonical name and the HTTP status the REST edge answers
/// with (Google's API mapping), in one table read both ways.
const HTTP_STATUSES: [(Code, &str, u16); 17] = [
    (Code::Ok, "OK", 200),
    (Code::Cancelled, "CANCELLED", 499),
    (Code::Unknown, "UNKNOWN", 500),
    (Code::InvalidArgument, "INVALID_ARGUMENT", 400),
    (Code::DeadlineExceeded, "DEADLINE_EXCEEDED", 504),
    (Code::NotFound, "NOT_FOUND", 404),
    (Code::AlreadyExists, "ALREADY_EXISTS", 409),
    (Code::PermissionDenied, "PERMISSION_DENIED", 403),
    (Code::ResourceExhausted, "RESOURCE_EXHAUSTED", 429),
    (Code::FailedPrecondition, "FAILED_PRECONDITION", 400),
    (Code::Aborted, "ABORTED", 409),
    (Code::OutOfRange, "OUT_OF_RANGE", 400),
    (Code::Unimplemented, "UNIMPLEMENTED", 501),
    (Code::Internal, "INTERNAL", 500),
    (Code::Unavailable, "UNAVAILABLE", 503),
    (Code::DataLoss, "DATA_LOSS", 500),
    (Code::Unauthenticated, "UNAUTHENTICATED", 401),
];

/// The HTTP status a REST answer with this gRPC code carries.
pub fn http_status(code: Code) -> http::StatusCode {
    HTTP_STATUSES
        .iter()
        .find(|(c, _, _)| *c == code)
        .and_then(|(_, _, status)| http::StatusCode::from_u16(*status).ok())
        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR)
}

/// The canonical name of a gRPC code ("INVALID_ARGUMENT"), as REST errors spell it.
pub fn code_name(code: Code) -> &'static str {
    HTTP_STATUSES
        .iter()
        .find(|(c, _, _)| *c == code)
        .map_or("UNKNOWN", |(_, name, _)| name)
}

/// The HTTP statuses REST answers can carry, with the code names behind them (for
/// the OpenAPI document).
pub fn http_statuses() -> impl Iterator<Item = (&'static str, u16)> {
    HTTP_STATUSES
        .iter()
        .map(|(_, name, status)| (*name, *status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_one_http_status_and_name() {
        for (i, (code, name, status)) in HTTP_STATUSES.iter().enumerate() {
            assert_eq!(*code as usize, i, "table in code order");
            assert_eq!(http_status(*code).as_u16(), *status);
            assert_eq!(code_name(*code), *name);
        }
        assert_eq!(
            http_status(Code::Unauthenticated),
            http::StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            http_status(Code::InvalidArgument),
            http::StatusCode::BAD_REQUEST
        );
    }

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
