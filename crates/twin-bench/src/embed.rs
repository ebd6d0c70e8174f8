//! `twin bench embed`: images per second through the micro-batcher under concurrent
//! callers, against raw ONNX Runtime runs at the same batch size on the same model, with
//! the same provider, session count and thread settings, in the same process and run.
//!
//! Raw: one thread per pool session, each running fixed batches of `b` in a loop.
//! Batched: `c` async callers, each embedding one image at a time through the batcher.
//! The ratio batched(c = 32) / raw(b = 32) is the batcher's overhead; the target is ≥ 0.9.
//! Raw and batched are measured in alternating slices, best slice each, so background
//! load on a shared machine does not favour one side.
//!
//! At concurrency 1 the batched figure pays, per image, the hand-off to a session thread
//! and back with only one of the sessions busy, while the raw side keeps every session
//! busy: the batch target adapts, so a lone caller does not wait for batch-mates, but this
//! benchmark measures the queue (encoded images of a lone caller take the express lane
//! instead, see `twin bench verify`).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde::Serialize;

use twin_embed::{ActiveProvider, Batch, EmbedError, Embedder, ModelSession, PoolSize, Prepared};

/// What to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchOptions {
    /// Batch sizes (raw) and caller counts (batched).
    pub sizes: Vec<usize>,
    /// Measured time per point and side, after a short warm-up.
    pub seconds: f64,
    /// The measured time is split into this many alternating raw / batched slices;
    /// each side reports its best slice.
    pub rounds: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            sizes: vec![1, 8, 32, 64],
            seconds: 3.0,
            rounds: 3,
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchRow {
    /// Raw batch size = number of concurrent batched callers.
    pub size: usize,
    pub raw_ips: f64,
    pub batched_ips: f64,
    /// Images per ONNX run the batcher achieved.
    pub batched_mean_batch: f64,
}

/// The benchmark's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    pub model: String,
    pub model_trained: bool,
    pub provider: ActiveProvider,
    pub pool: PoolSize,
    pub max_batch: usize,
    pub max_wait_us: u64,
    pub seconds_per_point: f64,
    pub rounds: usize,
    pub rows: Vec<BenchRow>,
}

impl BenchReport {
    fn row(&self, size: usize) -> Option<&BenchRow> {
        self.rows.iter().find(|r| r.size == size)
    }

