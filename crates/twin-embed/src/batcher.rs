//! Dynamic micro-batching: requests from many callers wait in one queue; each session
//! thread takes up to `max_batch` images as soon as that many are queued, or whatever is
//! queued once the oldest request has waited `max_wait`, runs them as one ONNX batch and
//! answers every request on its own.
//!
//! Session threads are plain OS threads (ONNX runs block for milliseconds and must not
//! sit on the async executor). Requests are preprocessed before they are queued, so a bad
//! image fails alone and never reaches a batch.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::EmbedError;
use crate::session::ModelSession;

/// Called once with the embeddings of a job's images, in order, or the error.
pub(crate) type Reply = Box<dyn FnOnce(Result<Vec<Vec<f32>>, EmbedError>) + Send>;

/// One caller's request: `count` images stacked in `tensors`.
struct Job {
    tensors: Vec<f32>,
    count: usize,
    enqueued: Instant,
    reply: Reply,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    images: usize,
    closed: bool,
}

/// Counters for health and metrics.
#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    images: AtomicU64,
    failed_batches: AtomicU64,
}

/// A snapshot of the batcher's counters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BatcherStats {
    pub batches: u64,
    pub images: u64,
    pub failed_batches: u64,
    /// Images per ONNX run so far (0 before the first).
    pub mean_batch_size: f64,
}

struct Shared {
    queue: Mutex<Queue>,
    available: Condvar,
    max_batch: usize,
    max_wait: Duration,
    embedding_size: usize,
    counters: Counters,
}

impl Shared {
    /// A poisoned lock only means another thread panicked while holding it; the queue
    /// itself stays consistent (every mutation is a single push or pop), so keep going.
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Blocks until a batch is due; `None` once closed and drained.
    fn next_batch(&self) -> Option<Vec<Job>> {
        let mut queue = self.lock();
        loop {
            let Some(oldest) = queue.jobs.front() else {
                if queue.closed {
                    return None;
                }
                queue = self
                    .available
                    .wait(queue)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                continue;
            };
            let deadline = oldest.enqueued + self.max_wait;
            let now = Instant::now();
            if queue.images >= self.max_batch || now >= deadline || queue.closed {
                let jobs = self.take(&mut queue);
                if !queue.jobs.is_empty() {
                    // More waits: let another session thread start on it.
                    self.available.notify_one();
                }
                return Some(jobs);
            }
            queue = self
                .available
                .wait_timeout(queue, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// Whole jobs from the front, up to `max_batch` images (a larger job goes alone).
    fn take(&self, queue: &mut Queue) -> Vec<Job> {
        let mut jobs = Vec::new();
        let mut images = 0;
        while let Some(front) = queue.jobs.front() {
            if !jobs.is_empty() && images + front.count > self.max_batch {
                break;
            }
            let Some(job) = queue.jobs.pop_front() else {
                break;
            };
            images += job.count;
            queue.images -= job.count;
            jobs.push(job);
            if images >= self.max_batch {
                break;
            }
        }
        jobs
    }
}

/// The queue and its session threads. Dropping it finishes queued work, then stops.
pub(crate) struct Batcher {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Batcher {
    pub(crate) fn start(
        sessions: Vec<ModelSession>,
        max_batch: usize,
        max_wait: Duration,
        embedding_size: usize,
    ) -> Result<Self, EmbedError> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            available: Condvar::new(),
            max_batch: max_batch.max(1),
            max_wait,
            embedding_size,
            counters: Counters::default(),
        });
        let mut threads = Vec::with_capacity(sessions.len());
        for (index, session) in sessions.into_iter().enumerate() {
            let shared = Arc::clone(&shared);
            let thread = std::thread::Builder::new()
                .name(format!("twin-embed-{index}"))
                .spawn(move || session_loop(&shared, session))
                .map_err(|e| EmbedError::Session(format!("cannot start a session thread: {e}")))?;
            threads.push(thread);
        }
        Ok(Self { shared, threads })
    }

    /// Queues `count` images; `reply` is called from a session thread (or right here
    /// when the batcher is closed).
    pub(crate) fn submit(&self, tensors: Vec<f32>, count: usize, reply: Reply) {
        let mut queue = self.shared.lock();
        if queue.closed {
            drop(queue);
            reply(Err(EmbedError::Closed));
            return;
        }
        let was_empty = queue.jobs.is_empty();
        queue.jobs.push_back(Job {
            tensors,
            count,
            enqueued: Instant::now(),
            reply,
        });
        queue.images += count;
        if was_empty || queue.images >= self.shared.max_batch {
            self.shared.available.notify_one();
        }
    }

    pub(crate) fn max_batch(&self) -> usize {
        self.shared.max_batch
    }

    pub(crate) fn stats(&self) -> BatcherStats {
        let c = &self.shared.counters;
        let (batches, images) = (
            c.batches.load(Ordering::Relaxed),
            c.images.load(Ordering::Relaxed),
        );
        BatcherStats {
            batches,
            images,
            failed_batches: c.failed_batches.load(Ordering::Relaxed),
            mean_batch_size: if batches == 0 {
                0.0
            } else {
                images as f64 / batches as f64
            },
        }
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.available.notify_all();
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!("an embedding session thread panicked");
            }
        }
    }
}

fn session_loop(shared: &Shared, mut session: ModelSession) {
    let mut input = Vec::new();
    while let Some(jobs) = shared.next_batch() {
        let count: usize = jobs.iter().map(|j| j.count).sum();
        input.clear();
        for job in &jobs {
            input.extend_from_slice(&job.tensors);
        }
        let result = session.run(&input, count);
        let counters = &shared.counters;
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters.images.fetch_add(count as u64, Ordering::Relaxed);
        match result {
            Ok(output) => {
                let mut rows = output.chunks_exact(shared.embedding_size);
                for job in jobs {
                    let embeddings = rows.by_ref().take(job.count).map(<[f32]>::to_vec);
                    (job.reply)(Ok(embeddings.collect()));
                }
            }
            Err(error) => {
                counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%error, images = count, "embedding batch failed");
                for job in jobs {
                    (job.reply)(Err(error.clone()));
                }
            }
        }
    }
}
