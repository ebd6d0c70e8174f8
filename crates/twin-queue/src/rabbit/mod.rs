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

mod consumer;
mod recorder;
pub(crate) mod topology;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::join_all;
use lapin::options::{
    BasicNackOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::uri::AMQPUri;
use lapin::{Acker, BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use tokio::sync::Mutex;
use twin_core::config::{redact_url_password, QueueConfig};
use twin_proto::v1::EmbedJob;

use crate::codec::{self, decode_job, now_ms};
use crate::dead::{DeadLetter, DeadReason};
use crate::error::QueueError;
use crate::jobstore::JobStore;
use crate::status::JobRecord;
use crate::QueueDepth;

pub(crate) use consumer::RabbitConsumer;
pub use recorder::StatusFeedTask;
pub use topology::QueueNames;
use topology::{header_text, header_u64, short};

/// Heartbeat asked for when the URL names none: a cut network is noticed in ~20 s.
const DEFAULT_HEARTBEAT_S: u16 = 10;
/// Connect timeout used when the URL names none.
const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5_000;

pub(crate) struct Settings {
    uri: AMQPUri,
    redacted_url: String,
    pub(crate) names: QueueNames,
    delivery_limit: u32,
    max_message_bytes: usize,
    confirm_timeout: Duration,
    connect_timeout: Duration,
}

impl Settings {
    fn from_config(config: &QueueConfig) -> Result<Self, QueueError> {
        let redacted_url = redact_url_password(&config.url);
        let mut uri: AMQPUri = config.url.parse().map_err(|e| {
            QueueError::Config(format!(
                "queue.url {redacted_url:?} is not an AMQP URL: {e}"
            ))
        })?;
        if uri.query.heartbeat.is_none() {
            uri.query.heartbeat = Some(DEFAULT_HEARTBEAT_S);
        }
        let connect_ms = *uri
            .query
            .connection_timeout
            .get_or_insert(DEFAULT_CONNECT_TIMEOUT_MS);
        if config.delivery_limit == 0 {
            return Err(QueueError::Config(
                "queue.delivery_limit must be at least 1".into(),
            ));
        }
        Ok(Self {
            uri,
            redacted_url,
            names: QueueNames::new(&config.queue, &config.status_feed)?,
            delivery_limit: config.delivery_limit,
            max_message_bytes: config.max_message_bytes,
            confirm_timeout: Duration::from_millis(config.confirm_timeout_ms.max(1)),
            connect_timeout: Duration::from_millis(connect_ms.max(1)),
        })
    }
}

/// A live connection with one channel on it.
pub(crate) struct Session {
    connection: Connection,
    pub(crate) channel: Channel,
}

impl Session {
    fn healthy(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }

    /// Closes politely (bounded in time); a broken one is simply dropped.
    pub(crate) async fn close(self) {
        if self.healthy() {
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                self.connection.close(200, "bye".into()),
            )
            .await;
        }
    }
}

pub(crate) struct RabbitInner {
    pub(crate) settings: Settings,
    publisher: Mutex<Option<Arc<Session>>>,
    jobs: OnceLock<JobStore>,
}

/// One message to publish with a confirm.
struct Outgoing<'a> {
    job_id: &'a str,
    exchange: &'a str,
    routing_key: &'a str,
    body: &'a [u8],
    properties: BasicProperties,
}

fn unavailable(context: &'static str) -> impl FnOnce(lapin::Error) -> QueueError {
    move |e| QueueError::Unavailable(format!("{context}: {e}"))
}

