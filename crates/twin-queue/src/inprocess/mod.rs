//! The in-process job queue for the embedded single-machine mode (`twin serve`, no
//! broker): the same contract as RabbitMQ within one process. Bounded (publishers wait
//! for room, then get `Full`), at-least-once (an unsettled delivery goes back to the
//! queue when retried or dropped), with the delivery limit and a dead-letter list that
//! keeps the reason.
//!
//! Durable when `queue.inprocess_dir` is set (`twin serve` sets it under its data
//! directory): every accepted job is in the journal ([`journal`], redb, fsync before
//! the publish returns) until it is settled, and the jobs found there at start are
//! delivered again, with their attempt counts. Without a directory it keeps jobs in memory
//! only, and the job-status store says what that costs: when it is attached at start, the
//! jobs it still lists as queued and the journal does not hold are marked failed ("lost at
//! restart"), so no producer waits forever on them.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use twin_core::clock::now_ms;
use twin_core::config::QueueConfig;
use twin_core::job::EmbedJob;

use crate::backend::{ConsumerBackend, QueueBackend, QueueDepth};
use crate::codec::{self, decode_job};
use crate::dead::{DeadLetter, DeadReason};
use crate::delivery::{Delivery, Settle};
use crate::error::QueueError;
use crate::reason::{truncate, MAX_REASON_BYTES};
use crate::status::{JobRecord, JobStore, StatusFeed};
use journal::Journal;

mod journal;

/// Dead letters kept in memory; older ones are dropped (their status stays failed).
const DEAD_CAPACITY: usize = 10_000;

/// The in-process queue. Cheap to clone; clones share the queue.
#[derive(Clone)]
pub struct InProcessQueue {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for InProcessQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessQueue")
            .field("capacity", &self.inner.capacity)
            .field("delivery_limit", &self.inner.delivery_limit)
            .finish()
    }
}

struct Inner {
    state: Mutex<State>,
    ready_signal: Notify,
    space_signal: Notify,
    capacity: usize,
    delivery_limit: u32,
    max_message_bytes: usize,
    publish_timeout: Duration,
    jobs: OnceLock<JobStore>,
    /// Where accepted jobs stay until settled; `None`: memory only.
    journal: Option<Journal>,
    /// Jobs read back from the journal at start (their ids: not lost at restart).
    recovered: HashSet<String>,
}

#[derive(Default)]
struct State {
    ready: VecDeque<Message>,
    in_flight: usize,
    consumers: u32,
    dead: VecDeque<DeadLetter>,
    closed: bool,
    /// Jobs ever accepted; the job store must be attached before the first.
    accepted: u64,
    /// Publishes holding room while their job is written to the journal.
    reserved: usize,
    /// The next job's journal key (acceptance order).
    next_seq: u64,
}

#[derive(Debug)]
struct Message {
    /// Its key in the journal.
    seq: u64,
    job_id: String,
    body: Vec<u8>,
    /// Times it came back unsettled (retry or drop); above the limit it is dead.
    returns: u32,
    deliveries: u32,
}

enum Outcome {
    Ack,
    Return,
    Dead(String),
}

