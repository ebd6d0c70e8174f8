//! `twin bench ingest`: enqueue → stored throughput through the real broker with 1 and
//! 2 workers, beside the raw throughput of the same work done in-process (preprocess +
//! embed batches) on the same model in the same run. The ratio is the pipeline's cost.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use twin_core::config::{QueueConfig, WorkerConfig};
use twin_core::ids::sha256_hex;
use twin_core::job::EmbedJob;
use twin_embed::ModelRegistry;
use twin_queue::JobQueue;
use twin_store::{CollectionSpec, EmbeddedStore, PointFilter, VectorStore};

use twin_worker::{Worker, WorkerMetrics};

/// The raw baseline's chunk, in batches of `max_batch`: enough batches to keep every
/// session busy, few enough that a chunk's tensors stay small (8 × 2 images on CPU: 2 MB of
/// signature-v1 tensors; 8 × 32 on CUDA: 31 MB).
const RAW_CHUNK_BATCHES: usize = 8;

#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Jobs per run.
    pub jobs: usize,
    /// Worker counts to measure, e.g. [1, 2].
    pub workers: Vec<usize>,
    /// Broker and queue settings (the queue name gets a unique suffix per run).
    pub queue: QueueConfig,
    pub worker: WorkerConfig,
}

#[derive(Debug, Clone, Default)]
pub struct IngestReport {
    pub model: String,
    pub jobs: usize,
    /// Preprocess + embed in-process, images/s.
    pub raw_ips: f64,
    /// Embed only (preprocessed tensors), images/s.
    pub raw_embed_only_ips: f64,
    /// Publish with confirms, jobs/s, per worker count.
    pub enqueue_jps: Vec<(usize, f64)>,
    /// Enqueue-complete → all stored, images/s, per worker count.
    pub e2e_ips: Vec<(usize, f64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Setup(String),
}

fn setup<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> BenchError + '_ {
    move |e| BenchError::Setup(format!("{what}: {e}"))
}

