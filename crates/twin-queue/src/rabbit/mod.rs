//! The RabbitMQ backend (lapin): confirmed, persistent publishing; consumers that
//! reconnect by themselves; dead-lettering with the reason in a header; the status feed.
//!
//! Recovery is ours, not lapin's (`enable_auto_recover` stays off): every consumer owns
//! its connection and, when it breaks (broker restart, network cut, channel closed by
//! the broker), opens a new one with backoff, re-declares the topology, re-applies
//! `basic_qos` and re-creates the consumer, for as long as it is used. lapin 4.12's
//! recovery replays QoS and consumers too, but gives up after its backoff budget, does
//! not recover a channel the broker closed on its own, and hides when a recovery
//! happened; owning the loop keeps all three explicit and tested. Deliveries taken from
//! a channel that died cannot be settled any more: settling them returns
//! [`QueueError::DeliveryLost`] and the broker redelivers them.
//!
//! The publisher keeps one connection with publisher confirms, opened lazily and
//! replaced when it breaks; a publish that finds it broken reconnects once, else the
//! caller gets [`QueueError::Unavailable`].
//!
//! Poison jobs: a worker's [`crate::DeliveryHandle::dead_letter`] publishes a copy of the
//! message to the dead-letter exchange with `x-twin-dead-reason` (confirmed), then acks
//! the original. `basic.reject(requeue=false)` would dead-letter it too, but with the
//! reason "rejected" only; the copy carries ours. If the worker dies between the two
//! steps the job is redelivered and dead-lettered again (a duplicate dead letter, never
//! a lost one). Exhausted jobs are dead-lettered by the broker itself
//! (`x-first-death-reason = delivery_limit`).

mod admin;
mod connection;
mod consumer;
mod dead_letter;
mod recorder;
mod settle;
pub(crate) mod topology;

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use lapin::BasicProperties;
use tokio::sync::Mutex;
use twin_core::clock::now_ms;
use twin_core::config::QueueConfig;
use twin_core::job::EmbedJob;

use crate::backend::{ConsumerBackend, QueueBackend, QueueDepth};
use crate::codec;
use crate::dead::DeadLetter;
use crate::error::QueueError;
use crate::status::{JobRecord, JobStore, StatusFeed};
use connection::{job_properties, Outgoing, RabbitInner, Settings};
use consumer::RabbitConsumer;
use topology::short;

pub use topology::QueueNames;

/// The RabbitMQ job queue. Cheap to clone; clones share the publisher connection.
#[derive(Clone)]
pub struct RabbitQueue {
    inner: Arc<RabbitInner>,
}

impl std::fmt::Debug for RabbitQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitQueue")
            .field("url", &self.inner.settings.redacted_url)
            .field("names", &self.inner.settings.names)
            .finish()
    }
}

impl RabbitQueue {
    /// Validates the configuration; connects lazily (first publish or consume).
    pub fn open(config: &QueueConfig) -> Result<Self, QueueError> {
        Ok(Self {
            inner: Arc::new(RabbitInner {
                settings: Settings::from_config(config)?,
                publisher: Mutex::new(None),
                jobs: OnceLock::new(),
            }),
        })
    }

    /// The queue and exchange names.
    pub fn names(&self) -> &QueueNames {
        &self.inner.settings.names
    }

    /// Records `Queued` for the confirmed jobs when a job store is attached.
    async fn record_queued(&self, jobs: &[EmbedJob], results: &[Result<(), QueueError>]) {
        if let Some(store) = self.inner.jobs.get() {
            let records: Vec<JobRecord> = jobs
                .iter()
                .zip(results)
                .filter(|(_, r)| r.is_ok())
                .map(|(job, _)| JobRecord::queued(job))
                .collect();
            if let Err(e) = store.record(records).await {
                tracing::warn!(error = %e, "queued jobs not recorded in the job store");
            }
        }
    }
}

