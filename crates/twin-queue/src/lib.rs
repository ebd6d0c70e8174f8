//! The job-queue contract between producers (gateway, CLI) and embedding workers, with
//! two backends behind one type: RabbitMQ (quorum queue, publisher confirms, dead-letter
//! queue, self-healing consumers) and an in-process queue for the embedded mode.
//! Also the job-status store, through which a producer learns what became of a job.
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

pub mod backoff;
pub mod codec;
pub mod dead;
pub mod delivery;
pub mod error;
pub mod inprocess;
pub mod jobstore;
mod journal;
pub mod rabbit;
pub mod status;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::time::Duration;

use twin_core::config::QueueConfig;
use twin_proto::v1::EmbedJob;

pub use dead::{DeadLetter, DeadReason};
pub use delivery::{Delivery, DeliveryHandle};
pub use error::{DecodeError, QueueError};
pub use inprocess::InProcessQueue;
pub use jobstore::JobStore;
pub use rabbit::{QueueNames, RabbitQueue};
pub use status::{JobRecord, JobState};

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

/// The job queue: one of the backends, chosen by `queue.backend`. Cheap to clone.
#[derive(Debug, Clone)]
pub enum JobQueue {
    RabbitMq(RabbitQueue),
    InProcess(InProcessQueue),
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
        match config.backend.as_str() {
            "rabbitmq" => Ok(Self::RabbitMq(RabbitQueue::open(config)?)),
            "inprocess" => Ok(Self::InProcess(InProcessQueue::open(config)?)),
            other => Err(QueueError::Config(format!(
                "queue.backend must be \"inprocess\" or \"rabbitmq\", got {other:?}"
            ))),
        }
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
        match self {
            Self::RabbitMq(q) => q.ensure_ready().await,
            Self::InProcess(_) => Ok(()),
        }
    }

    /// "rabbitmq" or "inprocess".
    pub fn backend(&self) -> &'static str {
        match self {
            Self::RabbitMq(_) => "rabbitmq",
            Self::InProcess(_) => "inprocess",
        }
    }

    /// Largest encoded job accepted, in bytes.
    pub fn max_message_bytes(&self) -> usize {
        match self {
            Self::RabbitMq(q) => q.max_message_bytes(),
            Self::InProcess(q) => q.max_message_bytes(),
        }
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
        match self {
            Self::RabbitMq(q) => q.publish_jobs(jobs).await,
            Self::InProcess(q) => {
                let mut results = Vec::with_capacity(jobs.len());
                let mut queued = Vec::new();
                for job in jobs {
                    let result = match codec::encode_job(job, q.max_message_bytes()) {
                        Ok(body) => q.publish_body(&job.job_id, body).await,
                        Err(e) => Err(e),
                    };
                    if result.is_ok() {
                        queued.push(JobRecord::queued(job));
                    }
                    results.push(result);
                }
                if let Some(store) = q.store() {
                    if let Err(e) = store.record(queued).await {
                        tracing::warn!(error = %e, "queued jobs not recorded in the job store");
                    }
                }
                results
            }
        }
    }

    /// Queues an arbitrary body under `job_id` (tools and tests: poison messages).
    pub async fn publish_raw(&self, job_id: &str, body: Vec<u8>) -> Result<(), QueueError> {
        match self {
            Self::RabbitMq(q) => q.publish_raw(job_id, &body).await,
            Self::InProcess(q) => q.publish_body(job_id, body).await,
        }
    }

    /// A consumer holding at most `prefetch` unsettled deliveries. It connects on the
    /// first [`JobConsumer::next`] and reconnects by itself.
    pub fn consumer(&self, prefetch: u16) -> JobConsumer {
        match self {
            Self::RabbitMq(q) => JobConsumer {
                kind: ConsumerKind::RabbitMq(Box::new(q.consumer(prefetch))),
            },
            Self::InProcess(q) => JobConsumer {
                kind: ConsumerKind::InProcess(q.consumer(prefetch)),
            },
        }
    }

    /// Tells whoever keeps job statuses what became of jobs (the worker reports `done`
    /// here; failures travel with the dead letters by themselves). RabbitMQ: confirmed
    /// events on `<queue>.events`; in-process: straight into the attached store.
    pub async fn report(&self, records: Vec<JobRecord>) -> Result<(), QueueError> {
        match self {
            Self::RabbitMq(q) => q.report(&records).await,
            Self::InProcess(q) => q.report(records).await,
        }
    }

    /// Makes `store` this process's job-status store: publishes record `Queued`, and
    /// outcomes flow into it (RabbitMQ: a task consuming `<queue>.status.<feed>`;
    /// in-process: directly, and attach before publishing: jobs the store still lists
    /// as queued were lost with the previous process and are marked failed). Keep the
    /// returned feed alive as long as the queue.
    pub async fn attach_status_store(&self, store: JobStore) -> Result<StatusFeed, QueueError> {
        match self {
            Self::RabbitMq(q) => Ok(StatusFeed {
                task: Some(q.attach(store)?),
            }),
            Self::InProcess(q) => {
                q.attach(store).await?;
                Ok(StatusFeed { task: None })
            }
        }
    }

    /// The attached job-status store, if any.
    pub fn status_store(&self) -> Option<&JobStore> {
        match self {
            Self::RabbitMq(q) => q.store(),
            Self::InProcess(q) => q.store(),
        }
    }

    /// Up to `max` dead letters, oldest first, left in place.
    pub async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
        match self {
            Self::RabbitMq(q) => q.dead_letters(max).await,
            Self::InProcess(q) => Ok(q.dead_letters(max)),
        }
    }

    /// Waiting and dead jobs (for the queue-lag metric and health).
    pub async fn depth(&self) -> Result<QueueDepth, QueueError> {
        match self {
            Self::RabbitMq(q) => q.depth().await,
            Self::InProcess(q) => Ok(q.depth()),
        }
    }

    /// Deletes the queue's topology and contents (tests, administration).
    pub async fn delete(&self) -> Result<(), QueueError> {
        match self {
            Self::RabbitMq(q) => q.delete().await,
            Self::InProcess(q) => {
                q.clear();
                Ok(())
            }
        }
    }

    /// Closes the publisher (RabbitMQ) or the whole queue (in-process: consumers end).
    pub async fn close(&self) {
        match self {
            Self::RabbitMq(q) => q.close().await,
            Self::InProcess(q) => q.close(),
        }
    }
}

