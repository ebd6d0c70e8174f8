//! The queue's wire format, in one place: `EmbedJob` bodies (protobuf), the message
//! properties and headers twin sets, and the conversion of job records to the API's
//! `twin.v1.Job`. The domain never sees protobuf; this module is the edge.

use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;
use twin_proto::v1::{EmbedJob, Job, JobStatus};
use twin_proto::Timestamp;

use crate::error::{DecodeError, QueueError};
use crate::status::{JobRecord, JobState};

/// Content type of an `EmbedJob` body.
pub const JOB_CONTENT_TYPE: &str = "application/x-protobuf";
/// AMQP `type` property of an `EmbedJob` message.
pub const JOB_MESSAGE_TYPE: &str = "twin.v1.EmbedJob";
/// AMQP `type` property of a job-status event (a JSON [`JobRecord`]).
pub const RECORD_MESSAGE_TYPE: &str = "twin.JobRecord";
/// Content type of a job-status event.
pub const RECORD_CONTENT_TYPE: &str = "application/json";
/// Header a worker's dead-lettered job carries: why it was given up.
pub const DEAD_REASON_HEADER: &str = "x-twin-dead-reason";
/// Header a worker's dead-lettered job carries: deliveries it had (1 = first try).
pub const DEAD_ATTEMPTS_HEADER: &str = "x-twin-attempts";
/// Header a worker's dead-lettered job carries: when, in ms since the Unix epoch.
pub const DEAD_AT_HEADER: &str = "x-twin-dead-at-ms";
/// Longest dead-letter reason kept, in bytes; longer ones are cut at a char boundary.
pub const MAX_REASON_BYTES: usize = 1024;

/// Encoded size of a job, without encoding it.
pub fn encoded_len(job: &EmbedJob) -> usize {
    job.encoded_len()
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

/// Encodes a job after checking its size against `limit`.
pub fn encode_job(job: &EmbedJob, limit: usize) -> Result<Vec<u8>, QueueError> {
    check_size(&job.job_id, encoded_len(job), limit)?;
    Ok(job.encode_to_vec())
}

/// Decodes a body into a job. Protobuf is lenient (many random byte strings parse as
/// unknown fields), so a job also needs a UUID `job_id` to count as one.
pub fn decode_job(body: &[u8], message_id: &str) -> Result<EmbedJob, DecodeError> {
    let fail = |detail: String| DecodeError {
        message_id: message_id.to_owned(),
        detail,
    };
    let job = EmbedJob::decode(body).map_err(|e| fail(format!("not protobuf: {e}")))?;
    if uuid::Uuid::parse_str(&job.job_id).is_err() {
        return Err(fail(format!(
            "job_id {:?} is not a UUID (not protobuf, or not an EmbedJob)",
            truncate(&job.job_id, 64)
        )));
    }
    Ok(job)
}

/// `text` cut to at most `max` bytes at a char boundary.
pub fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A protobuf timestamp as ms since the epoch; 0 when absent or before the epoch.
pub fn timestamp_ms(ts: Option<&Timestamp>) -> u64 {
    let Some(ts) = ts else { return 0 };
    let ms = ts.seconds.saturating_mul(1000) + i64::from(ts.nanos / 1_000_000);
    u64::try_from(ms).unwrap_or(0)
}

/// Ms since the epoch as a protobuf timestamp; `None` for 0 (unknown).
pub fn ms_timestamp(ms: u64) -> Option<Timestamp> {
    if ms == 0 {
        return None;
    }
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    Some(Timestamp {
        seconds: ms / 1000,
        nanos: i32::try_from((ms % 1000) * 1_000_000).unwrap_or(0),
    })
}

impl JobRecord {
    /// The record as the API's `twin.v1.Job`.
    pub fn to_proto(&self) -> Job {
        let status = match self.state {
            JobState::Queued => JobStatus::Queued,
            JobState::Done => JobStatus::Done,
            JobState::Failed => JobStatus::Failed,
        };
        Job {
            job_id: self.job_id.clone(),
            status: status as i32,
            subject_id: self.subject_id.clone(),
            model_id: self.model_id.clone(),
            point_id: self.point_id.clone(),
            error: self.error.clone(),
            enqueued_at: ms_timestamp(self.enqueued_at_ms),
            updated_at: ms_timestamp(self.updated_at_ms),
            attempts: self.attempts,
        }
    }
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
            ..EmbedJob::default()
        }
    }

    #[test]
    fn roundtrip_and_size_limit() {
        let job = job();
        let body = encode_job(&job, 1 << 20).expect("encode");
        assert_eq!(body.len(), encoded_len(&job));
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
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }

    #[test]
    fn timestamps_roundtrip() {
        let ms = 1_700_000_000_123;
        assert_eq!(timestamp_ms(ms_timestamp(ms).as_ref()), ms);
        assert_eq!(ms_timestamp(0), None);
    }
}