impl RabbitInner {
    /// Connects, opens a channel and declares the topology.
    pub(crate) async fn open_session(&self, purpose: &str) -> Result<Session, QueueError> {
        let s = &self.settings;
        let properties = ConnectionProperties::default()
            .with_connection_name(LongString::from(format!("twin-{purpose}")));
        let connection = match tokio::time::timeout(
            s.connect_timeout,
            Connection::connect_uri(s.uri.clone(), properties),
        )
        .await
        {
            Err(_) => {
                return Err(QueueError::Unavailable(format!(
                    "connecting to {} timed out after {} ms",
                    s.redacted_url,
                    s.connect_timeout.as_millis()
                )))
            }
            Ok(Err(e)) => {
                return Err(QueueError::Unavailable(format!(
                    "cannot connect to {}: {e}",
                    s.redacted_url
                )))
            }
            Ok(Ok(connection)) => connection,
        };
        let channel = connection
            .create_channel()
            .await
            .map_err(unavailable("opening a channel"))?;
        topology::declare(&channel, &s.names, s.delivery_limit).await?;
        Ok(Session {
            connection,
            channel,
        })
    }

    /// The publisher session, (re)connected when needed.
    async fn publisher(&self) -> Result<Arc<Session>, QueueError> {
        let mut slot = self.publisher.lock().await;
        if let Some(session) = slot.as_ref().filter(|s| s.healthy()) {
            return Ok(session.clone());
        }
        *slot = None;
        let session = self.open_session("publisher").await?;
        session
            .channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(unavailable("enabling publisher confirms"))?;
        tracing::info!(url = %self.settings.redacted_url, queue = %self.settings.names.queue, "publisher connected");
        let session = Arc::new(session);
        *slot = Some(session.clone());
        Ok(session)
    }

    /// Forgets `failed` so that the next publish reconnects (and re-declares).
    async fn forget_publisher(&self, failed: &Arc<Session>) {
        let mut slot = self.publisher.lock().await;
        if slot.as_ref().is_some_and(|s| Arc::ptr_eq(s, failed)) {
            *slot = None;
        }
    }

    /// Sends without waiting for the confirm; retries once on a fresh connection when
    /// the cached one turned out to be broken.
    async fn send(
        &self,
        message: &Outgoing<'_>,
    ) -> Result<(Arc<Session>, lapin::PublisherConfirm), QueueError> {
        let mut last_error = None;
        for _ in 0..2 {
            let session = self.publisher().await?;
            let sent = session
                .channel
                .basic_publish(
                    short(message.exchange),
                    short(message.routing_key),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    message.body,
                    message.properties.clone(),
                )
                .await;
            match sent {
                Ok(confirm) => return Ok((session, confirm)),
                Err(e) => {
                    self.forget_publisher(&session).await;
                    last_error = Some(e);
                }
            }
        }
        Err(QueueError::Unavailable(format!(
            "publishing: {}",
            last_error.map_or_else(String::new, |e| e.to_string())
        )))
    }

    async fn await_confirm(
        &self,
        job_id: &str,
        session: &Arc<Session>,
        confirm: lapin::PublisherConfirm,
    ) -> Result<(), QueueError> {
        let rejected = |reason: String| QueueError::Rejected {
            job_id: job_id.to_owned(),
            reason,
        };
        match tokio::time::timeout(self.settings.confirm_timeout, confirm).await {
            Err(_) => Err(QueueError::Unconfirmed {
                job_id: job_id.to_owned(),
                timeout_ms: u64::try_from(self.settings.confirm_timeout.as_millis())
                    .unwrap_or(u64::MAX),
            }),
            Ok(Err(e)) => {
                self.forget_publisher(session).await;
                Err(QueueError::Unavailable(format!(
                    "connection lost before the broker confirmed job {job_id}: {e}"
                )))
            }
            Ok(Ok(Confirmation::Ack(None))) => Ok(()),
            Ok(Ok(Confirmation::Ack(Some(returned)))) => {
                // Unroutable: the queue is gone. The next session re-declares it.
                self.forget_publisher(session).await;
                Err(rejected(format!(
                    "unroutable ({}): its queue does not exist; it is declared again on the \
                     next attempt",
                    returned.reply_text
                )))
            }
            Ok(Ok(Confirmation::Nack(_))) => Err(rejected(
                "the broker nacked it (queue full: x-overflow reject-publish, or the queue \
                 could not store it)"
                    .into(),
            )),
            Ok(Ok(Confirmation::NotRequested)) => {
                self.forget_publisher(session).await;
                Err(QueueError::Unavailable(
                    "publisher confirms were not enabled on the channel".into(),
                ))
            }
        }
    }

