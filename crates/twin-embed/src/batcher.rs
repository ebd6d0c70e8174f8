//! Dynamic micro-batching: requests from many callers wait in one queue; a free session
//! thread takes a batch as soon as the batch *target* is queued, or whatever is queued
//! once the oldest request has waited `max_wait`, runs it as one ONNX run and answers
//! every request on its own.
//!
//! The target adapts to the load: it is the recent peak of outstanding images (queued or
//! running) shared out over the sessions, capped at `max_batch`. One caller at a time
//! gets a target of 1 and never waits for batch-mates that will not come; 32 callers on
//! one session get batches of 32; 32 callers on two sessions keep both busy with 16 each.
//! A fixed "wait for `max_batch` or `max_wait`" would make a lone caller pay `max_wait`
//! on every request and leave all but one session idle whenever the callers are fewer
//! than `max_batch` × sessions. `max_wait` remains the bound on any request's wait.
//!
//! The express lane: when nothing is queued or running, a caller may borrow the idle
//! sessions ([`Batcher::express`]) and run its job itself (the embedder does so on its
//! helper threads) instead of handing it to a session thread and being woken with the
//! answer. On a small machine each hand-off costs a wake-up of an idle thread (measured
//! on the 2-core VM with `perf sched`: 0.11–0.15 ms on average per wake-up, several per
//! request), which a lone caller pays for nothing: there is no one to batch with. With
//! several sessions the caller spreads its images over them (a verification pair: one
//! image per session, on two helper threads). Under load the queue is never empty, so
//! the express lane is never taken and batching works as above.
//!
//! Session threads are plain OS threads (ONNX runs block for milliseconds and must not
//! sit on the async executor). Requests are preprocessed before they are queued, so a bad
//! image fails alone and never reaches a batch.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::EmbedError;
use crate::session::{ModelSession, Prepared};

/// Called once with the embeddings of a job's images, in order, or the error.
pub(crate) type Reply = Box<dyn FnOnce(Result<Vec<Vec<f32>>, EmbedError>) + Send>;

/// One caller's request: its samples (images or texts), prepared.
struct Job {
    tensors: Vec<Prepared>,
    enqueued: Instant,
    reply: Reply,
}

/// How long a peak of outstanding images is remembered: the target follows a drop in
/// load within two windows.
const PEAK_WINDOW: Duration = Duration::from_millis(100);

struct Queue {
    jobs: VecDeque<Job>,
    /// Images queued.
    images: usize,
    /// Images in ONNX runs right now.
    running: usize,
    /// Peak of queued + running in the current and the previous window.
    peak: usize,
    previous_peak: usize,
    window_start: Instant,
    closed: bool,
}

impl Job {
    fn images(&self) -> usize {
        self.tensors.len()
    }
}

impl Queue {
    fn new() -> Self {
        Self {
            jobs: VecDeque::new(),
            images: 0,
            running: 0,
            peak: 0,
            previous_peak: 0,
            window_start: Instant::now(),
            closed: false,
        }
    }

    fn note_outstanding(&mut self, now: Instant) {
        let elapsed = now.duration_since(self.window_start);
        if elapsed >= PEAK_WINDOW {
            // After a quiet spell longer than a whole window, the old peak is stale: the
            // first request back should not wait for batch-mates of long ago.
            self.previous_peak = if elapsed >= PEAK_WINDOW * 2 {
                0
            } else {
                self.peak
            };
            self.peak = 0;
            self.window_start = now;
        }
        self.peak = self.peak.max(self.images + self.running);
    }
}

/// Counters for health and metrics.
#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    images: AtomicU64,
    failed_batches: AtomicU64,
    express: AtomicU64,
}

/// One finished ONNX run, as a [`BatchObserver`] sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchRun {
    /// Images in the run.
    pub images: usize,
    /// Run by the express lane (a lone caller's job on a helper thread) rather than a session
    /// thread.
    pub express: bool,
    pub ok: bool,
    /// Time of the ONNX run itself.
    pub seconds: f64,
}

