//! Inspection and administration of a RabbitMQ job queue: its dead letters, its depth,
//! deleting its topology. Each on a short-lived side channel of the publisher connection.

use std::sync::Arc;

use lapin::options::{ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;

use super::connection::{unavailable, RabbitInner};
use super::dead_letter::parse_dead_letter;
use super::topology::short;
use crate::backend::QueueDepth;
use crate::dead::DeadLetter;
use crate::error::QueueError;

impl RabbitInner {
    /// Reads up to `max` dead letters without removing them (they are fetched
    /// unacknowledged, then the channel closes and the broker puts them back).
    pub(crate) async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let channel = self.side_channel().await?;
        let queue = short(&self.settings.names.dead_letter_queue);
        let mut dead = Vec::new();
        while dead.len() < max {
            let got = channel
                .basic_get(
                    queue.clone(),
                    lapin::options::BasicGetOptions { no_ack: false },
                )
                .await
                .map_err(unavailable("reading the dead-letter queue"))?;
            let Some(message) = got else { break };
            dead.push(parse_dead_letter(
                &message.delivery,
                self.settings.delivery_limit,
            ));
        }
        let _ = channel.close(200, "done".into()).await;
        Ok(dead)
    }

    pub(crate) async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let channel = self.side_channel().await?;
        let names = &self.settings.names;
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let jobs = channel
            .queue_declare(short(&names.queue), passive, FieldTable::default())
            .await
            .map_err(unavailable("reading the queue depth"))?;
        let dead = channel
            .queue_declare(
                short(&names.dead_letter_queue),
                passive,
                FieldTable::default(),
            )
            .await
            .map_err(unavailable("reading the dead-letter queue depth"))?;
        let _ = channel.close(200, "done".into()).await;
        Ok(QueueDepth {
            ready: u64::from(jobs.message_count()),
            dead: u64::from(dead.message_count()),
            consumers: jobs.consumer_count(),
        })
    }

    /// Deletes every queue and exchange of this job queue (tests, `twin` admin).
    pub(crate) async fn delete(&self) -> Result<(), QueueError> {
        let channel = self.side_channel().await?;
        let names = &self.settings.names;
        for queue in [&names.queue, &names.dead_letter_queue, &names.status_queue] {
            channel
                .queue_delete(short(queue), QueueDeleteOptions::default())
                .await
                .map_err(unavailable("deleting a queue"))?;
        }
        for exchange in [&names.events_exchange, &names.dead_letter_exchange] {
            channel
                .exchange_delete(short(exchange), ExchangeDeleteOptions::default())
                .await
                .map_err(unavailable("deleting an exchange"))?;
        }
        let _ = channel.close(200, "done".into()).await;
        let session = self.publisher.lock().await.take();
        if let Some(session) = session.and_then(|s| Arc::try_unwrap(s).ok()) {
            session.close().await;
        }
        Ok(())
    }
}
