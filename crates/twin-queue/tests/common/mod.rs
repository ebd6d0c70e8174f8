//! The integration tests' helpers live in `twin_queue::testing` (shared with the
//! worker's fault tests).
#![allow(unused_imports)]

pub use twin_queue::testing::{
    job, maybe_delivery, next_delivery, rabbit_config, within, BrokerRestart,
    QueueCleanup as Cleanup, Relay,
};
