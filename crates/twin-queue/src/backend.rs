//! The queue contract every backend implements, like `twin_store::VectorStore`: the
//! [`crate::JobQueue`] and [`crate::JobConsumer`] handles dispatch to it, and only
//! [`crate::JobQueue::open`] knows which backends exist.

use std::fmt;

use async_trait::async_trait;
use twin_core::job::EmbedJob;

use crate::dead::DeadLetter;
use crate::delivery::Delivery;
use crate::error::QueueError;
use crate::status::{JobRecord, JobStore, StatusFeed};

/// How full the queue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDepth {
    /// Jobs waiting for a worker (not counting those delivered and unsettled).
    pub ready: u64,
    /// Jobs in the dead-letter queue.
    pub dead: u64,
    /// Consumers attached.
    pub consumers: u32,
}

/// A job queue backend. See [`crate::JobQueue`] for what each operation promises.
#[async_trait]
pub trait QueueBackend: Send + Sync + fmt::Debug {
    /// Its name in `queue.backend`.
    fn name(&self) -> &'static str;
    /// Largest encoded job accepted, in bytes.
    fn max_message_bytes(&self) -> usize;
    /// Connects now and prepares what it needs (a broker's topology).
    async fn ensure_ready(&self) -> Result<(), QueueError>;
    /// Queues jobs, confirmed; one result per job, in order; records them queued in the
    /// attached status store.
    async fn publish_many(&self, jobs: &[EmbedJob]) -> Vec<Result<(), QueueError>>;
    /// Queues an arbitrary body under `job_id` (tools and tests: poison messages).
    async fn publish_raw(&self, job_id: &str, body: Vec<u8>) -> Result<(), QueueError>;
    /// A consumer holding at most `prefetch` unsettled deliveries.
    fn consumer(&self, prefetch: u16) -> Box<dyn ConsumerBackend>;
    /// Passes job outcomes on to whoever keeps job statuses.
    async fn report(&self, records: Vec<JobRecord>) -> Result<(), QueueError>;
    /// Makes `store` this process's status store; outcomes flow into it from then on.
    async fn attach_status_store(&self, store: JobStore) -> Result<StatusFeed, QueueError>;
    /// The attached status store, if any.
    fn status_store(&self) -> Option<&JobStore>;
    /// Up to `max` dead letters, oldest first, left in place.
    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError>;
    /// Waiting and dead jobs.
    async fn depth(&self) -> Result<QueueDepth, QueueError>;
    /// Deletes the queue's contents (and a broker's topology).
    async fn delete(&self) -> Result<(), QueueError>;
    /// Closes the publisher (a broker) or the whole queue (in-process).
    async fn close(&self);
}

/// The consuming side of a backend. `next` must be cancel-safe.
#[async_trait]
pub trait ConsumerBackend: Send + fmt::Debug {
    /// The next delivery; `Some(Err(_))` for a lost connection (call again), `None`
    /// once cancelled and drained, or the queue closed.
    async fn next(&mut self) -> Option<Result<Delivery, QueueError>>;
    /// Stops new deliveries; those in hand can still be settled.
    async fn cancel(&mut self);
    /// Closes: unsettled deliveries go back to the queue.
    async fn close(&mut self);
    /// Reconnections after a lost connection.
    fn recoveries(&self) -> u64 {
        0
    }
    /// False while between connections.
    fn is_connected(&self) -> bool {
        true
    }
}