/// Told of every run, on the thread that ran it (keep it cheap): how the gateway's
/// metrics learn batch sizes without twin-embed knowing of Prometheus.
pub type BatchObserver = Arc<dyn Fn(BatchRun) + Send + Sync>;

/// A snapshot of the batcher's counters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BatcherStats {
    pub batches: u64,
    pub images: u64,
    pub failed_batches: u64,
    /// Runs of the express lane (a lone caller's job on the helper threads), among `batches`.
    pub express_runs: u64,
    /// Images per ONNX run so far (0 before the first).
    pub mean_batch_size: f64,
}

struct Shared {
    queue: Mutex<Queue>,
    available: Condvar,
    max_batch: usize,
    max_wait: Duration,
    sessions: usize,
    /// One per session thread; locked only around a run, so that the express lane can
    /// borrow an idle one.
    slots: Vec<Mutex<ModelSession>>,
    embedding_size: usize,
    counters: Counters,
    observer: OnceLock<BatchObserver>,
    /// Images queued or running, as the queue counts them, readable without its lock.
    outstanding: Arc<AtomicUsize>,
}

impl Shared {
    /// A poisoned lock only means another thread panicked while holding it; the queue
    /// itself stays consistent (every mutation is a single push or pop), so keep going.
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Images a batch waits for: the recent peak of outstanding images per session.
    fn target(&self, queue: &Queue) -> usize {
        (queue.peak.max(queue.previous_peak) / self.sessions).clamp(1, self.max_batch)
    }

    /// Copies the images queued or running to `outstanding`; call it, with the lock held,
    /// wherever that sum changes (a submit, a loan, a finished run).
    fn publish_outstanding(&self, queue: &Queue) {
        self.outstanding
            .store(queue.images + queue.running, Ordering::Relaxed);
    }

    /// Called when a run (session thread) or a loan (express lane) is over, before its
    /// callers are answered, so that answered callers who come straight back are not
    /// counted twice.
    fn finished(&self, images: usize) {
        let mut queue = self.lock();
        queue.running = queue.running.saturating_sub(images);
        self.publish_outstanding(&queue);
    }

    /// One ONNX run of prepared samples, counted and observed.
    fn run(
        &self,
        session: &mut ModelSession,
        samples: &[&Prepared],
        buffer: &mut Vec<f32>,
        express: bool,
    ) -> Result<Vec<f32>, EmbedError> {
        let started = Instant::now();
        let count = samples.len();
        let result = session.run_prepared(samples, buffer);
        self.count_run(BatchRun {
            images: count,
            express,
            ok: result.is_ok(),
            seconds: started.elapsed().as_secs_f64(),
        });
        result
    }

