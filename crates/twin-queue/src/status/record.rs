//! What became of a job: its record (queued, done with point id, failed with reason)
//! and the rule that merges two views of the same job, so that status events may
//! arrive twice or out of order and still settle on the truth.

use serde::{Deserialize, Serialize};
use twin_core::clock::now_ms;
use twin_core::job::EmbedJob;

use crate::reason::{truncate, MAX_REASON_BYTES};

/// The state of a job. Terminal states win over `Queued`, and `Done` wins over
/// `Failed`: a stored point is the truth even if a copy of the job was dead-lettered
/// (e.g. a job replayed from the dead-letter queue that then succeeded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Confirmed by the queue, waiting for or in a worker.
    Queued,
    /// The point is stored.
    Done,
    /// The job was dead-lettered; `error` says why.
    Failed,
}

impl JobState {
    fn rank(self) -> u8 {
        match self {
            JobState::Queued => 0,
            JobState::Failed => 1,
            JobState::Done => 2,
        }
    }

    /// True for `Done` and `Failed`.
    pub fn is_terminal(self) -> bool {
        self != JobState::Queued
    }
}

/// One job's status, as kept by the [`crate::status::JobStore`] and carried by status events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub job_id: String,
    pub state: JobState,
    /// The tenant of the key that enqueued it; empty for the default tenant. Only keys of
    /// this tenant can read the record.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tenant: String,
    #[serde(default)]
    pub subject_id: String,
    #[serde(default)]
    pub model_id: String,
    /// The point the job produces (deterministic, known at enqueue).
    #[serde(default)]
    pub point_id: String,
    /// For `Failed`: why.
    #[serde(default)]
    pub error: String,
    /// Deliveries so far (1 on first delivery; 0 while never delivered).
    #[serde(default)]
    pub attempts: u32,
    /// Ms since the Unix epoch; 0 = unknown.
    #[serde(default)]
    pub enqueued_at_ms: u64,
    /// Last status change, ms since the Unix epoch.
    #[serde(default)]
    pub updated_at_ms: u64,
}

impl JobRecord {
    fn from_job(job: &EmbedJob, state: JobState, error: &str, attempts: u32) -> Self {
        let now = now_ms();
        let enqueued = job.enqueued_at_ms;
        Self {
            job_id: job.job_id.clone(),
            state,
            tenant: job.tenant.clone(),
            subject_id: job.subject_id.clone(),
            model_id: job.model_id.clone(),
            point_id: job.point_id().to_string(),
            error: truncate(error, MAX_REASON_BYTES).to_owned(),
            attempts,
            enqueued_at_ms: if enqueued == 0 { now } else { enqueued },
            updated_at_ms: now,
        }
    }

    /// The job was accepted by the queue.
    pub fn queued(job: &EmbedJob) -> Self {
        Self::from_job(job, JobState::Queued, "", 0)
    }

    /// The job's point is stored, after `attempts` deliveries.
    pub fn done(job: &EmbedJob, attempts: u32) -> Self {
        Self::from_job(job, JobState::Done, "", attempts)
    }

    /// The job was given up for `reason` after `attempts` deliveries.
    pub fn failed(job: &EmbedJob, reason: &str, attempts: u32) -> Self {
        Self::from_job(job, JobState::Failed, reason, attempts)
    }

    /// A job that failed before its body could be read (e.g. not protobuf): only the
    /// message id is known.
    pub fn failed_unread(job_id: &str, reason: &str, attempts: u32) -> Self {
        Self {
            job_id: job_id.to_owned(),
            state: JobState::Failed,
            tenant: String::new(),
            subject_id: String::new(),
            model_id: String::new(),
            point_id: String::new(),
            error: truncate(reason, MAX_REASON_BYTES).to_owned(),
            attempts,
            enqueued_at_ms: 0,
            updated_at_ms: now_ms(),
        }
    }

    /// Folds another view of the same job into this one. Commutative in the state
    /// it settles on: the higher-ranked state wins (Done > Failed > Queued), empty
    /// fields are filled from the other view, attempts and update time take the maximum.
    pub fn merge(&mut self, other: &JobRecord) {
        let other_wins = other.state.rank() > self.state.rank()
            || (other.state == self.state && other.updated_at_ms > self.updated_at_ms);
        if other_wins {
            self.state = other.state;
            if !other.error.is_empty() || other.state == JobState::Done {
                self.error.clone_from(&other.error);
            }
        }
        fill(&mut self.tenant, &other.tenant);
        fill(&mut self.subject_id, &other.subject_id);
        fill(&mut self.model_id, &other.model_id);
        fill(&mut self.point_id, &other.point_id);
        if self.state == JobState::Failed {
            fill(&mut self.error, &other.error);
        }
        self.attempts = self.attempts.max(other.attempts);
        self.enqueued_at_ms = match (self.enqueued_at_ms, other.enqueued_at_ms) {
            (0, b) => b,
            (a, 0) => a,
            (a, b) => a.min(b),
        };
        self.updated_at_ms = self.updated_at_ms.max(other.updated_at_ms);
    }
}

fn fill(into: &mut String, from: &str) {
    if into.is_empty() && !from.is_empty() {
        from.clone_into(into);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> EmbedJob {
        EmbedJob {
            job_id: "4b0b7a7e-1d1c-4b51-9a3e-0a8d2f1c9e11".into(),
            subject_id: "alice".into(),
            image_sha256: "ab".repeat(32),
            model_id: "m".into(),
            ..EmbedJob::default()
        }
    }

    #[test]
    fn point_id_is_the_deterministic_one() {
        let job = job();
        let record = JobRecord::queued(&job);
        assert_eq!(
            record.point_id,
            twin_core::ids::point_id("m", "", "alice", &"ab".repeat(32)).to_string()
        );
    }

    #[test]
    fn merge_settles_on_the_same_state_in_any_order() {
        let job = job();
        let queued = JobRecord::queued(&job);
        let mut failed = JobRecord::failed_unread(&job.job_id, "bad image", 2);
        failed.updated_at_ms = queued.updated_at_ms + 1;
        let mut done = JobRecord::done(&job, 3);
        done.updated_at_ms = queued.updated_at_ms + 2;
        let views = [queued, failed, done];
        let orders = [
            [0, 1, 2],
            [2, 1, 0],
            [1, 0, 2],
            [1, 2, 0],
            [0, 2, 1],
            [2, 0, 1],
        ];
        for order in orders {
            let mut merged = views[order[0]].clone();
            merged.merge(&views[order[1]]);
            merged.merge(&views[order[2]]);
            assert_eq!(merged.state, JobState::Done, "order {order:?}");
            assert_eq!(merged.attempts, 3);
            assert_eq!(merged.subject_id, "alice");
            assert!(merged.error.is_empty(), "order {order:?}: {}", merged.error);
        }
    }

    #[test]
    fn failed_fills_metadata_from_queued() {
        let job = job();
        let mut record = JobRecord::failed_unread(&job.job_id, "exhausted", 6);
        record.merge(&JobRecord::queued(&job));
        assert_eq!(record.state, JobState::Failed);
        assert_eq!(record.error, "exhausted");
        assert_eq!(record.model_id, "m");
        assert!(!record.point_id.is_empty());
    }

    #[test]
    fn json_roundtrip() {
        let record = JobRecord::failed(&job(), "bad image: truncated", 1);
        let text = serde_json::to_string(&record).expect("json");
        assert!(text.contains("\"failed\""));
        let back: JobRecord = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, record);
    }
}