    async fn publish_confirmed(&self, message: Outgoing<'_>) -> Result<(), QueueError> {
        let (session, confirm) = self.send(&message).await?;
        self.await_confirm(message.job_id, &session, confirm).await
    }

    /// Publishes many messages on one channel and waits for all confirms together.
    async fn publish_all(&self, messages: Vec<Outgoing<'_>>) -> Vec<Result<(), QueueError>> {
        let mut sent = Vec::with_capacity(messages.len());
        for message in &messages {
            sent.push(self.send(message).await);
        }
        join_all(
            sent.into_iter()
                .zip(&messages)
                .map(|(sent, message)| async move {
                    let (session, confirm) = sent?;
                    self.await_confirm(message.job_id, &session, confirm).await
                }),
        )
        .await
    }

    /// A short-lived channel on the publisher's connection, for inspection and admin.
    async fn side_channel(&self) -> Result<Channel, QueueError> {
        let session = self.publisher().await?;
        session
            .connection
            .create_channel()
            .await
            .map_err(unavailable("opening a channel"))
    }
}

fn job_properties(job_id: &str, enqueued_ms: u64) -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type(codec::JOB_CONTENT_TYPE.into())
        .with_type(codec::JOB_MESSAGE_TYPE.into())
        .with_message_id(short(job_id))
        .with_timestamp(enqueued_ms / 1000)
        .with_app_id("twin".into())
}

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

    pub(crate) fn max_message_bytes(&self) -> usize {
        self.inner.settings.max_message_bytes
    }

    /// Connects the publisher now (declaring the topology).
    pub(crate) async fn ensure_ready(&self) -> Result<(), QueueError> {
        self.inner.publisher().await.map(|_| ())
    }

    pub(crate) async fn publish_jobs(&self, jobs: &[EmbedJob]) -> Vec<Result<(), QueueError>> {
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
                let enqueued = match codec::timestamp_ms(job.enqueued_at.as_ref()) {
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

    pub(crate) async fn publish_raw(&self, job_id: &str, body: &[u8]) -> Result<(), QueueError> {
        codec::check_size(job_id, body.len(), self.inner.settings.max_message_bytes)?;
        self.inner
            .publish_confirmed(Outgoing {
                job_id,
                exchange: "",
                routing_key: &self.inner.settings.names.queue,
                body,
                properties: job_properties(job_id, now_ms()),
            })
            .await
    }

    /// Publishes status records (JSON) on the events exchange, confirmed.
    pub(crate) async fn report(&self, records: &[JobRecord]) -> Result<(), QueueError> {
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

    pub(crate) fn consumer(&self, prefetch: u16) -> RabbitConsumer {
        RabbitConsumer::jobs(self.inner.clone(), prefetch)
    }

    pub(crate) fn attach(&self, store: JobStore) -> Result<StatusFeedTask, QueueError> {
        if self.inner.jobs.set(store.clone()).is_err() {
            return Err(QueueError::Config(
                "a job store is already attached to this queue".into(),
            ));
        }
        Ok(recorder::spawn(self.inner.clone(), store))
    }

    pub(crate) fn store(&self) -> Option<&JobStore> {
        self.inner.jobs.get()
    }

    /// Reads up to `max` dead letters without removing them (they are fetched
    /// unacknowledged, then the channel closes and the broker puts them back).
    pub(crate) async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let channel = self.inner.side_channel().await?;
        let queue = short(&self.inner.settings.names.dead_letter_queue);
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
                self.inner.settings.delivery_limit,
            ));
        }
        let _ = channel.close(200, "done".into()).await;
        Ok(dead)
    }

    pub(crate) async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let channel = self.inner.side_channel().await?;
        let names = &self.inner.settings.names;
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
        let channel = self.inner.side_channel().await?;
        let names = &self.inner.settings.names;
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
        let session = self.inner.publisher.lock().await.take();
        if let Some(session) = session.and_then(|s| Arc::try_unwrap(s).ok()) {
            session.close().await;
        }
        Ok(())
    }

    pub(crate) async fn close(&self) {
        let session = self.inner.publisher.lock().await.take();
        if let Some(session) = session.and_then(|s| Arc::try_unwrap(s).ok()) {
            session.close().await;
        }
    }
}