impl InProcessQueue {
    /// The queue `config` describes: capacity, delivery limit and size limit, and, when
    /// `queue.inprocess_dir` is set, the journal there with the jobs it still holds ready
    /// for delivery. Blocking (the journal is read): call it at start.
    pub fn open(config: &QueueConfig) -> Result<Self, QueueError> {
        let mut state = State::default();
        let mut recovered = HashSet::new();
        let journal = if config.inprocess_dir.as_os_str().is_empty() {
            None
        } else {
            let (journal, stored) = Journal::open(&config.inprocess_dir)?;
            if !stored.is_empty() {
                tracing::info!(jobs = stored.len(), dir = %config.inprocess_dir.display(), "jobs from before the restart are queued again");
            }
            for job in stored {
                state.next_seq = state.next_seq.max(job.seq + 1);
                recovered.insert(job.job_id.clone());
                state.ready.push_back(Message {
                    seq: job.seq,
                    job_id: job.job_id,
                    body: job.body,
                    returns: job.returns,
                    deliveries: job.deliveries,
                });
            }
            Some(journal)
        };
        Ok(Self {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                ready_signal: Notify::new(),
                space_signal: Notify::new(),
                capacity: config.inprocess_capacity.max(1),
                delivery_limit: config.delivery_limit,
                max_message_bytes: config.max_message_bytes,
                publish_timeout: Duration::from_millis(config.confirm_timeout_ms),
                jobs: OnceLock::new(),
                journal,
                recovered,
            }),
        })
    }

    /// Whether accepted jobs survive the process (a journal directory is set).
    pub fn is_durable(&self) -> bool {
        self.inner.journal.is_some()
    }

    /// Adds a body; waits up to `queue.confirm_timeout_ms` for room, then `Full`. With a
    /// journal, returns once the job is on disk.
    async fn publish_body(&self, job_id: &str, body: Vec<u8>) -> Result<(), QueueError> {
        codec::check_size(job_id, body.len(), self.inner.max_message_bytes)?;
        let deadline = tokio::time::Instant::now() + self.inner.publish_timeout;
        // Hold room first, so that a job on disk always has its place in the queue.
        let seq = loop {
            let room = self.inner.space_signal.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut state = self.inner.lock();
                if state.closed {
                    return Err(QueueError::Closed);
                }
                if state.ready.len() + state.in_flight + state.reserved < self.inner.capacity {
                    state.reserved += 1;
                    state.next_seq += 1;
                    break state.next_seq - 1;
                }
            }
            if tokio::time::timeout_at(deadline, room).await.is_err() {
                return Err(QueueError::Full {
                    capacity: self.inner.capacity,
                });
            }
        };
        if let Some(journal) = &self.inner.journal {
            if let Err(error) = journal.put(seq, job_id, &body).await {
                self.inner.lock().reserved -= 1;
                self.inner.space_signal.notify_one();
                return Err(error);
            }
        }
        let mut state = self.inner.lock();
        state.reserved -= 1;
        state.ready.push_back(Message {
            seq,
            job_id: job_id.to_owned(),
            body,
            returns: 0,
            deliveries: 0,
        });
        state.accepted += 1;
        drop(state);
        self.inner.ready_signal.notify_one();
        Ok(())
    }

    /// Attaches the job store, before anything is published: every job it still lists
    /// as queued was lost with the previous process, and is marked failed.
    async fn attach(&self, store: JobStore) -> Result<(), QueueError> {
        if self.inner.lock().accepted > 0 {
            return Err(QueueError::Config(
                "attach the job store to the in-process queue before publishing".into(),
            ));
        }
        if self.inner.jobs.set(store.clone()).is_err() {
            return Err(QueueError::Config(
                "a job store is already attached to this queue".into(),
            ));
        }
        let lost = store
            .fail_queued_except(
                &self.inner.recovered,
                "lost at restart: the in-process queue kept no journal (queue.inprocess_dir \
                 is empty), so jobs do not survive a restart; enqueue the image again",
            )
            .await?;
        if lost > 0 {
            tracing::warn!(
                jobs = lost,
                "jobs queued before the restart are marked failed"
            );
        }
        Ok(())
    }

    /// A consumer holding at most `prefetch` unsettled deliveries (0 = unlimited).
    fn new_consumer(&self, prefetch: u16) -> InProcessConsumer {
        self.inner.lock().consumers += 1;
        let permits = if prefetch == 0 {
            Semaphore::MAX_PERMITS
        } else {
            usize::from(prefetch)
        };
        InProcessConsumer {
            inner: self.inner.clone(),
            permits: Arc::new(Semaphore::new(permits)),
            cancelled: false,
        }
    }

    /// Drops every waiting job and dead letter.
    fn clear(&self) {
        let mut state = self.inner.lock();
        if let Some(journal) = &self.inner.journal {
            for message in &state.ready {
                journal.remove(message.seq);
            }
        }
        state.ready.clear();
        state.dead.clear();
        drop(state);
        self.inner.space_signal.notify_waiters();
    }

    /// Refuses further publishes and ends every consumer.
    fn close_now(&self) {
        self.inner.lock().closed = true;
        self.inner.ready_signal.notify_waiters();
        self.inner.space_signal.notify_waiters();
    }
}

