//! The queue's wire format, in one place: a domain [`EmbedJob`] travels as a protobuf
//! `twin.v1.EmbedJob` body (`proto/twin/v1/job.proto`, so producers and workers of other
//! versions and languages read it), with the message properties and headers twin sets.
//! This module is the only one that sees protobuf: the rest of the queue, and the worker,
//! see the domain job. The message is declared here with the schema's field numbers
//! rather than taken from `twin-proto`, so that the queue (and the worker above it) do
//! not depend on the API's generated code; a test in `tests/` holds the two encodings to
//! each other.

use prost::Message;
use prost_types::Timestamp;
use twin_core::job::EmbedJob;

use crate::error::{DecodeError, QueueError};
use crate::reason::truncate;

/// Content type of an `EmbedJob` body.
pub const JOB_CONTENT_TYPE: &str = "application/x-protobuf";
/// AMQP `type` property of an `EmbedJob` message.
pub const JOB_MESSAGE_TYPE: &str = "twin.v1.EmbedJob";
/// AMQP `type` property of a job-status event (a JSON [`crate::JobRecord`]).
pub const RECORD_MESSAGE_TYPE: &str = "twin.JobRecord";
/// Content type of a job-status event.
pub const RECORD_CONTENT_TYPE: &str = "application/json";
/// Header a worker's dead-lettered job carries: why it was given up.
pub const DEAD_REASON_HEADER: &str = "x-twin-dead-reason";
/// Header a worker's dead-lettered job carries: deliveries it had (1 = first try).
pub const DEAD_ATTEMPTS_HEADER: &str = "x-twin-attempts";
/// Header a worker's dead-lettered job carries: when, in ms since the Unix epoch.
pub const DEAD_AT_HEADER: &str = "x-twin-dead-at-ms";

/// `twin.v1.EmbedJob` and `twin.v1.Label` on the wire (field numbers from `job.proto`).
mod wire {
    use prost_types::Timestamp;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EmbedJob {
        #[prost(string, tag = "1")]
        pub job_id: String,
        #[prost(string, tag = "2")]
        pub subject_id: String,
        #[prost(bytes = "vec", tag = "3")]
        pub image: Vec<u8>,
        #[prost(string, tag = "4")]
        pub image_sha256: String,
        #[prost(message, repeated, tag = "5")]
        pub labels: Vec<Label>,
        #[prost(string, tag = "6")]
        pub model_id: String,
        #[prost(message, optional, tag = "7")]
        pub enqueued_at: Option<Timestamp>,
        #[prost(string, tag = "8")]
        pub traceparent: String,
        #[prost(string, tag = "9")]
        pub source: String,
        #[prost(string, tag = "10")]
        pub text: String,
        #[prost(string, tag = "11")]
        pub tenant: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(string, tag = "1")]
        pub key: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }
}

/// Refuses a body above `limit` with [`QueueError::TooLarge`].
pub fn check_size(job_id: &str, size: usize, limit: usize) -> Result<(), QueueError> {
    if size > limit {
        return Err(QueueError::TooLarge {
            job_id: job_id.to_owned(),
            size,
            limit,
        });
    }
    Ok(())
}

/// Encodes a job after checking its encoded size against `limit`.
pub fn encode_job(job: &EmbedJob, limit: usize) -> Result<Vec<u8>, QueueError> {
    let message = to_wire(job);
    check_size(&job.job_id, message.encoded_len(), limit)?;
    Ok(message.encode_to_vec())
}

/// Decodes a body into a job. Protobuf is lenient (many random byte strings parse as
/// unknown fields), so a job also needs a UUID `job_id` to count as one.
pub fn decode_job(body: &[u8], message_id: &str) -> Result<EmbedJob, DecodeError> {
    let fail = |detail: String| DecodeError {
        message_id: message_id.to_owned(),
        detail,
    };
    let job = wire::EmbedJob::decode(body).map_err(|e| fail(format!("not protobuf: {e}")))?;
    if uuid::Uuid::parse_str(&job.job_id).is_err() {
        return Err(fail(format!(
            "job_id {:?} is not a UUID (not protobuf, or not an EmbedJob)",
            truncate(&job.job_id, 64)
        )));
    }
    Ok(from_wire(job))
}