#[async_trait]
impl QueueBackend for RabbitQueue {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }

    fn max_message_bytes(&self) -> usize {
        self.inner.settings.max_message_bytes
    }

    /// Connects the publisher now (declaring the topology).
    async fn ensure_ready(&self) -> Result<(), QueueError> {
        self.inner.publisher().await.map(|_| ())
    }

    async fn publish_many(&self, jobs: &[EmbedJob]) -> Vec<Result<(), QueueError>> {
        let limit = self.inner.settings.max_message_bytes;
        let queue = self.inner.settings.names.queue.as_str();
        let encoded: Vec<Result<Vec<u8>, QueueError>> = jobs
            .iter()
            .map(|job| codec::encode_job(job, limit))
            .collect();
        let outgoing: Vec<Outgoing<'_>> = jobs
            .iter()
            .zip(&encoded)
            .filter_map(|(job, body)| {
                let body = body.as_ref().ok()?;
                let enqueued = match job.enqueued_at_ms {
                    0 => now_ms(),
                    ms => ms,
                };
                Some(Outgoing {
                    job_id: &job.job_id,
                    exchange: "",
                    routing_key: queue,
                    body,
                    properties: job_properties(&job.job_id, enqueued),
                })
            })
            .collect();
        // Confirms come back in the order of `outgoing`: the encodable jobs, in order.
        let mut confirmed = self.inner.publish_all(outgoing).await.into_iter();
        let results: Vec<Result<(), QueueError>> = encoded
            .into_iter()
            .map(|body| match body {
                Err(e) => Err(e),
                Ok(_) => confirmed.next().unwrap_or(Err(QueueError::Closed)),
            })
            .collect();
        self.record_queued(jobs, &results).await;
        results
    }

    async fn publish_raw(&self, job_id: &str, body: Vec<u8>) -> Result<(), QueueError> {
        codec::check_size(job_id, body.len(), self.inner.settings.max_message_bytes)?;
        self.inner
            .publish_confirmed(Outgoing {
                job_id,
                exchange: "",
                routing_key: &self.inner.settings.names.queue,
                body: &body,
                properties: job_properties(job_id, now_ms()),
            })
            .await
    }

    /// Publishes status records (JSON) on the events exchange, confirmed.
    async fn report(&self, records: Vec<JobRecord>) -> Result<(), QueueError> {
        let bodies: Vec<Vec<u8>> = records
            .iter()
            .map(|r| serde_json::to_vec(r).unwrap_or_default())
            .collect();
        let exchange = self.inner.settings.names.events_exchange.as_str();
        let outgoing = records
            .iter()
            .zip(&bodies)
            .map(|(record, body)| Outgoing {
                job_id: &record.job_id,
                exchange,
                routing_key: "",
                body,
                properties: BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_content_type(codec::RECORD_CONTENT_TYPE.into())
                    .with_type(codec::RECORD_MESSAGE_TYPE.into())
                    .with_message_id(short(&record.job_id)),
            })
            .collect();
        self.inner
            .publish_all(outgoing)
            .await
            .into_iter()
            .collect::<Result<Vec<()>, QueueError>>()
            .map(|_| ())
    }

    fn consumer(&self, prefetch: u16) -> Box<dyn ConsumerBackend> {
        Box::new(RabbitConsumer::jobs(self.inner.clone(), prefetch))
    }

    async fn attach_status_store(&self, store: JobStore) -> Result<StatusFeed, QueueError> {
        if self.inner.jobs.set(store.clone()).is_err() {
            return Err(QueueError::Config(
                "a job store is already attached to this queue".into(),
            ));
        }
        Ok(recorder::spawn(self.inner.clone(), store))
    }

    fn status_store(&self) -> Option<&JobStore> {
        self.inner.jobs.get()
    }

    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
        self.inner.dead_letters(max).await
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        self.inner.depth().await
    }

    async fn delete(&self) -> Result<(), QueueError> {
        self.inner.delete().await
    }

    async fn close(&self) {
        let session = self.inner.publisher.lock().await.take();
        if let Some(session) = session.and_then(|s| Arc::try_unwrap(s).ok()) {
            session.close().await;
        }
    }
}
