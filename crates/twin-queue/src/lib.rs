//! The job-queue contract between producers (gateway, CLI) and embedding workers
//! ([`backend::QueueBackend`], [`delivery::Settle`]), with two backends in their own
//! folders: RabbitMQ (`rabbit/`: quorum queue, publisher confirms, dead-letter queue,
//! self-healing consumers) and an in-process queue for the embedded mode (`inprocess/`).
//! Jobs are the domain's [`twin_core::job::EmbedJob`]; [`codec`] is the one place that
//! knows their wire format. Job status is its own contract ([`status`]): the record, the
//! store a producer reads it from, and the feed that fills it.
//!
//! A worker's loop, the same for both backends:
//!
//! ```no_run
//! # async fn worker(config: &twin_core::config::QueueConfig) -> Result<(), twin_queue::QueueError> {
//! use twin_queue::{JobQueue, JobRecord};
//! let queue = JobQueue::open(config)?;
//! let mut consumer = queue.consumer(64);
//! while let Some(next) = consumer.next().await {
//!     let delivery = match next {
//!         Ok(delivery) => delivery,
//!         Err(e) => { tracing::warn!(error = %e, "waiting for the queue"); continue; }
//!     };
//!     let job = match delivery.job() {
//!         Ok(job) => job.clone(),
//!         Err(e) => { let reason = e.to_string(); delivery.dead_letter(&reason).await.ok(); continue; }
//!     };
//!     // ... embed and store the point, then:
//!     let attempts = delivery.attempt();
//!     if delivery.ack().await.is_ok() {
//!         queue.report(vec![JobRecord::done(&job, attempts)]).await.ok();
//!     }
//! }
//! # Ok(()) }
//! ```

pub mod backend;
pub mod backoff;
pub mod codec;
pub mod dead;
pub mod delivery;
pub mod error;
pub mod inprocess;
pub mod rabbit;
pub mod reason;
pub mod status;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::sync::Arc;
use std::time::Duration;

use twin_core::config::QueueConfig;
use twin_core::job::EmbedJob;

pub use backend::{ConsumerBackend, QueueBackend, QueueDepth};
pub use dead::{DeadLetter, DeadReason};
pub use delivery::{Delivery, DeliveryHandle, Settle};
pub use error::{DecodeError, QueueError};
pub use inprocess::InProcessQueue;
pub use rabbit::{QueueNames, RabbitQueue};
pub use status::{JobRecord, JobState, JobStore, StatusFeed};

/// The job queue: the backend `queue.backend` names, behind the [`QueueBackend`]
/// contract. Cheap to clone.
#[derive(Debug, Clone)]
pub struct JobQueue {
    backend: Arc<dyn QueueBackend>,
}

impl JobQueue {
    /// The backend `config.backend` names ("rabbitmq" or "inprocess"), without
    /// connecting: RabbitMQ connects on first use; the in-process queue reads its journal
    /// (`queue.inprocess_dir`), so this blocks.
    pub fn open(config: &QueueConfig) -> Result<Self, QueueError> {
        if config.delivery_limit == 0 {
            return Err(QueueError::Config(
                "queue.delivery_limit must be at least 1".into(),
            ));
        }
        let backend: Arc<dyn QueueBackend> = match config.backend.as_str() {
            "rabbitmq" => Arc::new(RabbitQueue::open(config)?),
            "inprocess" => Arc::new(InProcessQueue::open(config)?),
            other => {
                return Err(QueueError::Config(format!(
                    "queue.backend must be \"inprocess\" or \"rabbitmq\", got {other:?}"
                )))
            }
        };
        Ok(Self::from_backend(backend))
    }

    /// A queue over any backend.
    pub fn from_backend(backend: Arc<dyn QueueBackend>) -> Self {
        Self { backend }
    }

    /// [`JobQueue::open`], then [`JobQueue::ensure_ready`]: fails fast when the broker
    /// cannot be reached or refuses the topology.
    pub async fn connect(config: &QueueConfig) -> Result<Self, QueueError> {
        // Opening reads the in-process journal from disk: off the async executor.
        let owned = config.clone();
        let queue = tokio::task::spawn_blocking(move || Self::open(&owned))
            .await
            .map_err(|e| QueueError::Config(format!("opening the queue failed: {e}")))??;
        queue.ensure_ready().await?;
        Ok(queue)
    }

    /// Connects now and declares the topology (RabbitMQ); nothing for in-process.
    pub async fn ensure_ready(&self) -> Result<(), QueueError> {
        self.backend.ensure_ready().await
    }

