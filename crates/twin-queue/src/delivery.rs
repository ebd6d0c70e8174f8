//! A delivered job and the handle that settles it: ack once the point is stored, retry
//! (put it back for another attempt), or dead-letter it with a reason. One type for
//! every backend, so the worker is written once; each backend settles through its own
//! [`Settle`], which this contract never names.

use std::fmt;

use async_trait::async_trait;
use twin_core::job::EmbedJob;

use crate::error::{DecodeError, QueueError};

/// How a backend settles one delivery. Each method consumes it: a delivery is settled
/// once. Dropping it unsettled must put the job back (at once, or when its channel closes).
#[async_trait]
pub trait Settle: Send + fmt::Debug {
    /// Done: the job's point is stored.
    async fn ack(self: Box<Self>, job_id: &str) -> Result<(), QueueError>;
    /// Back to the queue for another attempt (counts towards the delivery limit).
    async fn retry(self: Box<Self>, job_id: &str) -> Result<(), QueueError>;
    /// Into the dead letters with `reason`, after `attempt` deliveries.
    async fn dead_letter(
        self: Box<Self>,
        job_id: &str,
        attempt: u32,
        reason: &str,
    ) -> Result<(), QueueError>;
}

/// One delivery of a job. Settle it exactly once with [`Delivery::ack`],
/// [`Delivery::retry`] or [`Delivery::dead_letter`] (or split it with
/// [`Delivery::into_parts`] and settle the [`DeliveryHandle`]).
///
/// Dropping an unsettled delivery puts the job back: at once for the in-process queue,
/// when the consumer's channel closes for RabbitMQ. Either way it counts as a delivery
/// towards the limit.
#[derive(Debug)]
pub struct Delivery {
    job: Result<EmbedJob, DecodeError>,
    handle: DeliveryHandle,
}

/// Settles a delivery. Every method consumes the handle: a delivery is settled once.
#[derive(Debug)]
pub struct DeliveryHandle {
    job_id: String,
    attempt: u32,
    settle: Box<dyn Settle>,
}

impl Delivery {
    /// A delivery of `job` (or of a body that is not one), the `attempt`-th, settled by
    /// `settle`. Backends call this.
    pub fn new(
        job: Result<EmbedJob, DecodeError>,
        job_id: String,
        attempt: u32,
        settle: Box<dyn Settle>,
    ) -> Self {
        Self {
            job,
            handle: DeliveryHandle {
                job_id,
                attempt,
                settle,
            },
        }
    }

    /// The job, or why the message body is not one (dead-letter it with that reason).
    pub fn job(&self) -> Result<&EmbedJob, &DecodeError> {
        self.job.as_ref()
    }

    /// The job id: the message id, or the decoded job's id.
    pub fn job_id(&self) -> &str {
        self.handle.job_id()
    }

    /// This delivery's number: 1 on the first delivery, 2 on the first redelivery...
    pub fn attempt(&self) -> u32 {
        self.handle.attempt()
    }

    /// Splits the job (to move it into a batch) from the handle that settles it.
    pub fn into_parts(self) -> (Result<EmbedJob, DecodeError>, DeliveryHandle) {
        (self.job, self.handle)
    }

    /// Done: the job's point is stored.
    pub async fn ack(self) -> Result<(), QueueError> {
        self.handle.ack().await
    }

    /// Puts the job back for another attempt (counts towards the delivery limit).
    pub async fn retry(self) -> Result<(), QueueError> {
        self.handle.retry().await
    }

    /// Gives the job up: it goes to the dead-letter queue with `reason`.
    pub async fn dead_letter(self, reason: &str) -> Result<(), QueueError> {
        self.handle.dead_letter(reason).await
    }
}

impl DeliveryHandle {
    /// The job id: the message id, or the decoded job's id.
    pub fn job_id(&self) -> &str {
        &self.job_id
    }

    /// This delivery's number: 1 on the first delivery.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Done: the job's point is stored. [`QueueError::DeliveryLost`] when the channel
    /// it came on is gone: drop it then, the broker redelivers the job (and storing it
    /// again is harmless, the point id is deterministic).
    pub async fn ack(self) -> Result<(), QueueError> {
        self.settle.ack(&self.job_id).await
    }

    /// Puts the job back for another attempt; it counts towards the delivery limit, so
    /// a job that keeps failing ends in the dead-letter queue. For transient failures
    /// (store unavailable) prefer retrying in the worker before giving it back.
    pub async fn retry(self) -> Result<(), QueueError> {
        self.settle.retry(&self.job_id).await
    }

    /// Gives the job up at once: it lands in the dead-letter queue with `reason` and
    /// the job's status becomes failed. On error the job was put back instead (it will
    /// be redelivered, or dead-lettered by the delivery limit).
    pub async fn dead_letter(self, reason: &str) -> Result<(), QueueError> {
        self.settle
            .dead_letter(&self.job_id, self.attempt, reason)
            .await
    }
}