    /// batched(c = 32) / raw(b = 32), when both were measured.
    pub fn ratio(&self) -> Option<f64> {
        self.row(32)
            .filter(|r| r.raw_ips > 0.0)
            .map(|r| r.batched_ips / r.raw_ips)
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "embed benchmark: model {}{}, provider {} ({}), {} session(s) x {} intra-op thread(s), \
             max_batch {}, max_wait {} us, {:.1} s per point in {} alternating slices (best each)",
            self.model,
            if self.model_trained { "" } else { " (UNTRAINED)" },
            self.provider.name,
            self.provider.reason,
            self.pool.sessions,
            self.pool.intra_threads,
            self.max_batch,
            self.max_wait_us,
            self.seconds_per_point,
            self.rounds
        );
        let _ = writeln!(
            out,
            "{:>6} | {:>14} | {:>18} | {:>10} | {:>6}",
            "size", "raw batch img/s", "batched callers img/s", "mean batch", "ratio"
        );
        let _ = writeln!(out, "{}", "-".repeat(69));
        for r in &self.rows {
            let ratio = if r.raw_ips > 0.0 {
                r.batched_ips / r.raw_ips
            } else {
                0.0
            };
            let _ = writeln!(
                out,
                "{:>6} | {:>15.1} | {:>21.1} | {:>10.1} | {:>6.3}",
                r.size, r.raw_ips, r.batched_ips, r.batched_mean_batch, ratio
            );
        }
        out
    }

    /// The one JSON line every twin benchmark ends with.
    pub fn json_line(&self) -> String {
        let mut fields = json_fields("embed", &self.model, &self.provider, &self.pool);
        fields.insert("max_batch".into(), self.max_batch.into());
        for r in &self.rows {
            fields.insert(format!("raw_b{}_ips", r.size), round1(r.raw_ips).into());
            fields.insert(
                format!("batched_c{}_ips", r.size),
                round1(r.batched_ips).into(),
            );
        }
        if let Some(ratio) = self.ratio() {
            fields.insert("ratio".into(), ((ratio * 1000.0).round() / 1000.0).into());
        }
        serde_json::Value::Object(fields).to_string()
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Runs the benchmark on a loaded embedder. Creates its own async runtime for the
/// callers, so call it from synchronous code.
pub fn run_embed_bench(
    embedder: &Embedder,
    options: &BenchOptions,
) -> Result<BenchReport, EmbedError> {
    if embedder.input_kind() != twin_core::manifest::InputKind::Image {
        return Err(EmbedError::InvalidInput(format!(
            "`twin bench embed` feeds synthetic image tensors; model {} takes text (measure \
             it with `twin bench verify --model DIR`)",
            embedder.manifest().name
        )));
    }
    let pool = embedder.pool();
    let seconds = Duration::from_secs_f64(options.seconds.max(0.1));
    let warmup = Duration::from_secs_f64((options.seconds / 5.0).clamp(0.1, 1.0));
    let image = pseudo_image(embedder.tensor_len());

    let mut raw = RawLane::new(embedder)?;
    let callers = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| EmbedError::Session(format!("cannot start the benchmark's runtime: {e}")))?;

    let rounds = options.rounds.max(1);
    let slice = seconds / rounds as u32;
    let mut rows = Vec::new();
    for &size in &options.sizes {
        let size = size.max(1);
        let batch = Batch::Images {
            values: image.repeat(size),
            count: size,
        };
        raw.images_per_second(&batch, warmup)?;
        callers.block_on(batched_images_per_second(embedder, &image, size, warmup))?;

        // Alternate raw and batched slices and keep each one's best, so a burst of
        // other load on the machine does not land on one side only.
        let (mut raw_ips, mut batched_ips) = (0.0f64, 0.0f64);
        let before = embedder.stats();
        for _ in 0..rounds {
            raw_ips = raw_ips.max(raw.images_per_second(&batch, slice)?);
            batched_ips = batched_ips
                .max(callers.block_on(batched_images_per_second(embedder, &image, size, slice))?);
        }
        let after = embedder.stats();
        let runs = after.batches.saturating_sub(before.batches);
        let batched_mean_batch = if runs == 0 {
            0.0
        } else {
            after.images.saturating_sub(before.images) as f64 / runs as f64
        };
        tracing::info!(
            size,
            raw_ips,
            batched_ips,
            batched_mean_batch,
            "embed bench point"
        );
        rows.push(BenchRow {
            size,
            raw_ips,
            batched_ips,
            batched_mean_batch,
        });
    }

    Ok(BenchReport {
        model: embedder.manifest().name.clone(),
        model_trained: embedder.manifest().trained,
        provider: embedder.provider().clone(),
        pool,
        max_batch: embedder.max_batch(),
        max_wait_us: embedder.config().max_wait_us,
        seconds_per_point: options.seconds,
        rounds,
        rows,
    })
}

/// The fields an inference benchmark's JSON line starts with: which benchmark, model,
/// provider and session pool the figures belong to.
pub fn json_fields(
    bench: &str,
    model: &str,
    provider: &ActiveProvider,
    pool: &PoolSize,
) -> serde_json::Map<String, serde_json::Value> {
    let mut fields = serde_json::Map::new();
    fields.insert("bench".into(), bench.into());
    fields.insert("model".into(), model.into());
    fields.insert("provider".into(), provider.name.into());
    fields.insert("sessions".into(), pool.sessions.into());
    fields.insert("intra_threads".into(), pool.intra_threads.into());
    fields
}

/// The raw baseline: standalone sessions of the embedder's model running fixed batches
/// straight through [`ModelSession::run`](ModelSession::run) — no batcher, no
/// preprocessing, no async runtime. `twin bench embed` and `twin bench verify` both
/// measure against it. [`RawLane::new`] has the pool's shape (as many sessions, same
/// provider and intra-op threads); [`RawLane::wide`] is one session with a thread per
/// core, the other way to spend the machine on one model.
pub struct RawLane {
    sessions: Vec<ModelSession>,
    shape: PoolSize,
}

impl std::fmt::Debug for RawLane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawLane")
            .field("shape", &self.shape)
            .finish()
    }
}

impl RawLane {
    /// Sessions shaped like the embedder's pool.
    pub fn new(embedder: &Embedder) -> Result<Self, EmbedError> {
        let shape = embedder.pool();
        Self::shaped(embedder, shape)
    }