/// Reads a dead-lettered message: its job, and why it died (ours or the broker's).
///
/// A job the broker dead-lettered for its delivery limit had `delivery_limit + 1`
/// deliveries; RabbitMQ 3.x does not say so in a header, so the limit is taken from
/// the configuration (which the queue was declared with).
pub(crate) fn parse_dead_letter(
    delivery: &lapin::message::Delivery,
    delivery_limit: u32,
) -> DeadLetter {
    let headers = delivery.properties.headers().as_ref();
    let message_id = delivery
        .properties
        .message_id()
        .as_ref()
        .map(|id| id.as_str().to_owned())
        .unwrap_or_default();
    let job = decode_job(&delivery.data, &message_id);
    let job_id = if message_id.is_empty() {
        job.as_ref().map(|j| j.job_id.clone()).unwrap_or_default()
    } else {
        message_id
    };
    let death = last_death(headers);
    let reason = match header_text(headers, codec::DEAD_REASON_HEADER) {
        Some(reason) => DeadReason::Rejected(reason),
        None => match header_text(headers, "x-first-death-reason")
            .or_else(|| death.as_ref().and_then(|d| header_text(Some(d), "reason")))
            .as_deref()
        {
            Some("delivery_limit") => DeadReason::DeliveryLimit,
            Some(other) => DeadReason::Broker(other.to_owned()),
            None => DeadReason::Broker("unknown (no x-death header)".into()),
        },
    };
    let attempts = header_u64(headers, codec::DEAD_ATTEMPTS_HEADER)
        .and_then(|a| u32::try_from(a).ok())
        .unwrap_or_else(|| match reason {
            DeadReason::DeliveryLimit => {
                (topology::attempt_from_headers(headers) - 1).max(delivery_limit.saturating_add(1))
            }
            _ => 0,
        });
    let dead_at_ms = header_u64(headers, codec::DEAD_AT_HEADER)
        .or_else(|| {
            death
                .as_ref()
                .and_then(|d| header_u64(Some(d), "time"))
                .map(|s| s.saturating_mul(1000))
        })
        .unwrap_or(0);
    DeadLetter {
        job_id,
        reason,
        attempts,
        dead_at_ms,
        job,
    }
}

/// The most recent entry of the broker's `x-death` header.
fn last_death(headers: Option<&FieldTable>) -> Option<FieldTable> {
    match headers?.inner().get("x-death")? {
        AMQPValue::FieldArray(deaths) => deaths.as_slice().iter().find_map(|d| match d {
            AMQPValue::FieldTable(t) => Some(t.clone()),
            _ => None,
        }),
        _ => None,
    }
}

/// Settles one RabbitMQ delivery.
pub(crate) struct RabbitSettle {
    queue: Arc<RabbitInner>,
    acker: Acker,
    body: Vec<u8>,
    properties: BasicProperties,
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

    pub(crate) async fn ack(self, job_id: &str) -> Result<(), QueueError> {
        Self::settled(job_id, self.acker.ack(Default::default()).await)
    }

    pub(crate) async fn retry(self, job_id: &str) -> Result<(), QueueError> {
        Self::settled(job_id, self.requeue().await)
    }

    async fn requeue(&self) -> Result<bool, lapin::Error> {
        self.acker
            .nack(BasicNackOptions {
                requeue: true,
                multiple: false,
            })
            .await
    }

    pub(crate) async fn dead_letter(
        self,
        job_id: &str,
        attempt: u32,
        reason: &str,
    ) -> Result<(), QueueError> {
        if !self.acker.usable() {
            // Its channel is gone: the broker has put it back already.
            return Err(Self::lost(job_id, None));
        }
        let mut headers = self.properties.headers().clone().unwrap_or_default();
        let reason = codec::truncate(reason, codec::MAX_REASON_BYTES);
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
