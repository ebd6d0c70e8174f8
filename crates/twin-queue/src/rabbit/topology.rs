//! The RabbitMQ topology twin declares at every (re)connect, idempotently:
//!
//! ```text
//!  producers ──▶ <queue>            quorum, durable, x-delivery-limit, x-overflow reject-publish,
//!                  │                 DLX <queue>.dlx with x-dead-letter-strategy at-least-once
//!                  │ dead-lettered (by the broker: delivery limit; by a worker: poison)
//!                  ▼
//!               <queue>.dlx  (fanout) ──▶ <queue>.dead        classic, durable: kept for operators
//!                  │
//!                  ▼ exchange binding
//!               <queue>.events (fanout) ──▶ <queue>.status.<feed>   quorum, durable, bounded
//!                  ▲
//!  workers ────────┘ job-status records (done) as JSON
//! ```
//!
//! The dead-letter queue is a classic queue on purpose: RabbitMQ 4 gives quorum queues
//! a default delivery limit of 20, which would silently drop dead letters that an
//! operator inspects (gets and requeues) often. Only arguments that RabbitMQ 3.10 and
//! 4.x both understand are used.

use lapin::options::{
    ExchangeBindOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

use crate::error::QueueError;

/// Longest AMQP name (a short string).
const MAX_NAME: usize = 255;
/// Status events kept for a status feed nobody reads, before the oldest are dropped.
const STATUS_MAX_LENGTH: i64 = 1_000_000;
/// Bytes kept in a status feed (dead-lettered job copies carry their image).
const STATUS_MAX_BYTES: i64 = 1 << 30;

/// The names of every queue and exchange of one job queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueNames {
    /// Embed jobs (`queue.queue`).
    pub queue: String,
    /// Dead-letter exchange: `<queue>.dlx`.
    pub dead_letter_exchange: String,
    /// Dead-letter queue: `<queue>.dead`.
    pub dead_letter_queue: String,
    /// Status events exchange: `<queue>.events`.
    pub events_exchange: String,
    /// This process's status feed: `<queue>.status.<queue.status_feed>`.
    pub status_queue: String,
}

impl QueueNames {
    /// Names derived from the job queue's name and the status feed's name.
    pub fn new(queue: &str, status_feed: &str) -> Result<Self, QueueError> {
        if queue.is_empty() || status_feed.is_empty() {
            return Err(QueueError::Config(
                "queue.queue and queue.status_feed must not be empty".into(),
            ));
        }
        let names = Self {
            queue: queue.to_owned(),
            dead_letter_exchange: format!("{queue}.dlx"),
            dead_letter_queue: format!("{queue}.dead"),
            events_exchange: format!("{queue}.events"),
            status_queue: format!("{queue}.status.{status_feed}"),
        };
        if names.status_queue.len() > MAX_NAME {
            return Err(QueueError::Config(format!(
                "queue name {:?} is too long: with its suffixes it must fit in {MAX_NAME} bytes",
                names.status_queue
            )));
        }
        Ok(names)
    }
}

/// An AMQP short string from a name checked by [`QueueNames::new`].
pub(crate) fn short(name: &str) -> ShortString {
    ShortString::try_new(name)
        .unwrap_or_else(|_| ShortString::from(crate::reason::truncate(name, MAX_NAME)))
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in entries {
        table.insert(short(key), value.clone());
    }
    table
}

/// Arguments of the embed-jobs queue.
pub(crate) fn job_queue_arguments(names: &QueueNames, delivery_limit: u32) -> FieldTable {
    table(&[
        ("x-queue-type", text("quorum")),
        (
            "x-delivery-limit",
            AMQPValue::LongLongInt(i64::from(delivery_limit)),
        ),
        ("x-dead-letter-exchange", text(&names.dead_letter_exchange)),
        ("x-dead-letter-strategy", text("at-least-once")),
        // At-least-once dead-lettering needs it; and a full queue should refuse (nack)
        // new jobs rather than drop old ones.
        ("x-overflow", text("reject-publish")),
    ])
}

/// Declares the whole topology; safe to repeat.
pub(crate) async fn declare(
    channel: &Channel,
    names: &QueueNames,
    delivery_limit: u32,
) -> Result<(), QueueError> {
    let durable_exchange = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    for exchange in [&names.dead_letter_exchange, &names.events_exchange] {
        channel
            .exchange_declare(
                short(exchange),
                ExchangeKind::Fanout,
                durable_exchange,
                FieldTable::default(),
            )
            .await
            .map_err(|e| declare_error("exchange", exchange, &e))?;
    }
    channel
        .exchange_bind(
            short(&names.events_exchange),
            short(&names.dead_letter_exchange),
            ShortString::from(""),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| declare_error("exchange binding", &names.events_exchange, &e))?;

    let queues = [
        (
            &names.dead_letter_queue,
            table(&[("x-queue-type", text("classic"))]),
            &names.dead_letter_exchange,
        ),
        (
            &names.status_queue,
            table(&[
                ("x-queue-type", text("quorum")),
                ("x-max-length", AMQPValue::LongLongInt(STATUS_MAX_LENGTH)),
                (
                    "x-max-length-bytes",
                    AMQPValue::LongLongInt(STATUS_MAX_BYTES),
                ),
                ("x-overflow", text("drop-head")),
            ]),
            &names.events_exchange,
        ),
    ];
    for (queue, arguments, exchange) in queues {
        channel
            .queue_declare(short(queue), QueueDeclareOptions::durable(), arguments)
            .await
            .map_err(|e| declare_error("queue", queue, &e))?;
        channel
            .queue_bind(
                short(queue),
                short(exchange),
                ShortString::from(""),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| declare_error("queue binding", queue, &e))?;
    }
    channel
        .queue_declare(
            short(&names.queue),
            QueueDeclareOptions::durable(),
            job_queue_arguments(names, delivery_limit),
        )
        .await
        .map_err(|e| declare_error("queue", &names.queue, &e))?;
    Ok(())
}