/// Receives deliveries. Poll [`JobConsumer::next`]; it is cancel-safe, so it can sit in
/// a `tokio::select!` beside a batch timer.
#[derive(Debug)]
pub struct JobConsumer {
    kind: ConsumerKind,
}

#[derive(Debug)]
enum ConsumerKind {
    RabbitMq(Box<rabbit::RabbitConsumer>),
    InProcess(inprocess::InProcessConsumer),
}

impl JobConsumer {
    /// The next delivery. `Some(Err(_))` reports a lost or failed connection (log it
    /// and call again: the next call waits out a backoff and reconnects); `None` once
    /// the consumer was cancelled (and, for RabbitMQ, its buffered deliveries handed
    /// out) or the in-process queue closed.
    pub async fn next(&mut self) -> Option<Result<Delivery, QueueError>> {
        match &mut self.kind {
            ConsumerKind::RabbitMq(c) => c.next().await,
            ConsumerKind::InProcess(c) => c.next().await,
        }
    }

    /// Stops new deliveries (graceful shutdown, step 1). Deliveries in hand can still be
    /// settled; `next` hands out what was already received, then `None`.
    pub async fn cancel(&mut self) {
        match &mut self.kind {
            ConsumerKind::RabbitMq(c) => c.cancel().await,
            ConsumerKind::InProcess(c) => c.cancel(),
        }
    }

    /// Closes the consumer (shutdown, last step): unsettled deliveries go back to the
    /// queue and can no longer be settled here.
    pub async fn close(mut self) {
        match &mut self.kind {
            ConsumerKind::RabbitMq(c) => c.close().await,
            ConsumerKind::InProcess(c) => c.cancel(),
        }
    }

    /// How many times the consumer reconnected after losing its connection.
    pub fn recoveries(&self) -> u64 {
        match &self.kind {
            ConsumerKind::RabbitMq(c) => c.recoveries(),
            ConsumerKind::InProcess(_) => 0,
        }
    }

    /// False while a RabbitMQ consumer is between connections (for health checks).
    pub fn is_connected(&self) -> bool {
        match &self.kind {
            ConsumerKind::RabbitMq(c) => c.is_connected(),
            ConsumerKind::InProcess(_) => true,
        }
    }
}

/// Keeps job outcomes flowing into the attached store (RabbitMQ: a background task).
#[derive(Debug)]
pub struct StatusFeed {
    task: Option<rabbit::StatusFeedTask>,
}

impl StatusFeed {
    /// Stops the feed, letting events in progress finish.
    pub async fn stop(self) {
        if let Some(task) = self.task {
            task.stop().await;
        }
    }
}

/// Retention of finished job records, from `queue.jobs_retention_hours` (0 = forever).
pub fn retention(config: &QueueConfig) -> Option<Duration> {
    (config.jobs_retention_hours > 0)
        .then(|| Duration::from_secs(config.jobs_retention_hours.saturating_mul(3600)))
}