fn to_wire(job: &EmbedJob) -> wire::EmbedJob {
    wire::EmbedJob {
        job_id: job.job_id.clone(),
        subject_id: job.subject_id.clone(),
        image: job.image.clone(),
        image_sha256: job.image_sha256.clone(),
        labels: job
            .labels
            .iter()
            .map(|(key, value)| wire::Label {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        model_id: job.model_id.clone(),
        enqueued_at: ms_timestamp(job.enqueued_at_ms),
        traceparent: job.traceparent.clone(),
        source: job.source.clone(),
        text: job.text.clone(),
        tenant: job.tenant.clone(),
    }
}

fn from_wire(job: wire::EmbedJob) -> EmbedJob {
    EmbedJob {
        enqueued_at_ms: timestamp_ms(job.enqueued_at.as_ref()),
        // A repeated key keeps its last value, as a payload's label map would.
        labels: job.labels.into_iter().map(|l| (l.key, l.value)).collect(),
        job_id: job.job_id,
        tenant: job.tenant,
        subject_id: job.subject_id,
        model_id: job.model_id,
        image: job.image,
        text: job.text,
        image_sha256: job.image_sha256,
        source: job.source,
        traceparent: job.traceparent,
    }
}

/// A protobuf timestamp as ms since the epoch; 0 when absent or before the epoch.
fn timestamp_ms(ts: Option<&Timestamp>) -> u64 {
    let Some(ts) = ts else { return 0 };
    let ms = ts.seconds.saturating_mul(1000) + i64::from(ts.nanos / 1_000_000);
    u64::try_from(ms).unwrap_or(0)
}

/// Ms since the epoch as a protobuf timestamp; `None` for 0 (unknown).
fn ms_timestamp(ms: u64) -> Option<Timestamp> {
    if ms == 0 {
        return None;
    }
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    Some(Timestamp {
        seconds: ms / 1000,
        nanos: i32::try_from((ms % 1000) * 1_000_000).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> EmbedJob {
        EmbedJob {
            job_id: uuid::Uuid::new_v4().to_string(),
            subject_id: "alice".into(),
            image: vec![7; 100],
            image_sha256: "ab".repeat(32),
            model_id: "m".into(),
            labels: [("site".to_owned(), "north".to_owned())].into(),
            enqueued_at_ms: 1_700_000_000_123,
            ..EmbedJob::default()
        }
    }

    #[test]
    fn roundtrip_and_size_limit() {
        let job = job();
        let body = encode_job(&job, 1 << 20).expect("encode");
        assert_eq!(decode_job(&body, &job.job_id).expect("decode"), job);
        let err = encode_job(&job, body.len() - 1).expect_err("too large");
        assert!(
            matches!(err, QueueError::TooLarge { size, limit, .. } if size == body.len() && limit == body.len() - 1)
        );
        assert!(err.to_string().contains("queue.max_message_bytes"));
    }

    #[test]
    fn garbage_is_not_a_job() {
        for body in [
            &b"hello, not protobuf"[..],
            b"\x89PNG\r\n\x1a\n",
            b"",
            b"\xff\xff\xff",
        ] {
            let err = decode_job(body, "m1").expect_err("garbage decoded as a job");
            assert_eq!(err.message_id, "m1");
        }
    }

    #[test]
    fn timestamps_roundtrip() {
        let ms = 1_700_000_000_123;
        assert_eq!(timestamp_ms(ms_timestamp(ms).as_ref()), ms);
        assert_eq!(ms_timestamp(0), None);
    }
}