impl IngestReport {
    pub fn ratio(&self) -> f64 {
        let best = self.e2e_ips.iter().map(|(_, ips)| *ips).fold(0.0, f64::max);
        if self.raw_ips > 0.0 {
            best / self.raw_ips
        } else {
            0.0
        }
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "ingest benchmark: model {}, {} jobs per run",
            self.model, self.jobs
        );
        let _ = writeln!(out, "{:<44} {:>12}", "path", "images/s");
        let _ = writeln!(
            out,
            "{:<44} {:>12.1}",
            "raw: preprocess + embed batches (baseline)", self.raw_ips
        );
        let _ = writeln!(
            out,
            "{:<44} {:>12.1}",
            "raw: embed only", self.raw_embed_only_ips
        );
        for ((workers, enqueue), (_, e2e)) in self.enqueue_jps.iter().zip(&self.e2e_ips) {
            let _ = writeln!(
                out,
                "{:<44} {:>12.1}",
                format!("enqueue with confirms ({workers} worker run)"),
                enqueue
            );
            let _ = writeln!(
                out,
                "{:<44} {:>12.1}",
                format!("broker -> {workers} worker(s) -> stored"),
                e2e
            );
        }
        let _ = writeln!(out, "ratio (best end-to-end / raw): {:.2}", self.ratio());
        out
    }

    pub fn json_line(&self) -> String {
        let mut fields = serde_json::Map::new();
        fields.insert("bench".into(), "ingest".into());
        fields.insert("model".into(), self.model.clone().into());
        fields.insert("jobs".into(), self.jobs.into());
        fields.insert("raw_ips".into(), round(self.raw_ips).into());
        fields.insert(
            "raw_embed_only_ips".into(),
            round(self.raw_embed_only_ips).into(),
        );
        for (workers, ips) in &self.e2e_ips {
            fields.insert(format!("e2e_ips_{workers}w"), round(*ips).into());
        }
        for (workers, jps) in &self.enqueue_jps {
            fields.insert(format!("enqueue_jps_{workers}w"), round(*jps).into());
        }
        fields.insert("ratio".into(), round(self.ratio()).into());
        serde_json::Value::Object(fields).to_string()
    }
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Runs the benchmark on the registry's default model with `images` (encoded).
pub async fn run_ingest_bench(
    models: ModelRegistry,
    images: Vec<Vec<u8>>,
    options: IngestOptions,
) -> Result<IngestReport, BenchError> {
    let model = models.default_model().clone();
    let mut report = IngestReport {
        model: model.manifest().name.clone(),
        jobs: options.jobs,
        ..Default::default()
    };
    let sample: Vec<Vec<u8>> = (0..options.jobs)
        .map(|i| images[i % images.len()].clone())
        .collect();

    // Baseline: the same work in-process, the same parallel preprocessing as a worker,
    // a chunk at a time: holding every tensor at once (10,000 images: 1.2 GB) made the
    // baseline depend on the job count through page faults, not on the work.
    let embedder = model.clone();
    let (raw_ips, raw_embed_only_ips) = tokio::task::spawn_blocking(move || {
        let chunk = RAW_CHUNK_BATCHES * embedder.max_batch();
        let (mut embedded, mut embed_only) = (0usize, Duration::ZERO);
        let started = Instant::now();
        for images in sample.chunks(chunk) {
            let tensors: Vec<twin_embed::Prepared> = embedder
                .preprocess_many(images)
                .into_iter()
                .filter_map(Result::ok)
                .map(twin_embed::Prepared::Image)
                .collect();
            let embed_started = Instant::now();
            embedded += embedder.embed_batch(&tensors).map(|v| v.len()).unwrap_or(0);
            embed_only += embed_started.elapsed();
        }
        let total = started.elapsed().as_secs_f64();
        (
            embedded as f64 / total,
            embedded as f64 / embed_only.as_secs_f64(),
        )
    })
    .await
    .map_err(setup("raw run"))?;
    report.raw_ips = raw_ips;
    report.raw_embed_only_ips = raw_embed_only_ips;

    for &workers in &options.workers {
        let dir = tempfile::tempdir().map_err(setup("temporary directory"))?;
        let store: Arc<dyn VectorStore> = Arc::new(
            EmbeddedStore::open(&dir.path().join("store"), 1_000_000)
                .await
                .map_err(setup("embedded store"))?,
        );
        let spec = CollectionSpec::for_model(model.manifest());
        store
            .ensure_collection(&spec)
            .await
            .map_err(setup("collection"))?;
        let mut queue_config = options.queue.clone();
        queue_config.queue = format!("{}.bench.{}", queue_config.queue, uuid_suffix());
        let queue = JobQueue::connect(&queue_config)
            .await
            .map_err(setup("broker"))?;

        let jobs: Vec<EmbedJob> = (0..options.jobs)
            .map(|i| {
                let image = images[i % images.len()].clone();
                EmbedJob {
                    job_id: twin_core::ids::new_job_id().to_string(),
                    subject_id: format!("bench-{i:07}"),
                    image_sha256: sha256_hex(&image),
                    image,
                    model_id: model.manifest().id.clone(),
                    enqueued_at_ms: twin_core::clock::now_ms(),
                    ..Default::default()
                }
            })
            .collect();
        let started = Instant::now();
        for chunk in jobs.chunks(500) {
            for result in queue.publish_many(chunk).await {
                result.map_err(setup("publish"))?;
            }
        }
        report.enqueue_jps.push((
            workers,
            options.jobs as f64 / started.elapsed().as_secs_f64(),
        ));

        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..workers {
            let worker = Worker::new(
                models.clone(),
                Arc::clone(&store),
                queue.clone(),
                options.worker.clone(),
                WorkerMetrics::new().map_err(setup("metrics"))?,
            );
            let mut rx = stop_rx.clone();
            tasks.push(tokio::spawn(worker.run(async move {
                let _ = rx.wait_for(|stop| *stop).await;
            })));
        }
        let deadline = Instant::now() + Duration::from_secs(1800);
        loop {
            let stored = store
                .count(&spec.name, &PointFilter::all())
                .await
                .unwrap_or(0);
            if stored as usize >= options.jobs || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        report.e2e_ips.push((
            workers,
            options.jobs as f64 / started.elapsed().as_secs_f64(),
        ));
        let _ = stop_tx.send(true);
        for task in tasks {
            let _ = task.await;
        }
        let _ = queue.delete().await;
        queue.close().await;
    }
    Ok(report)
}

fn uuid_suffix() -> String {
    twin_core::ids::new_job_id().simple().to_string()
}