    fn count_run(&self, run: BatchRun) {
        let counters = &self.counters;
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters
            .images
            .fetch_add(run.images as u64, Ordering::Relaxed);
        if !run.ok {
            counters.failed_batches.fetch_add(1, Ordering::Relaxed);
        }
        if run.express {
            counters.express.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(observer) = self.observer.get() {
            observer(run);
        }
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
            if queue.images >= self.target(&queue) || now >= deadline || queue.closed {
                let jobs = self.take(&mut queue);
                queue.running += jobs.iter().map(Job::images).sum::<usize>();
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
            if !jobs.is_empty() && images + front.images() > self.max_batch {
                break;
            }
            let Some(job) = queue.jobs.pop_front() else {
                break;
            };
            images += job.images();
            queue.images -= job.images();
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
        let count = sessions.len();
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::new()),
            available: Condvar::new(),
            max_batch: max_batch.max(1),
            max_wait,
            sessions: count.max(1),
            slots: sessions.into_iter().map(Mutex::new).collect(),
            embedding_size,
            counters: Counters::default(),
            observer: OnceLock::new(),
            outstanding: Arc::new(AtomicUsize::new(0)),
        });
        let mut threads = Vec::with_capacity(count);
        for index in 0..count {
            let shared = Arc::clone(&shared);
            let thread = std::thread::Builder::new()
                .name(format!("twin-embed-{index}"))
                .spawn(move || session_loop(&shared, index))
                .map_err(|e| EmbedError::Session(format!("cannot start a session thread: {e}")))?;
            threads.push(thread);
        }
        Ok(Self { shared, threads })
    }

    /// Queues a job of images, one tensor each; `reply` is called from a session thread
    /// (or right here when the batcher is closed).
    pub(crate) fn submit(&self, tensors: Vec<Prepared>, reply: Reply) {
        let count = tensors.len();
        let mut queue = self.shared.lock();
        if queue.closed {
            drop(queue);
            reply(Err(EmbedError::Closed));
            return;
        }
        let was_empty = queue.jobs.is_empty();
        let now = Instant::now();
        queue.jobs.push_back(Job {
            tensors,
            enqueued: now,
            reply,
        });
        queue.images += count;
        queue.note_outstanding(now);
        self.shared.publish_outstanding(&queue);
        if was_empty || queue.images >= self.shared.target(&queue) {
            self.shared.available.notify_one();
        }
    }

    /// Nothing queued and nothing running (a hint, read without the lock:
    /// [`Batcher::express`] checks again under it).
    pub(crate) fn is_idle(&self) -> bool {
        self.shared.outstanding.load(Ordering::Relaxed) == 0
    }

    /// Lends the idle sessions, up to one per image, to a caller with `images` images
    /// when nothing is queued or running; `None` when the batcher is busy (or a session
    /// is lent already), and the caller should [`Batcher::submit`] instead. The images
    /// count as running until the loan is dropped.
    pub(crate) fn express(&self, images: usize) -> Option<ExpressLoan<'_>> {
        let shared = &*self.shared;
        let mut sessions = Vec::new();
        // From the last slot down: a session thread that wakes for a batch meanwhile
        // takes its own slot and waits for this loan only if it is one of the lent.
        for slot in shared.slots.iter().rev().take(images.max(1)) {
            match slot.try_lock() {
                Ok(session) => sessions.push(session),
                Err(TryLockError::Poisoned(poisoned)) => sessions.push(poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => break,
            }
        }
        if sessions.is_empty() {
            return None;
        }
        let mut queue = shared.lock();
        if queue.closed || !queue.jobs.is_empty() || queue.running > 0 {
            return None;
        }
        queue.running += images;
        queue.note_outstanding(Instant::now());
        shared.publish_outstanding(&queue);
        drop(queue);
        Some(ExpressLoan {
            shared,
            sessions,
            images,
        })
    }

    /// The negation of [`Batcher::is_idle`], detached from the batcher (cheap enough to
    /// poll in a loop).
    pub(crate) fn busy_signal(&self) -> impl Fn() -> bool + Send + Sync + 'static {
        let outstanding = Arc::clone(&self.shared.outstanding);
        move || outstanding.load(Ordering::Relaxed) > 0
    }

    pub(crate) fn max_batch(&self) -> usize {
        self.shared.max_batch
    }

    /// Sets the observer of every run; false when one was set already.
    pub(crate) fn observe(&self, observer: BatchObserver) -> bool {
        self.shared.observer.set(observer).is_ok()
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
            express_runs: c.express.load(Ordering::Relaxed),
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

/// Idle sessions lent to one caller ([`Batcher::express`]); given back when dropped.
pub(crate) struct ExpressLoan<'a> {
    shared: &'a Shared,
    sessions: Vec<MutexGuard<'a, ModelSession>>,
    images: usize,
}

impl ExpressLoan<'_> {
    /// The lent sessions, each to run on its own thread.
    pub(crate) fn runners(&mut self) -> Vec<ExpressRunner<'_>> {
        let shared = self.shared;
        self.sessions
            .iter_mut()
            .map(|session| ExpressRunner { shared, session })
            .collect()
    }
}

impl Drop for ExpressLoan<'_> {
    fn drop(&mut self) {
        self.shared.finished(self.images);
    }
}