    /// "rabbitmq" or "inprocess".
    pub fn backend(&self) -> &'static str {
        self.backend.name()
    }

    /// Largest encoded job accepted, in bytes.
    pub fn max_message_bytes(&self) -> usize {
        self.backend.max_message_bytes()
    }

    /// Queues a job, persistent; returns once the queue accepted it (broker confirm).
    /// Above `queue.max_message_bytes` it is refused with [`QueueError::TooLarge`]
    /// before anything is sent. With a job store attached, the job is recorded queued.
    pub async fn publish(&self, job: &EmbedJob) -> Result<(), QueueError> {
        self.publish_many(std::slice::from_ref(job))
            .await
            .pop()
            .unwrap_or(Err(QueueError::Closed))
    }

    /// Queues many jobs, waiting for all confirmations together (much faster than one
    /// by one); one result per job, in order.
    pub async fn publish_many(&self, jobs: &[EmbedJob]) -> Vec<Result<(), QueueError>> {
        self.backend.publish_many(jobs).await
    }

    /// Queues an arbitrary body under `job_id` (tools and tests: poison messages).
    pub async fn publish_raw(&self, job_id: &str, body: Vec<u8>) -> Result<(), QueueError> {
        self.backend.publish_raw(job_id, body).await
    }

    /// A consumer holding at most `prefetch` unsettled deliveries. It connects on the
    /// first [`JobConsumer::next`] and reconnects by itself.
    pub fn consumer(&self, prefetch: u16) -> JobConsumer {
        JobConsumer {
            backend: self.backend.consumer(prefetch),
        }
    }

    /// Tells whoever keeps job statuses what became of jobs (the worker reports `done`
    /// here; failures travel with the dead letters by themselves). RabbitMQ: confirmed
    /// events on `<queue>.events`; in-process: straight into the attached store.
    pub async fn report(&self, records: Vec<JobRecord>) -> Result<(), QueueError> {
        self.backend.report(records).await
    }

    /// Makes `store` this process's job-status store: publishes record `Queued`, and
    /// outcomes flow into it (RabbitMQ: a task consuming `<queue>.status.<feed>`;
    /// in-process: directly, and attach before publishing: jobs the store still lists
    /// as queued were lost with the previous process and are marked failed). Keep the
    /// returned feed alive as long as the queue.
    pub async fn attach_status_store(&self, store: JobStore) -> Result<StatusFeed, QueueError> {
        self.backend.attach_status_store(store).await
    }

    /// The attached job-status store, if any.
    pub fn status_store(&self) -> Option<&JobStore> {
        self.backend.status_store()
    }

    /// Up to `max` dead letters, oldest first, left in place.
    pub async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
        self.backend.dead_letters(max).await
    }

    /// Waiting and dead jobs (for the queue-lag metric and health).
    pub async fn depth(&self) -> Result<QueueDepth, QueueError> {
        self.backend.depth().await
    }

    /// Deletes the queue's topology and contents (tests, administration).
    pub async fn delete(&self) -> Result<(), QueueError> {
        self.backend.delete().await
    }

    /// Closes the publisher (RabbitMQ) or the whole queue (in-process: consumers end).
    pub async fn close(&self) {
        self.backend.close().await
    }
}

/// Receives deliveries. Poll [`JobConsumer::next`]; it is cancel-safe, so it can sit in
/// a `tokio::select!` beside a batch timer.
#[derive(Debug)]
pub struct JobConsumer {
    backend: Box<dyn ConsumerBackend>,
}

impl JobConsumer {
    /// The next delivery. `Some(Err(_))` reports a lost or failed connection (log it
    /// and call again: the next call waits out a backoff and reconnects); `None` once
    /// the consumer was cancelled (and, for RabbitMQ, its buffered deliveries handed
    /// out) or the in-process queue closed.
    pub async fn next(&mut self) -> Option<Result<Delivery, QueueError>> {
        self.backend.next().await
    }

    /// Stops new deliveries (graceful shutdown, step 1). Deliveries in hand can still be
    /// settled; `next` hands out what was already received, then `None`.
    pub async fn cancel(&mut self) {
        self.backend.cancel().await
    }

    /// Closes the consumer (shutdown, last step): unsettled deliveries go back to the
    /// queue and can no longer be settled here.
    pub async fn close(mut self) {
        self.backend.close().await
    }

    /// How many times the consumer reconnected after losing its connection.
    pub fn recoveries(&self) -> u64 {
        self.backend.recoveries()
    }

    /// False while a RabbitMQ consumer is between connections (for health checks).
    pub fn is_connected(&self) -> bool {
        self.backend.is_connected()
    }
}

/// Retention of finished job records, from `queue.jobs_retention_hours` (0 = forever).
pub fn retention(config: &QueueConfig) -> Option<Duration> {
    (config.jobs_retention_hours > 0)
        .then(|| Duration::from_secs(config.jobs_retention_hours.saturating_mul(3600)))
}