#[async_trait]
impl QueueBackend for InProcessQueue {
    fn name(&self) -> &'static str {
        "inprocess"
    }

    fn max_message_bytes(&self) -> usize {
        self.inner.max_message_bytes
    }

    async fn ensure_ready(&self) -> Result<(), QueueError> {
        Ok(())
    }

    async fn publish_many(&self, jobs: &[EmbedJob]) -> Vec<Result<(), QueueError>> {
        let mut results = Vec::with_capacity(jobs.len());
        let mut queued = Vec::new();
        for job in jobs {
            let result = match codec::encode_job(job, self.inner.max_message_bytes) {
                Ok(body) => self.publish_body(&job.job_id, body).await,
                Err(e) => Err(e),
            };
            if result.is_ok() {
                queued.push(JobRecord::queued(job));
            }
            results.push(result);
        }
        if let Some(store) = self.inner.jobs.get() {
            if let Err(e) = store.record(queued).await {
                tracing::warn!(error = %e, "queued jobs not recorded in the job store");
            }
        }
        results
    }

    async fn publish_raw(&self, job_id: &str, body: Vec<u8>) -> Result<(), QueueError> {
        self.publish_body(job_id, body).await
    }

    fn consumer(&self, prefetch: u16) -> Box<dyn ConsumerBackend> {
        Box::new(self.new_consumer(prefetch))
    }

    /// Records `records` in the attached job store (nothing to do without one).
    async fn report(&self, records: Vec<JobRecord>) -> Result<(), QueueError> {
        match self.inner.jobs.get() {
            Some(store) => store.record(records).await,
            None => Ok(()),
        }
    }

    async fn attach_status_store(&self, store: JobStore) -> Result<StatusFeed, QueueError> {
        self.attach(store).await?;
        Ok(StatusFeed::direct())
    }

    fn status_store(&self) -> Option<&JobStore> {
        self.inner.jobs.get()
    }

    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
        Ok(self.inner.lock().dead.iter().take(max).cloned().collect())
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let state = self.inner.lock();
        Ok(QueueDepth {
            ready: state.ready.len() as u64,
            dead: state.dead.len() as u64,
            consumers: state.consumers,
        })
    }

    async fn delete(&self) -> Result<(), QueueError> {
        self.clear();
        Ok(())
    }

    async fn close(&self) {
        self.close_now();
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Settles a delivered message; returns the failed-job record when it died.
    fn finish(&self, mut message: Message, outcome: Outcome) -> Option<JobRecord> {
        let mut state = self.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        let reason = match outcome {
            Outcome::Ack => None,
            Outcome::Return => {
                message.returns += 1;
                if message.returns > self.delivery_limit {
                    Some(DeadReason::DeliveryLimit)
                } else {
                    if let Some(journal) = &self.journal {
                        journal.attempts(message.seq, message.returns, message.deliveries);
                    }
                    state.ready.push_back(message);
                    drop(state);
                    self.ready_signal.notify_one();
                    return None;
                }
            }
            Outcome::Dead(reason) => Some(DeadReason::Rejected(
                truncate(&reason, MAX_REASON_BYTES).to_owned(),
            )),
        };
        // Settled for good: acknowledged, or dead (its failed status goes to the job store).
        if let Some(journal) = &self.journal {
            journal.remove(message.seq);
        }
        let record = reason.map(|reason| {
            let dead = DeadLetter {
                job: decode_job(&message.body, &message.job_id),
                job_id: message.job_id,
                reason,
                attempts: message.deliveries,
                dead_at_ms: now_ms(),
            };
            tracing::warn!(job_id = %dead.job_id, reason = %dead.reason, attempts = dead.attempts, "job dead-lettered");
            let record = dead.to_record();
            if state.dead.len() >= DEAD_CAPACITY {
                state.dead.pop_front();
            }
            state.dead.push_back(dead);
            record
        });
        drop(state);
        self.space_signal.notify_one();
        record
    }
}