/// A refused declaration is a topology problem (needs a person); a broken connection is
/// not.
fn declare_error(what: &str, name: &str, error: &lapin::Error) -> QueueError {
    if error.is_amqp_soft_error() || error.is_amqp_hard_error() {
        QueueError::Topology(format!(
            "cannot declare {what} {name:?}: {error}; if it exists with other arguments \
             (e.g. another delivery limit), delete it or choose another queue.queue"
        ))
    } else {
        QueueError::Unavailable(format!("declaring {what} {name:?}: {error}"))
    }
}

/// An integer header of any AMQP integer type.
pub(crate) fn header_u64(headers: Option<&FieldTable>, key: &str) -> Option<u64> {
    let value = headers?.inner().get(key)?;
    as_u64(value)
}

pub(crate) fn as_u64(value: &AMQPValue) -> Option<u64> {
    match value {
        AMQPValue::ShortShortInt(v) => u64::try_from(*v).ok(),
        AMQPValue::ShortShortUInt(v) => Some(u64::from(*v)),
        AMQPValue::ShortInt(v) => u64::try_from(*v).ok(),
        AMQPValue::ShortUInt(v) => Some(u64::from(*v)),
        AMQPValue::LongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongUInt(v) => Some(u64::from(*v)),
        AMQPValue::LongLongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::Timestamp(v) => Some(*v),
        _ => None,
    }
}

/// A delivered message's job, and its job id: the message id, or the decoded job's
/// when the message has none.
pub(crate) fn read_job(
    delivery: &lapin::message::Delivery,
) -> (
    Result<twin_core::job::EmbedJob, crate::error::DecodeError>,
    String,
) {
    let message_id = delivery
        .properties
        .message_id()
        .as_ref()
        .map(|id| id.as_str().to_owned())
        .unwrap_or_default();
    let job = crate::codec::decode_job(&delivery.data, &message_id);
    let job_id = match (&job, message_id.is_empty()) {
        (Ok(job), true) => job.job_id.clone(),
        _ => message_id,
    };
    (job, job_id)
}

/// A text header (long or short string).
pub(crate) fn header_text(headers: Option<&FieldTable>, key: &str) -> Option<String> {
    as_text(headers?.inner().get(key)?)
}

pub(crate) fn as_text(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// The delivery number of a message from its headers: 1 + the broker's count of
/// earlier deliveries (`x-delivery-count`, RabbitMQ 3.x; `x-acquired-count`, 4.x).
pub(crate) fn attempt_from_headers(headers: Option<&FieldTable>) -> u32 {
    let earlier = header_u64(headers, "x-delivery-count")
        .max(header_u64(headers, "x-acquired-count"))
        .unwrap_or(0);
    u32::try_from(earlier.saturating_add(1)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_queue() {
        let names = QueueNames::new("twin.embed", "gateway").expect("names");
        assert_eq!(names.dead_letter_queue, "twin.embed.dead");
        assert_eq!(names.dead_letter_exchange, "twin.embed.dlx");
        assert_eq!(names.status_queue, "twin.embed.status.gateway");
        assert!(QueueNames::new(&"q".repeat(250), "gateway").is_err());
        assert!(QueueNames::new("", "gateway").is_err());
    }

    #[test]
    fn job_queue_is_quorum_with_explicit_limit_and_safe_dead_lettering() {
        let names = QueueNames::new("q", "gateway").expect("names");
        let args = job_queue_arguments(&names, 7);
        let get = |k: &str| args.inner().get(k).cloned();
        assert_eq!(
            get("x-queue-type").as_ref().and_then(as_text).as_deref(),
            Some("quorum")
        );
        assert_eq!(get("x-delivery-limit").as_ref().and_then(as_u64), Some(7));
        assert_eq!(
            get("x-dead-letter-strategy")
                .as_ref()
                .and_then(as_text)
                .as_deref(),
            Some("at-least-once")
        );
        assert_eq!(
            get("x-overflow").as_ref().and_then(as_text).as_deref(),
            Some("reject-publish")
        );
        assert_eq!(
            get("x-dead-letter-exchange")
                .as_ref()
                .and_then(as_text)
                .as_deref(),
            Some("q.dlx")
        );
    }

    #[test]
    fn attempt_counts_from_one() {
        assert_eq!(attempt_from_headers(None), 1);
        let headers = table(&[("x-delivery-count", AMQPValue::LongLongInt(2))]);
        assert_eq!(attempt_from_headers(Some(&headers)), 3);
        let headers = table(&[("x-acquired-count", AMQPValue::LongLongInt(4))]);
        assert_eq!(attempt_from_headers(Some(&headers)), 5);
    }
}
