//! The status feed: applies job-status events to this process's [`JobStore`]. It
//! consumes `<queue>.status.<feed>`, which receives the workers' records (done) and a
//! copy of every dead-lettered job (failed, whether a worker or the broker gave it
//! up). Each event is acknowledged only once the store has it on disk, so a restart of
//! either side loses nothing; events are idempotent (records merge), so redelivered
//! ones are harmless.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use lapin::options::BasicNackOptions;
use tokio::sync::watch;

use super::connection::RabbitInner;
use super::consumer::RawConsumer;
use super::dead_letter::parse_dead_letter;
use crate::codec::RECORD_MESSAGE_TYPE;
use crate::status::{JobRecord, JobStore, StatusFeed};

/// Events applied at once (prefetch of the feed's consumer).
const IN_FLIGHT: u16 = 256;

/// Starts the feed; stopping it lets the events in progress be stored and acknowledged.
pub(crate) fn spawn(queue: Arc<RabbitInner>, store: JobStore) -> StatusFeed {
    StatusFeed::spawn(move |stopped| run(queue, store, stopped))
}

async fn run(queue: Arc<RabbitInner>, store: JobStore, mut stopped: watch::Receiver<bool>) {
    let source = queue.settings.names.status_queue.clone();
    let delivery_limit = queue.settings.delivery_limit;
    let mut consumer = RawConsumer::new(queue, source.clone(), "status", IN_FLIGHT);
    let mut in_flight = FuturesUnordered::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            next = consumer.next(), if in_flight.len() < usize::from(IN_FLIGHT) => match next {
                None => break,
                Some(Err(e)) => tracing::warn!(queue = %source, error = %e, "status feed waiting for the broker"),
                Some(Ok(delivery)) => in_flight.push(apply(store.clone(), delivery, delivery_limit)),
            },
        }
    }
    while in_flight.next().await.is_some() {}
    consumer.close().await;
}

/// Stores one event, then acknowledges it; on a store failure it goes back for later.
async fn apply(store: JobStore, delivery: lapin::message::Delivery, delivery_limit: u32) {
    let record = event_record(&delivery, delivery_limit);
    let stored = match record {
        Some(record) => store.record(vec![record]).await,
        None => Ok(()),
    };
    match stored {
        Ok(()) => {
            let _ = delivery.acker.ack(Default::default()).await;
        }
        Err(e) => {
            tracing::error!(error = %e, "job status not stored; retrying later");
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = delivery
                .acker
                .nack(BasicNackOptions {
                    requeue: true,
                    multiple: false,
                })
                .await;
        }
    }
}

/// The record an event carries: a worker's JSON record, or a dead-lettered job.
fn event_record(delivery: &lapin::message::Delivery, delivery_limit: u32) -> Option<JobRecord> {
    let kind = delivery.properties.kind().as_ref().map(|k| k.as_str());
    if kind == Some(RECORD_MESSAGE_TYPE) {
        return match serde_json::from_slice::<JobRecord>(&delivery.data) {
            Ok(record) => Some(record),
            Err(e) => {
                tracing::warn!(error = %e, "dropping unreadable job status event");
                None
            }
        };
    }
    let dead = parse_dead_letter(delivery, delivery_limit);
    if dead.job_id.is_empty() {
        tracing::warn!(reason = %dead.reason, "dead letter without a job id; no status to update");
        return None;
    }
    Some(dead.to_record())
}
