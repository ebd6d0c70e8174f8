//! The broker side every part of the backend shares: settings from the configuration,
//! a session (connection + channel, topology declared), and the publisher connection
//! with confirms, opened lazily and replaced when it breaks.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::join_all;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::LongString;
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use tokio::sync::Mutex;
use twin_core::config::{redact_url_password, QueueConfig};

use super::topology::{self, short, QueueNames};
use crate::codec;
use crate::error::QueueError;
use crate::status::JobStore;

/// Heartbeat asked for when the URL names none: a cut network is noticed in ~20 s.
const DEFAULT_HEARTBEAT_S: u16 = 10;
/// Connect timeout used when the URL names none.
const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5_000;

pub(crate) struct Settings {
    uri: AMQPUri,
    pub(crate) redacted_url: String,
    pub(crate) names: QueueNames,
    pub(crate) delivery_limit: u32,
    pub(crate) max_message_bytes: usize,
    confirm_timeout: Duration,
    connect_timeout: Duration,
}

impl Settings {
    pub(crate) fn from_config(config: &QueueConfig) -> Result<Self, QueueError> {
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
    pub(crate) connection: Connection,
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
    pub(crate) publisher: Mutex<Option<Arc<Session>>>,
    pub(crate) jobs: OnceLock<JobStore>,
}

/// One message to publish with a confirm.
pub(crate) struct Outgoing<'a> {
    pub(crate) job_id: &'a str,
    pub(crate) exchange: &'a str,
    pub(crate) routing_key: &'a str,
    pub(crate) body: &'a [u8],
    pub(crate) properties: BasicProperties,
}

pub(crate) fn unavailable(context: &'static str) -> impl FnOnce(lapin::Error) -> QueueError {
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
    pub(crate) async fn publisher(&self) -> Result<Arc<Session>, QueueError> {
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

    pub(crate) async fn publish_confirmed(&self, message: Outgoing<'_>) -> Result<(), QueueError> {
        let (session, confirm) = self.send(&message).await?;
        self.await_confirm(message.job_id, &session, confirm).await
    }

    /// Publishes many messages on one channel and waits for all confirms together.
    pub(crate) async fn publish_all(
        &self,
        messages: Vec<Outgoing<'_>>,
    ) -> Vec<Result<(), QueueError>> {
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
    pub(crate) async fn side_channel(&self) -> Result<Channel, QueueError> {
        let session = self.publisher().await?;
        session
            .connection
            .create_channel()
            .await
            .map_err(unavailable("opening a channel"))
    }
}

pub(crate) fn job_properties(job_id: &str, enqueued_ms: u64) -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type(codec::JOB_CONTENT_TYPE.into())
        .with_type(codec::JOB_MESSAGE_TYPE.into())
        .with_message_id(short(job_id))
        .with_timestamp(enqueued_ms / 1000)
        .with_app_id("twin".into())
}