/// Consumer side of the in-process queue.
struct InProcessConsumer {
    inner: Arc<Inner>,
    permits: Arc<Semaphore>,
    cancelled: bool,
}

impl std::fmt::Debug for InProcessConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessConsumer")
            .field("cancelled", &self.cancelled)
            .finish()
    }
}

#[async_trait]
impl ConsumerBackend for InProcessConsumer {
    /// The next delivery; `None` once cancelled or the queue closed. Cancel-safe.
    async fn next(&mut self) -> Option<Result<Delivery, QueueError>> {
        if self.cancelled {
            return None;
        }
        let permit = self.permits.clone().acquire_owned().await.ok()?;
        loop {
            let ready = self.inner.ready_signal.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            {
                let mut state = self.inner.lock();
                if state.closed || self.cancelled {
                    return None;
                }
                if let Some(mut message) = state.ready.pop_front() {
                    state.in_flight += 1;
                    drop(state);
                    message.deliveries += 1;
                    if let Some(journal) = &self.inner.journal {
                        journal.attempts(message.seq, message.returns, message.deliveries);
                    }
                    let job = decode_job(&message.body, &message.job_id);
                    let (job_id, attempt) = (message.job_id.clone(), message.deliveries);
                    let settle = InProcessSettle {
                        inner: self.inner.clone(),
                        message: Some(message),
                        _permit: permit,
                    };
                    return Some(Ok(Delivery::new(job, job_id, attempt, Box::new(settle))));
                }
            }
            ready.await;
        }
    }

    /// Stops handing out deliveries; unsettled ones can still be settled.
    async fn cancel(&mut self) {
        self.cancelled = true;
    }

    async fn close(&mut self) {
        self.cancelled = true;
    }
}

impl Drop for InProcessConsumer {
    fn drop(&mut self) {
        let mut state = self.inner.lock();
        state.consumers = state.consumers.saturating_sub(1);
    }
}

/// Settles one in-process delivery; dropping it unsettled returns the job.
struct InProcessSettle {
    inner: Arc<Inner>,
    message: Option<Message>,
    _permit: OwnedSemaphorePermit,
}

impl std::fmt::Debug for InProcessSettle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessSettle")
            .field("message", &self.message.as_ref().map(|m| &m.job_id))
            .finish()
    }
}

#[async_trait]
impl Settle for InProcessSettle {
    async fn ack(mut self: Box<Self>, _job_id: &str) -> Result<(), QueueError> {
        if let Some(message) = self.message.take() {
            self.inner.finish(message, Outcome::Ack);
        }
        Ok(())
    }

    async fn retry(mut self: Box<Self>, _job_id: &str) -> Result<(), QueueError> {
        self.give_back();
        Ok(())
    }

    async fn dead_letter(
        mut self: Box<Self>,
        _job_id: &str,
        _attempt: u32,
        reason: &str,
    ) -> Result<(), QueueError> {
        let Some(message) = self.message.take() else {
            return Ok(());
        };
        let record = self.inner.finish(message, Outcome::Dead(reason.to_owned()));
        if let (Some(record), Some(store)) = (record, self.inner.jobs.get()) {
            if let Err(e) = store.record(vec![record]).await {
                tracing::warn!(error = %e, "failed job status not recorded");
            }
        }
        Ok(())
    }
}

impl InProcessSettle {
    fn give_back(&mut self) {
        if let Some(message) = self.message.take() {
            let record = self.inner.finish(message, Outcome::Return);
            if let (Some(record), Some(store)) = (record, self.inner.jobs.get()) {
                store.record_detached(vec![record]);
            }
        }
    }
}

impl Drop for InProcessSettle {
    fn drop(&mut self) {
        self.give_back();
    }
}
