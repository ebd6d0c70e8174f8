//! Reading a dead-lettered message back: its job and why it died, whether a worker gave
//! it up (our headers) or the broker did (`x-death`, `x-first-death-reason`).

use lapin::types::{AMQPValue, FieldTable};

use super::topology::{self, header_text, header_u64};
use crate::codec;
use crate::dead::{DeadLetter, DeadReason};

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
    let (job, job_id) = topology::read_job(delivery);
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
