//! The queue layer's error type: what went wrong, and whether retrying can help.

use std::path::PathBuf;

/// Errors of the job queue and the job-status store.
///
/// [`QueueError::is_retryable`] tells a producer whether the same job may simply be
/// published again later (the job id stays the same, so a duplicate is harmless: the
/// worker's point id is deterministic).
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The encoded job is larger than `queue.max_message_bytes`; nothing was sent.
    #[error(
        "job {job_id} is {size} bytes encoded, above the queue limit of {limit} bytes \
         (queue.max_message_bytes): send a smaller image"
    )]
    TooLarge {
        job_id: String,
        size: usize,
        limit: usize,
    },
    /// The broker cannot be reached or the connection broke; the job was not accepted.
    #[error("broker unavailable: {0}; the job was not accepted, retry later")]
    Unavailable(String),
    /// The broker refused the message (publisher nack, or it could not be routed).
    #[error("broker refused job {job_id}: {reason}; retry later")]
    Rejected { job_id: String, reason: String },
    /// No confirmation arrived in time: the job may or may not be queued.
    #[error(
        "broker did not confirm job {job_id} within {timeout_ms} ms; it may or may not be \
         queued: retry with the same job id"
    )]
    Unconfirmed { job_id: String, timeout_ms: u64 },
    /// The in-process queue holds `capacity` jobs and none left within the timeout.
    #[error("queue is full ({capacity} jobs waiting or in flight); retry later")]
    Full { capacity: usize },
    /// A delivered message is not a valid `twin.v1.EmbedJob`.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The channel a delivery came on closed before it was settled. Drop the delivery:
    /// the broker has already put it back and redelivers it.
    #[error(
        "delivery of job {job_id} can no longer be settled: the channel it came on closed; \
         drop it, the broker redelivers it"
    )]
    DeliveryLost { job_id: String },
    /// The broker refused the queue topology (e.g. a queue of that name exists with
    /// other arguments) or a permission is missing.
    #[error("queue topology: {0}")]
    Topology(String),
    /// The job-status store could not be read or written.
    #[error("job status store {path}: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The queue configuration cannot work.
    #[error("invalid queue configuration: {0}")]
    Config(String),
    /// The queue or consumer was closed.
    #[error("the queue was closed")]
    Closed,
}

impl QueueError {
    /// True when the same operation may succeed later without any change by the caller:
    /// the broker is down or refused for now, the confirmation timed out, or the
    /// in-process queue is full.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            QueueError::Unavailable(_)
                | QueueError::Rejected { .. }
                | QueueError::Unconfirmed { .. }
                | QueueError::Full { .. }
        )
    }
}

/// A message body that is not a usable `twin.v1.EmbedJob`. A worker dead-letters such
/// a delivery with this error's text as the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("message {message_id:?} is not a twin.v1.EmbedJob: {detail}")]
pub struct DecodeError {
    /// The AMQP message id (the job id when a twin producer sent it), or empty.
    pub message_id: String,
    pub detail: String,
}
