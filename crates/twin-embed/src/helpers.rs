//! The helper threads: one pinned to each core. The express lane and `preprocess_many`
//! run on them. After a lone caller's job they can linger: keep their cores awake for a
//! short while, so that the next request finds them running.
//!
//! Why pinned: a job spread over the cores (a verification pair on two sessions) waits
//! for its slowest share, and a thread woken while the other cores are busy for a few
//! microseconds is queued behind whatever runs where it woke — on a 2-core VM, often
//! the other share's 1 ms inference (`perf sched` showed the second share waiting
//! 1.5 ms beside an idle core). A helper pinned to its own core starts as soon as that
//! core is free. Where pinning is not possible the helpers simply float.
//!
//! Why linger: on a virtual machine a core that goes idle between requests is handed
//! back to the host, and the first work after it returns runs slowly and late. A bare
//! single-threaded ONNX Runtime loop (Python, 2-core VM) ran one signature with a p99 of
//! 4.4–5.9 ms when it slept 0.8 ms before each run, against 2.3–3.2 ms when it spun for
//! those 0.8 ms instead. A lingering helper spins, yielding to any other thread of the
//! machine on every turn, and takes new work from the pool the moment it is queued.
//! Cores that were kept busy around the clock (spin loops at `SCHED_IDLE`) made the tail
//! worse instead, so the linger is short and only follows a lone caller's job, when the
//! next one is likely to come soon.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::EmbedError;

pub(crate) const HELPER_FAILED: &str = "an embedding helper thread failed (see the error log)";

pub(crate) struct Helpers {
    pool: rayon::ThreadPool,
    /// How long [`Helpers::linger`] keeps the cores awake; zero: not at all.
    linger: Duration,
    /// Lingers over so far, one per helper per [`Helpers::linger`].
    lingers_over: Arc<AtomicUsize>,
}

impl Helpers {
    /// One helper thread per core the process may use, each pinned to its core.
    pub(crate) fn start(linger: Duration) -> Result<Self, EmbedError> {
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let count = match cores.len() {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(count)
            .thread_name(|index| format!("twin-embed-helper-{index}"))
            .start_handler(move |index| {
                if let Some(core) = cores.get(index) {
                    if !core_affinity::set_for_current(*core) {
                        tracing::debug!(helper = index, core = core.id, "helper thread not pinned");
                    }
                }
            })
            .panic_handler(|_| tracing::error!("{HELPER_FAILED}: it panicked"))
            .build()
            .map_err(|e| EmbedError::Session(format!("cannot start the helper threads: {e}")))?;
        Ok(Self {
            pool,
            linger,
            lingers_over: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Runs `op` on the helpers and waits for it; from a helper it runs in place, and
    /// rayon spreads its parallel iterators over the others.
    pub(crate) fn install<R: Send>(&self, op: impl FnOnce() -> R + Send) -> R {
        self.pool.install(op)
    }

    /// Runs `op` on a helper, without waiting.
    pub(crate) fn spawn(&self, op: impl FnOnce() + Send + 'static) {
        self.pool.spawn(op);
    }

    /// Every helper spins for the configured time unless work reaches the pool first
    /// (then it stops spinning and runs it: a new express job starts on cores that never
    /// went idle) or `busy` says the machine has other work (then the cores are awake
    /// anyway, and a spinner would only take time from that work).
    pub(crate) fn linger(&self, busy: impl Fn() -> bool + Send + Sync + 'static) {
        if self.linger.is_zero() {
            return;
        }
        let until = Instant::now() + self.linger;
        let lingers_over = Arc::clone(&self.lingers_over);
        self.pool.spawn_broadcast(move |_| {
            while Instant::now() < until && !busy() {
                if let Some(rayon::Yield::Executed) = rayon::yield_now() {
                    break;
                }
                // Nothing queued: give the core to any other runnable thread (a gateway
                // thread woken by the next request) before looking again.
                std::thread::yield_now();
            }
            lingers_over.fetch_add(1, Ordering::Relaxed);
        });
    }

    #[cfg(test)]
    fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits until `expected` lingers are over, for at most 20 s (a linger that ignores
    /// what should stop it runs for 600 s); how many were over by then.
    fn lingers_over(helpers: &Helpers, expected: usize) -> usize {
        let start = Instant::now();
        let over = || helpers.lingers_over.load(Ordering::Relaxed);
        while over() < expected && start.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(5));
        }
        over()
    }

    #[test]
    fn lingering_helpers_run_new_work_and_stop_lingering() {
        let helpers = Arc::new(Helpers::start(Duration::from_secs(600)).expect("helpers"));
        helpers.linger(|| false);
        // A job for every helper: each must take it from inside its linger, not after it.
        let (done, finished) = std::sync::mpsc::channel();
        let pool = Arc::clone(&helpers);
        std::thread::spawn(move || {
            let ran = AtomicUsize::new(0);
            pool.pool.broadcast(|_| ran.fetch_add(1, Ordering::Relaxed));
            let _ = done.send(ran.into_inner());
        });
        let ran = finished
            .recv_timeout(Duration::from_secs(60))
            .expect("the lingering helpers did not take new work within 60 s");
        assert_eq!(ran, helpers.threads());
        assert_eq!(
            lingers_over(&helpers, helpers.threads()),
            helpers.threads(),
            "every helper took the new job and stopped lingering, long before its 600 s"
        );
    }

    #[test]
    fn a_linger_ends_on_its_own_or_when_other_work_runs() {
        let helpers = Helpers::start(Duration::from_millis(20)).expect("helpers");
        helpers.linger(|| false);
        let threads = helpers.threads();
        assert_eq!(
            lingers_over(&helpers, threads),
            threads,
            "20 ms lingers end"
        );

        let helpers = Helpers::start(Duration::from_secs(600)).expect("helpers");
        helpers.linger(|| true);
        assert_eq!(
            lingers_over(&helpers, threads),
            threads,
            "no linger while other work runs"
        );
    }

    #[test]
    fn a_zero_linger_spawns_nothing() {
        let helpers = Helpers::start(Duration::ZERO).expect("helpers");
        helpers.linger(|| false);
        // Jobs run in order on each helper: a linger would be over before this job.
        helpers.pool.broadcast(|_| ());
        assert_eq!(helpers.lingers_over.load(Ordering::Relaxed), 0);
    }
}
