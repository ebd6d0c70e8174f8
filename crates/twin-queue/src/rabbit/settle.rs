//! Settling a RabbitMQ delivery: ack, requeue, or dead-letter with the reason in a
//! header (a confirmed copy to the dead-letter exchange, then an ack of the original).

use std::sync::Arc;

use async_trait::async_trait;
use lapin::options::BasicNackOptions;
use lapin::types::{AMQPValue, LongString};
use lapin::{Acker, BasicProperties};
use twin_core::clock::now_ms;

use super::connection::{Outgoing, RabbitInner};
use super::topology::short;
use crate::codec;
use crate::delivery::Settle;
use crate::error::QueueError;
use crate::reason::{truncate, MAX_REASON_BYTES};

/// Settles one RabbitMQ delivery.
pub(crate) struct RabbitSettle {
    pub(crate) queue: Arc<RabbitInner>,
    pub(crate) acker: Acker,
    pub(crate) body: Vec<u8>,
    pub(crate) properties: BasicProperties,
}

impl std::fmt::Debug for RabbitSettle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitSettle")
            .field("usable", &self.acker.usable())
            .field("bytes", &self.body.len())
            .finish()
    }
}

impl RabbitSettle {
    fn lost(job_id: &str, error: Option<&lapin::Error>) -> QueueError {
        tracing::debug!(job_id, error = ?error.map(ToString::to_string), "delivery lost with its channel");
        QueueError::DeliveryLost {
            job_id: job_id.to_owned(),
        }
    }

    fn settled(job_id: &str, result: Result<bool, lapin::Error>) -> Result<(), QueueError> {
        match result {
            Ok(true) => Ok(()),
            Ok(false) => Err(Self::lost(job_id, None)),
            Err(e) => Err(Self::lost(job_id, Some(&e))),
        }
    }

    async fn requeue(&self) -> Result<bool, lapin::Error> {
        self.acker
            .nack(BasicNackOptions {
                requeue: true,
                multiple: false,
            })
            .await
    }
}

#[async_trait]
impl Settle for RabbitSettle {
    async fn ack(self: Box<Self>, job_id: &str) -> Result<(), QueueError> {
        Self::settled(job_id, self.acker.ack(Default::default()).await)
    }

    async fn retry(self: Box<Self>, job_id: &str) -> Result<(), QueueError> {
        Self::settled(job_id, self.requeue().await)
    }

    async fn dead_letter(
        self: Box<Self>,
        job_id: &str,
        attempt: u32,
        reason: &str,
    ) -> Result<(), QueueError> {
        if !self.acker.usable() {
            // Its channel is gone: the broker has put it back already.
            return Err(Self::lost(job_id, None));
        }
        let mut headers = self.properties.headers().clone().unwrap_or_default();
        let reason = truncate(reason, MAX_REASON_BYTES);
        headers.insert(
            short(codec::DEAD_REASON_HEADER),
            AMQPValue::LongString(LongString::from(reason)),
        );
        headers.insert(
            short(codec::DEAD_ATTEMPTS_HEADER),
            AMQPValue::LongLongInt(i64::from(attempt)),
        );
        headers.insert(
            short(codec::DEAD_AT_HEADER),
            AMQPValue::LongLongInt(i64::try_from(now_ms()).unwrap_or(i64::MAX)),
        );
        let names = &self.queue.settings.names;
        let published = self
            .queue
            .publish_confirmed(Outgoing {
                job_id,
                exchange: &names.dead_letter_exchange,
                routing_key: &names.queue,
                body: &self.body,
                properties: self.properties.clone().with_headers(headers),
            })
            .await;
        match published {
            Ok(()) => {
                tracing::warn!(job_id, attempt, reason, "job dead-lettered");
                Self::settled(job_id, self.acker.ack(Default::default()).await)
            }
            Err(e) => {
                // Not dead-lettered: give it back rather than hold it forever.
                let _ = self.requeue().await;
                Err(e)
            }
        }
    }
}
