//! Job status, its own contract beside the queue's: what became of a job
//! ([`JobRecord`], merged so that events may arrive twice or out of order), where this
//! process keeps the records ([`JobStore`]), and the task that feeds a backend's
//! outcomes into the store ([`StatusFeed`]). The gateway answers `GetJob` from here.

pub mod feed;
pub mod record;
pub mod store;

pub use feed::StatusFeed;
pub use record::{JobRecord, JobState};
pub use store::JobStore;
