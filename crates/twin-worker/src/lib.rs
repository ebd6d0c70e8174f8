//! The embedding worker: consume → micro-batch → preprocess → embed → store → ack.
//!
//! Every job is acknowledged only after its point is stored (wait until applied), so a
//! worker killed at any moment loses nothing: unacknowledged jobs go back to the queue
//! and the deterministic point id makes storing one twice harmless. A job that can
//! never succeed (not a job, a bad image, an unknown model) is dead-lettered at once
//! with its reason; a store that is down is waited out with backoff while the jobs are
//! held, so an outage does not burn their delivery budget.

mod batch;
pub mod metrics;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use twin_core::config::WorkerConfig;
use twin_embed::ModelRegistry;
use twin_queue::{Delivery, JobConsumer, JobQueue};
use twin_store::{CollectionSpec, StoreError, VectorStore};

pub use metrics::WorkerMetrics;

/// Why a worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("creating the collection of model {model}: {source}")]
    Collection {
        model: String,
        #[source]
        source: StoreError,
    },
}

/// What a worker did before it stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerSummary {
    pub stored: u64,
    pub dead_lettered: u64,
    pub batches: u64,
}

/// A worker over a queue, a store and the models it serves. Cheap to clone: clones
/// share nothing but the underlying clients.
#[derive(Debug, Clone)]
pub struct Worker {
    pub(crate) models: ModelRegistry,
    pub(crate) store: Arc<dyn VectorStore>,
    pub(crate) queue: JobQueue,
    pub(crate) config: WorkerConfig,
    pub(crate) metrics: WorkerMetrics,
}

impl Worker {
    pub fn new(
        models: ModelRegistry,
        store: Arc<dyn VectorStore>,
        queue: JobQueue,
        config: WorkerConfig,
        metrics: WorkerMetrics,
    ) -> Self {
        Self {
            models,
            store,
            queue,
            config,
            metrics,
        }
    }

    /// The prefetch: enough unacknowledged deliveries to fill the next batch while one
    /// is being embedded.
    pub fn prefetch(&self) -> u16 {
        if self.config.prefetch > 0 {
            self.config.prefetch
        } else {
            u16::try_from(self.config.batch_size.saturating_mul(2)).unwrap_or(u16::MAX)
        }
    }

    /// Consumes until `shutdown` resolves (or the queue closes). On shutdown it stops
    /// taking deliveries, finishes the batch in hand within
    /// `worker.shutdown_deadline_s`, and gives back whatever is left unsettled.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<WorkerSummary, WorkerError> {
        tokio::pin!(shutdown);
        // A store that is down at start is waited for, like one that goes down later;
        // a shutdown meanwhile ends the wait (nothing was consumed yet).
        let ready = tokio::select! {
            biased;
            () = &mut shutdown => None,
            ready = self.ensure_collections() => Some(ready),
        };
        match ready {
            None => {
                tracing::info!("shutdown before the store was reachable; worker stopping");
                return Ok(WorkerSummary::default());
            }
            Some(ready) => ready?,
        }
        let mut consumer = self.queue.consumer(self.prefetch());
        let mut summary = WorkerSummary::default();
        let batch_wait = Duration::from_millis(self.config.batch_wait_ms);
        tracing::info!(
            batch_size = self.config.batch_size,
            batch_wait_ms = self.config.batch_wait_ms,
            prefetch = self.prefetch(),
            queue = self.queue.backend(),
            "worker consuming"
        );
        let stop_deadline = loop {
            let gathered = tokio::select! {
                biased;
                () = &mut shutdown => break None,
                gathered = gather(&mut consumer, self.config.batch_size, batch_wait) => gathered,
            };
            let Some(deliveries) = gathered else {
                tracing::info!("queue closed; worker stopping");
                break Some(Instant::now());
            };
            // The batch in hand is finished even if shutdown arrives meanwhile; its
            // store retries stop at the deadline.
            let processing = self.process(deliveries, &mut summary);
            tokio::pin!(processing);
            tokio::select! {
                () = &mut processing => {}
                () = &mut shutdown => {
                    let deadline = Instant::now() + self.shutdown_deadline();
                    tracing::info!(deadline_s = self.config.shutdown_deadline_s, "shutdown: finishing the batch in hand");
                    consumer.cancel().await;
                    if tokio::time::timeout_at(deadline.into(), &mut processing).await.is_err() {
                        tracing::warn!("shutdown deadline passed mid-batch; its jobs go back to the queue");
                    }
                    break Some(deadline);
                }
            }
        };
        if stop_deadline.is_none() {
            consumer.cancel().await;
        }
        // Deliveries received but not yet batched go back to the queue on close.
        consumer.close().await;
        tracing::info!(
            stored = summary.stored,
            dead_lettered = summary.dead_lettered,
            batches = summary.batches,
            "worker stopped"
        );
        Ok(summary)
    }

    /// Creates every served model's collection, waiting out a store that is unavailable.
    async fn ensure_collections(&self) -> Result<(), WorkerError> {
        for model in self.models.all() {
            let spec = CollectionSpec::for_model(model.manifest());
            let mut delay = Duration::from_millis(200);
            loop {
                match self.store.ensure_collection(&spec).await {
                    Ok(_) => break,
                    Err(error) if error.is_transient() => {
                        tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "store unavailable at start; waiting for it");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                    Err(source) => {
                        return Err(WorkerError::Collection {
                            model: model.manifest().name.clone(),
                            source,
                        })
                    }
                }
            }
        }
        Ok(())
    }

    fn shutdown_deadline(&self) -> Duration {
        Duration::from_secs(self.config.shutdown_deadline_s)
    }
}

/// Waits for one delivery, then gathers more until `max` or until `wait` has passed
/// since the first. `None` once the consumer has ended.
async fn gather(consumer: &mut JobConsumer, max: usize, wait: Duration) -> Option<Vec<Delivery>> {
    let first = loop {
        match consumer.next().await? {
            Ok(delivery) => break delivery,
            Err(error) => {
                tracing::warn!(error = %error, "queue connection lost; reconnecting");
            }
        }
    };
    let mut batch = vec![first];
    let deadline = tokio::time::Instant::now() + wait;
    while batch.len() < max {
        match tokio::time::timeout_at(deadline, consumer.next()).await {
            Err(_elapsed) => break,
            Ok(None) => break,
            Ok(Some(Ok(delivery))) => batch.push(delivery),
            Ok(Some(Err(error))) => {
                tracing::warn!(error = %error, "queue connection lost mid-batch");
                break;
            }
        }
    }
    Some(batch)
}
