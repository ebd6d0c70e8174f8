//! Dead letters: jobs given up, with the reason why, whichever way they died: a worker
//! dead-lettered them (poison: bad image, unknown model, not protobuf) or the broker
//! did (delivery limit reached, after the job failed or crashed its workers every time).

use std::fmt;

use twin_core::job::EmbedJob;

use crate::error::DecodeError;
use crate::status::record::JobRecord;

/// Why a job is in the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadReason {
    /// A worker gave the job up, saying why (header `x-twin-dead-reason`).
    Rejected(String),
    /// The queue dead-lettered it once its delivery limit was used up
    /// (`x-first-death-reason = delivery_limit` on RabbitMQ).
    DeliveryLimit,
    /// The broker dead-lettered it for another reason (`rejected`, `expired`, `maxlen`).
    Broker(String),
}

impl fmt::Display for DeadReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeadReason::Rejected(reason) => f.write_str(reason),
            DeadReason::DeliveryLimit => f.write_str(
                "delivery limit reached: every attempt failed or was interrupted \
                 (see the worker logs for this job id)",
            ),
            DeadReason::Broker(reason) => write!(f, "dead-lettered by the broker: {reason}"),
        }
    }
}

/// One job in the dead-letter queue.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The message id (the job id for messages twin produced).
    pub job_id: String,
    pub reason: DeadReason,
    /// Deliveries the job had (0 when unknown).
    pub attempts: u32,
    /// When it died, ms since the Unix epoch (0 when unknown).
    pub dead_at_ms: u64,
    /// The job itself, or why its body is not one.
    pub job: Result<EmbedJob, DecodeError>,
}

impl DeadLetter {
    /// The job's status record: failed, with the reason.
    pub fn to_record(&self) -> JobRecord {
        let reason = self.reason.to_string();
        match &self.job {
            Ok(job) => JobRecord::failed(job, &reason, self.attempts),
            Err(_) => JobRecord::failed_unread(&self.job_id, &reason, self.attempts),
        }
    }
}