/// One lent session.
pub(crate) struct ExpressRunner<'a> {
    shared: &'a Shared,
    session: &'a mut ModelSession,
}

impl ExpressRunner<'_> {
    /// One ONNX run of images, one tensor each: their embeddings, in order.
    pub(crate) fn run(&mut self, tensors: &[Prepared]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let samples: Vec<&Prepared> = tensors.iter().collect();
        let output = self
            .shared
            .run(self.session, &samples, &mut Vec::new(), true)?;
        Ok(output
            .chunks_exact(self.shared.embedding_size)
            .map(<[f32]>::to_vec)
            .collect())
    }
}

fn session_loop(shared: &Shared, index: usize) {
    let mut buffer = Vec::new();
    while let Some(jobs) = shared.next_batch() {
        let count: usize = jobs.iter().map(Job::images).sum();
        let samples: Vec<&Prepared> = jobs.iter().flat_map(|job| &job.tensors).collect();
        // Free unless the express lane borrowed it: then this waits for that loan.
        let result = shared.run(
            &mut shared.slots[index]
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            &samples,
            &mut buffer,
            false,
        );
        shared.finished(count);
        match result {
            Ok(output) => {
                let mut rows = output.chunks_exact(shared.embedding_size);
                for job in jobs {
                    let embeddings = rows.by_ref().take(job.images()).map(<[f32]>::to_vec);
                    (job.reply)(Ok(embeddings.collect()));
                }
            }
            Err(error) => {
                tracing::error!(%error, images = count, "embedding batch failed");
                for job in jobs {
                    (job.reply)(Err(error.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(max_batch: usize, sessions: usize) -> Shared {
        Shared {
            queue: Mutex::new(Queue::new()),
            available: Condvar::new(),
            max_batch,
            max_wait: Duration::from_millis(2),
            sessions,
            slots: Vec::new(),
            embedding_size: 1,
            counters: Counters::default(),
            observer: OnceLock::new(),
            outstanding: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn job(count: usize) -> Job {
        Job {
            tensors: vec![Prepared::Image(Vec::new()); count],
            enqueued: Instant::now(),
            reply: Box::new(|_| {}),
        }
    }

    #[test]
    fn target_shares_the_recent_peak_over_sessions() {
        let s = shared(32, 2);
        let mut q = Queue::new();
        assert_eq!(s.target(&q), 1, "no history: do not wait");
        q.images = 32;
        q.note_outstanding(Instant::now());
        assert_eq!(s.target(&q), 16);
        q.images = 200;
        q.note_outstanding(Instant::now());
        assert_eq!(s.target(&q), 32, "capped at max_batch");
        // One window later the peak still counts; two windows later it is forgotten.
        let start = q.window_start;
        q.images = 1;
        q.note_outstanding(start + PEAK_WINDOW);
        assert_eq!(s.target(&q), 32);
        q.note_outstanding(start + PEAK_WINDOW * 2);
        assert_eq!(s.target(&q), 1);
        // After a long quiet spell the first request does not wait.
        let mut q = Queue::new();
        q.images = 64;
        q.note_outstanding(q.window_start);
        q.images = 1;
        q.note_outstanding(q.window_start + PEAK_WINDOW * 5);
        assert_eq!(s.target(&q), 1);
    }

    #[test]
    fn take_keeps_jobs_whole_and_under_max_batch() {
        let s = shared(8, 1);
        let mut q = Queue::new();
        for count in [3, 4, 2, 20] {
            q.jobs.push_back(job(count));
            q.images += count;
        }
        let first: Vec<usize> = s.take(&mut q).iter().map(Job::images).collect();
        assert_eq!(first, vec![3, 4], "2 more would exceed 8");
        let second: Vec<usize> = s.take(&mut q).iter().map(Job::images).collect();
        assert_eq!(second, vec![2]);
        let oversized: Vec<usize> = s.take(&mut q).iter().map(Job::images).collect();
        assert_eq!(
            oversized,
            vec![20],
            "a job larger than max_batch goes alone"
        );
        assert_eq!(q.images, 0);
    }
}
