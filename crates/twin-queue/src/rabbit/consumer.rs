//! A RabbitMQ consumer that survives its connection: pull-based, it reconnects with
//! backoff, re-declares the topology, re-applies `basic_qos` and re-creates the
//! consumer whenever the old one broke, for as long as it is polled.

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use tokio::time::Instant;

use super::connection::{RabbitInner, Session};
use super::settle::RabbitSettle;
use super::topology::{attempt_from_headers, read_job, short};
use crate::backend::ConsumerBackend;
use crate::backoff::Backoff;
use crate::delivery::Delivery;
use crate::error::QueueError;

struct Live {
    session: Session,
    consumer: lapin::Consumer,
    tag: String,
}

/// Consumes one queue, raw: yields lapin deliveries.
pub(crate) struct RawConsumer {
    queue: Arc<RabbitInner>,
    source: String,
    purpose: &'static str,
    prefetch: u16,
    live: Option<Live>,
    backoff: Backoff,
    retry_at: Option<Instant>,
    cancelled: bool,
    drained: bool,
    ever_connected: bool,
    recoveries: u64,
}

impl RawConsumer {
    pub(crate) fn new(
        queue: Arc<RabbitInner>,
        source: String,
        purpose: &'static str,
        prefetch: u16,
    ) -> Self {
        Self {
            queue,
            source,
            purpose,
            prefetch,
            live: None,
            backoff: Backoff::default(),
            retry_at: None,
            cancelled: false,
            drained: false,
            ever_connected: false,
            recoveries: 0,
        }
    }

    /// The next delivery; an `Err` for every failed (re)connect or lost connection
    /// (the next call waits out the backoff and tries again); `None` once cancelled
    /// and drained. Cancel-safe: all progress lives in `self`.
    pub(crate) async fn next(&mut self) -> Option<Result<lapin::message::Delivery, QueueError>> {
        loop {
            if self.drained || (self.cancelled && self.live.is_none()) {
                return None;
            }
            if self.live.is_none() {
                if let Some(at) = self.retry_at {
                    tokio::time::sleep_until(at).await;
                }
                match self.start().await {
                    Ok(live) => {
                        self.retry_at = None;
                        if std::mem::replace(&mut self.ever_connected, true) {
                            self.recoveries += 1;
                            tracing::info!(queue = %self.source, prefetch = self.prefetch, recoveries = self.recoveries, "consumer recovered");
                        }
                        self.backoff.reset();
                        self.live = Some(live);
                    }
                    Err(e) => {
                        self.retry_at = Some(Instant::now() + self.backoff.next_delay());
                        return Some(Err(e));
                    }
                }
            }
            let live = self.live.as_mut()?;
            match live.consumer.next().await {
                // Buffered deliveries of a channel that died cannot be settled: skip
                // them (the broker has put them back) rather than waste work on them.
                Some(Ok(delivery)) if !delivery.acker.usable() => {
                    tracing::debug!(queue = %self.source, "skipping a delivery of a dead channel");
                }
                Some(Ok(delivery)) => return Some(Ok(delivery)),
                Some(Err(e)) => return Some(Err(self.lose(&format!("consumer failed: {e}")))),
                None if self.cancelled => {
                    // Keep the channel: deliveries in hand can still be settled.
                    self.drained = true;
                    return None;
                }
                None => {
                    return Some(Err(
                        self.lose("the broker cancelled the consumer (queue deleted?)")
                    ))
                }
            }
        }
    }

    async fn start(&mut self) -> Result<Live, QueueError> {
        let session = self.queue.open_session(self.purpose).await?;
        // A fresh channel has no prefetch: apply it before consuming, every time.
        session
            .channel
            .basic_qos(self.prefetch, BasicQosOptions { global: false })
            .await
            .map_err(|e| QueueError::Unavailable(format!("setting prefetch: {e}")))?;
        let tag = format!("twin-{}-{}", self.purpose, uuid::Uuid::new_v4().simple());
        let consumer = session
            .channel
            .basic_consume(
                short(&self.source),
                short(&tag),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| QueueError::Unavailable(format!("consuming {}: {e}", self.source)))?;
        tracing::debug!(queue = %self.source, tag, prefetch = self.prefetch, "consuming");
        Ok(Live {
            session,
            consumer,
            tag,
        })
    }

    /// Drops the broken session (its unsettled deliveries go back to the queue).
    fn lose(&mut self, why: &str) -> QueueError {
        self.live = None;
        self.retry_at = Some(Instant::now() + self.backoff.next_delay());
        tracing::warn!(queue = %self.source, why, "consumer lost its connection; reconnecting");
        QueueError::Unavailable(format!("consumer of {}: {why}", self.source))
    }

    /// Stops new deliveries; those in hand can still be settled until `close`.
    pub(crate) async fn cancel(&mut self) {
        self.cancelled = true;
        if let Some(live) = &self.live {
            let _ = live
                .session
                .channel
                .basic_cancel(short(&live.tag), BasicCancelOptions::default())
                .await;
        }
    }

    /// Closes the connection; unsettled deliveries go back to the queue.
    pub(crate) async fn close(&mut self) {
        self.cancelled = true;
        if let Some(live) = self.live.take() {
            live.session.close().await;
        }
    }

    pub(crate) fn recoveries(&self) -> u64 {
        self.recoveries
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.live.is_some()
    }
}

/// Consumes embed jobs.
pub(crate) struct RabbitConsumer {
    raw: RawConsumer,
}

impl std::fmt::Debug for RabbitConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitConsumer")
            .field("queue", &self.raw.source)
            .field("prefetch", &self.raw.prefetch)
            .field("connected", &self.raw.is_connected())
            .finish()
    }
}

impl RabbitConsumer {
    pub(crate) fn jobs(queue: Arc<RabbitInner>, prefetch: u16) -> Self {
        let source = queue.settings.names.queue.clone();
        Self {
            raw: RawConsumer::new(queue, source, "worker", prefetch),
        }
    }
}

#[async_trait]
impl ConsumerBackend for RabbitConsumer {
    async fn next(&mut self) -> Option<Result<Delivery, QueueError>> {
        let delivery = match self.raw.next().await? {
            Ok(delivery) => delivery,
            Err(e) => return Some(Err(e)),
        };
        let headers = delivery.properties.headers().as_ref();
        let attempt = attempt_from_headers(headers);
        let (job, job_id) = read_job(&delivery);
        let settle = RabbitSettle {
            queue: self.raw.queue.clone(),
            acker: delivery.acker,
            body: delivery.data,
            properties: delivery.properties,
        };
        Some(Ok(Delivery::new(job, job_id, attempt, Box::new(settle))))
    }

    async fn cancel(&mut self) {
        self.raw.cancel().await;
    }

    async fn close(&mut self) {
        self.raw.close().await;
    }

    fn recoveries(&self) -> u64 {
        self.raw.recoveries()
    }

    fn is_connected(&self) -> bool {
        self.raw.is_connected()
    }
}