    /// One session with an intra-op thread per core; `None` when that is the pool's shape
    /// already.
    pub fn wide(embedder: &Embedder) -> Result<Option<Self>, EmbedError> {
        let shape = PoolSize {
            sessions: 1,
            intra_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        if shape == embedder.pool() {
            return Ok(None);
        }
        Self::shaped(embedder, shape).map(Some)
    }

    fn shaped(embedder: &Embedder, shape: PoolSize) -> Result<Self, EmbedError> {
        let sessions = (0..shape.sessions.max(1))
            .map(|_| embedder.standalone_session(shape.intra_threads))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { sessions, shape })
    }

    /// Sessions and intra-op threads of this lane.
    pub fn shape(&self) -> PoolSize {
        self.shape
    }

    /// Every session runs `batch` back to back on its own thread for `duration`; samples
    /// per second over all sessions.
    pub fn images_per_second(
        &mut self,
        batch: &Batch,
        duration: Duration,
    ) -> Result<f64, EmbedError> {
        let start = Instant::now();
        let deadline = start + duration;
        let size = batch.len();
        let images = self.on_sessions(self.sessions.len(), |_, session| {
            let mut images = 0;
            while Instant::now() < deadline {
                session.run_batch(batch)?;
                images += size;
            }
            Ok(images)
        })?;
        Ok(images.iter().sum::<usize>() as f64 / start.elapsed().as_secs_f64())
    }

    /// The latency of embedding a batch, spread over `spread` of the lane's sessions:
    /// one share each (a pair over two sessions: one sample each), every share run at the
    /// same time; with `spread` = 1, one run of the whole batch on one session while the
    /// others idle. Runs back to back for `duration` (at least once), cycling through
    /// `batches` (all of one size). Returns every run's time; spread, that is a lower bound
    /// of the job's, which waits for its slowest share and for the hand-off between
    /// threads.
    pub fn run_times(
        &mut self,
        batches: &[Batch],
        spread: usize,
        duration: Duration,
    ) -> Result<Vec<Duration>, EmbedError> {
        let Some(size) = batches.first().map(Batch::len).filter(|&n| n > 0) else {
            return Ok(Vec::new());
        };
        let shares = spread.min(self.sessions.len()).min(size).max(1);
        let per_share = size.div_ceil(shares);
        // Each session's share of every batch, cut before the clock starts.
        let parts: Vec<Vec<Batch>> = (0..shares)
            .map(|index| {
                batches
                    .iter()
                    .filter_map(|b| b.chunks(per_share).into_iter().nth(index))
                    .collect()
            })
            .collect();
        let deadline = Instant::now() + duration;
        let times = self.on_sessions(shares, |index, session| {
            let mut times = Vec::new();
            for part in parts[index].iter().cycle() {
                let started = Instant::now();
                session.run_batch(part)?;
                times.push(started.elapsed());
                if Instant::now() >= deadline {
                    break;
                }
            }
            Ok(times)
        })?;
        Ok(times.concat())
    }

    /// Runs `work` on the first `count` sessions at once, each on its own thread; their
    /// results in session order.
    fn on_sessions<T, F>(&mut self, count: usize, work: F) -> Result<Vec<T>, EmbedError>
    where
        T: Send,
        F: Fn(usize, &mut ModelSession) -> Result<T, EmbedError> + Sync,
    {
        let work = &work;
        std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .sessions
                .iter_mut()
                .take(count)
                .enumerate()
                .map(|(index, session)| scope.spawn(move || work(index, session)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(EmbedError::Inference("a benchmark thread panicked".into()))
                    })
                })
                .collect()
        })
    }
}

/// `callers` tasks each embed one image at a time, back to back.
async fn batched_images_per_second(
    embedder: &Embedder,
    image: &[f32],
    callers: usize,
    duration: Duration,
) -> Result<f64, EmbedError> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..callers {
        let embedder = embedder.clone();
        let image = image.to_vec();
        tasks.spawn(async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                embedder.embed(Prepared::Image(image.clone())).await?;
                done += 1;
            }
            Ok::<u64, EmbedError>(done)
        });
    }
    let mut images = 0u64;
    while let Some(joined) = tasks.join_next().await {
        images += joined
            .map_err(|e| EmbedError::Inference(format!("a benchmark caller failed: {e}")))??;
    }
    Ok(images as f64 / start.elapsed().as_secs_f64())
}

/// Deterministic stand-in for a preprocessed image (the work of a CNN does not depend on
/// pixel values).
fn pseudo_image(len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i.wrapping_mul(2_654_435_761) >> 7) % 1000) as f32 / 1000.0)
        .collect()
}
