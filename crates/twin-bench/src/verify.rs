//! `twin bench verify`: `Verification.Verify` latency (p50/p99) and throughput (pairs/s)
//! under N concurrent gRPC clients, beside raw ONNX Runtime inference of the same model
//! in the same run: the time of one run of a batch of 2 (one pair), and pairs/s at a
//! batch of 64 (32 pairs per run). The ratios are what the gateway costs on top of the
//! model: decoding and preprocessing both images, gRPC, the micro-batcher, scoring.
//!
//! By default the benchmark starts a gateway itself (embedded store and in-process queue
//! in a temporary directory, an ephemeral port, its own async runtime); it can target a
//! running gateway instead, which must serve the same model (requests name it by id).
//! Phases run one after another, never together: preprocessing cost, raw inference,
//! then each concurrency level (a warm-up, then a fixed measured duration), then raw
//! inference again. The sequence runs `rounds` times and each figure keeps its best, as
//! `twin bench embed` does, so that other work on a shared machine does not land on one
//! side only.
//!
//! Every request carries a real pair of encoded images, cycled through a pool of distinct
//! pairs; nothing is cached between requests.
//!
//! The subject case (embedded target): `VerifySubject` at concurrency 1 against subjects
//! with 5 and 20 stored references, with the adapted aggregation (it also scores the
//! references among themselves) and an explicit threshold (so every reference is compared):
//! the heaviest subject decision, beside `Verify`'s p99 at concurrency 1 in the same round.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use twin_core::config::TwinConfig;
use twin_core::input::Input;
use twin_embed::{ActiveProvider, Batch, EmbedError, Embedder, PoolSize, Prepared};
use twin_proto::v1 as pb;
use twin_proto::v1::models_client::ModelsClient;
use twin_proto::v1::verification_client::VerificationClient;

use twin_gateway::state::StartError;
use twin_gateway::{AppState, BoundGateway, GatewayMetrics, ServeError};

use crate::embed::RawLane;

/// Largest gRPC message the benchmark's clients send or accept.
const MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;

/// What to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyBenchOptions {
    /// Concurrent clients, one level after another.
    pub concurrency: Vec<usize>,
    /// Measured seconds per concurrency level and per raw figure (after a warm-up).
    pub seconds: f64,
    /// Rounds of the whole sequence (raw figures, every level, raw figures again); each
    /// figure keeps its best, so that other work on a shared machine does not favour one
    /// side.
    pub rounds: usize,
    /// Sent as `authorization: Bearer <key>` (a targeted gateway with api keys).
    pub api_key: Option<String>,
    /// Reference counts of the subject case (embedded target only; empty: none).
    pub subject_references: Vec<usize>,
}

impl Default for VerifyBenchOptions {
    fn default() -> Self {
        Self {
            concurrency: vec![1, 8, 32, 64],
            seconds: 5.0,
            rounds: 3,
            api_key: None,
            subject_references: vec![5, 20],
        }
    }
}

/// `VerifySubject` at concurrency 1 against a subject with `references` references.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SubjectFigures {
    pub references: usize,
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Which gateway takes the load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyTarget {
    /// Start one in this process from the configuration (its models, embed and gateway
    /// sections apply), with the embedded store and in-process queue in a temporary
    /// directory, listening on an ephemeral port of 127.0.0.1.
    Embedded,
    /// A running gateway at this URL (http:// or https://).
    Remote(String),
}

/// One concurrency level.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LevelFigures {
    pub concurrency: usize,
    /// Successful requests in the measured durations (all rounds).
    pub requests: u64,
    /// Failed requests in the measured durations (all rounds).
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub pairs_per_s: f64,
    /// Images per ONNX run in the gateway (embedded target only).
    pub mean_batch: Option<f64>,
}

/// The benchmark's figures.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VerifyReport {
    pub model: String,
    /// "image" or "text".
    pub input_kind: String,
    pub model_trained: bool,
    pub provider: ActiveProvider,
    pub pool: PoolSize,
    pub max_batch: usize,
    pub max_wait_us: u64,
    pub express_linger_us: u64,
    /// "embedded (127.0.0.1:port)" or the targeted URL.
    pub target: String,
    pub pairs: usize,
    pub seconds: f64,
    pub rounds: usize,
    /// Median time to prepare one sample on one thread: decode and preprocess an image,
    /// or tokenize a text.
    pub preprocess_ms: f64,
    /// The baseline, the better of the raw shapes for each figure: median and 99th
    /// percentile of one raw run of a batch of 2 (one pair)...
    pub raw_b2: Latency,
    /// ...and raw pairs/s at a batch of 64 images (32 pairs per run).
    pub raw_b64_pairs_per_s: f64,
    /// Raw figures of each shape measured: the pool's, and one session with a thread
    /// per core when that differs.
    pub raw_shapes: Vec<RawFigures>,
    /// For reference, with two or more sessions: a pair spread over them as the express
    /// lane does (two runs of one image at once), median and 99th percentile.
    pub raw_split: Option<Latency>,
    pub levels: Vec<LevelFigures>,
    /// The subject case, one entry per reference count.
    pub subjects: Vec<SubjectFigures>,
    /// Verify at concurrency 1 with the audit trail not recording (embedded target with
    /// the trail on): what recording every decision costs.
    pub without_audit: Option<LevelFigures>,
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Setup(String),
    #[error("embedding: {0}")]
    Embed(#[from] EmbedError),
    #[error("starting the gateway: {0}")]
    Start(#[from] StartError),
    #[error("gateway: {0}")]
    Serve(#[from] ServeError),
    #[error("{what}: {status}")]
    Call {
        what: String,
        status: Box<tonic::Status>,
    },
}

fn setup<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> BenchError + '_ {
    move |e| BenchError::Setup(format!("{what}: {e}"))
}

impl VerifyReport {
    pub fn level(&self, concurrency: usize) -> Option<&LevelFigures> {
        self.levels.iter().find(|l| l.concurrency == concurrency)
    }

    /// Verify p99 at concurrency 1 / one raw run of a batch of 2 (target ≤ 2).
    pub fn ratio_p99_c1(&self) -> Option<f64> {
        ratio(self.level(1)?.p99_ms, self.raw_b2.median_ms)
    }

    /// Verify p99 at concurrency 1 / the raw batch of 2's own p99: tail against tail, for
    /// reference (the target compares against the typical run).
    pub fn ratio_p99_c1_to_raw_p99(&self) -> Option<f64> {
        ratio(self.level(1)?.p99_ms, self.raw_b2.p99_ms)
    }

    /// Verify p99 at concurrency 1 / a raw pair split over the sessions, for reference:
    /// the stricter comparison, against the express lane's own way without the gateway.
    pub fn ratio_p99_c1_to_split(&self) -> Option<f64> {
        ratio(self.level(1)?.p99_ms, self.raw_split?.median_ms)
    }

    /// VerifySubject p99 / Verify p99, both at concurrency 1 (target ≤ 1.5), per count.
    pub fn ratio_subject_p99(&self) -> Vec<(usize, f64)> {
        let Some(verify) = self.level(1) else {
            return Vec::new();
        };
        self.subjects
            .iter()
            .filter_map(|s| ratio(s.p99_ms, verify.p99_ms).map(|r| (s.references, r)))
            .collect()
    }

    /// Verify p99 at concurrency 1 with the audit trail / without it (target ≤ 1.1).
    pub fn ratio_audit_p99_c1(&self) -> Option<f64> {
        let without = self.without_audit.as_ref()?;
        ratio(self.level(1)?.p99_ms, without.p99_ms)
    }

    /// Verify pairs/s at concurrency 32 / raw pairs/s at a batch of 64 (target ≥ 0.8).
    pub fn ratio_c32(&self) -> Option<f64> {
        ratio(self.level(32)?.pairs_per_s, self.raw_b64_pairs_per_s)
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "verify benchmark: model {}{}, provider {} ({}), {} session(s) x {} intra-op \
             thread(s), max_batch {}, max_wait {} us, express linger {} us",
            self.model,
            if self.model_trained {
                ""
            } else {
                " (UNTRAINED)"
            },
            self.provider.name,
            self.provider.reason,
            self.pool.sessions,
            self.pool.intra_threads,
            self.max_batch,
            self.max_wait_us,
            self.express_linger_us,
        );
        let _ = writeln!(
            out,
            "gateway {}; {} distinct pairs of {}; {:.1} s measured per point after a warm-up; \
             {} round(s) of raw, every level, raw again; best of each figure",
            self.target,
            self.pairs,
            if self.input_kind == "text" {
                "texts"
            } else {
                "encoded images"
            },
            self.seconds,
            self.rounds
        );
        for raw in &self.raw_shapes {
            let _ = writeln!(
                out,
                "raw inference (preprocessed tensors) on {} session(s) x {} thread(s): one run of \
                 a batch of 2 median {:.2} ms (p99 {:.2} ms); batch of 64 on every session {:.1} \
                 pairs/s",
                raw.shape.sessions,
                raw.shape.intra_threads,
                raw.b2.median_ms,
                raw.b2.p99_ms,
                raw.b64_pairs_per_s,
            );
        }
        if let Some(Latency {
            median_ms: split,
            p99_ms: p99,
        }) = self.raw_split
        {
            let _ = writeln!(
                out,
                "raw pair split over the pool's sessions (one image each, at once, as the \
                 express lane runs it): median {split:.2} ms (p99 {p99:.2} ms)"
            );
        }
        let _ = writeln!(
            out,
            "baseline, the better shape for each: batch of 2 median {:.2} ms (p99 {:.2} ms); \
             batch of 64 {:.1} pairs/s ({:.1} images/s)",
            self.raw_b2.median_ms,
            self.raw_b2.p99_ms,
            self.raw_b64_pairs_per_s,
            self.raw_b64_pairs_per_s * 2.0
        );
        let prepare = if self.input_kind == "text" {
            "tokenize one text (one thread)"
        } else {
            "preprocess one image (decode, threshold, crop, resize; one thread)"
        };
        let _ = writeln!(out, "{prepare}: median {:.2} ms", self.preprocess_ms);
        let _ = writeln!(
            out,
            "{:>11} | {:>8} | {:>6} | {:>8} | {:>8} | {:>9} | {:>10}",
            "concurrency", "requests", "errors", "p50 ms", "p99 ms", "pairs/s", "mean batch"
        );
        let _ = writeln!(out, "{}", "-".repeat(80));
        for l in &self.levels {
            let mean_batch = l
                .mean_batch
                .map_or_else(|| "-".to_owned(), |b| format!("{b:.1}"));
            let _ = writeln!(
                out,
                "{:>11} | {:>8} | {:>6} | {:>8.2} | {:>8.2} | {:>9.1} | {:>10}",
                l.concurrency, l.requests, l.errors, l.p50_ms, l.p99_ms, l.pairs_per_s, mean_batch
            );
        }
        if let Some(r) = self.ratio_p99_c1() {
            let _ = writeln!(
                out,
                "Verify p99 at concurrency 1 / raw batch-of-2 run: {r:.2} (target <= 2): {}",
                verdict(r <= 2.0)
            );
        }
        if let Some(r) = self.ratio_p99_c1_to_raw_p99() {
            let _ = writeln!(
                out,
                "  for reference, tail against tail: Verify p99 at concurrency 1 / raw batch-of-2 \
                 p99: {r:.2}"
            );
        }
        if let Some(r) = self.ratio_p99_c1_to_split() {
            let _ = writeln!(
                out,
                "  for reference, stricter: Verify p99 at concurrency 1 / raw pair split over the \
                 sessions: {r:.2}"
            );
        }
        if let Some(r) = self.ratio_c32() {
            let _ = writeln!(
                out,
                "Verify pairs/s at concurrency 32 / raw pairs/s at batch 64: {r:.2} (target >= \
                 0.8): {}",
                verdict(r >= 0.8)
            );
        }
        if let (Some(without), Some(r)) = (&self.without_audit, self.ratio_audit_p99_c1()) {
            let _ = writeln!(
                out,
                "Verify p99 at concurrency 1 with the audit trail / without it ({:.2} ms): \
                 {r:.2} (target <= 1.1): {}",
                without.p99_ms,
                verdict(r <= 1.1)
            );
        }
        for s in &self.subjects {
            let _ = writeln!(
                out,
                "VerifySubject, {} references (adapted, every reference compared), concurrency 1: \
                 {} requests, {} errors, p50 {:.2} ms, p99 {:.2} ms",
                s.references, s.requests, s.errors, s.p50_ms, s.p99_ms
            );
        }
        for (references, r) in self.ratio_subject_p99() {
            let _ = writeln!(
                out,
                "VerifySubject p99 ({references} references) / Verify p99, concurrency 1: {r:.2} \
                 (target <= 1.5): {}",
                verdict(r <= 1.5)
            );
        }
        out
    }

    /// The one JSON line every twin benchmark ends with.
    pub fn json_line(&self) -> String {
        let mut fields =
            crate::embed::json_fields("verify", &self.model, &self.provider, &self.pool);
        fields.insert("target".into(), self.target.clone().into());
        fields.insert("input_kind".into(), self.input_kind.clone().into());
        fields.insert("seconds".into(), self.seconds.into());
        fields.insert("rounds".into(), self.rounds.into());
        fields.insert("preprocess_ms".into(), round3(self.preprocess_ms).into());
        fields.insert("raw_b2_ms".into(), round3(self.raw_b2.median_ms).into());
        fields.insert("raw_b2_p99_ms".into(), round3(self.raw_b2.p99_ms).into());
        fields.insert(
            "raw_b64_pairs_per_s".into(),
            round1(self.raw_b64_pairs_per_s).into(),
        );
        for raw in &self.raw_shapes {
            let shape = format!("{}x{}", raw.shape.sessions, raw.shape.intra_threads);
            fields.insert(
                format!("raw_{shape}_b2_ms"),
                round3(raw.b2.median_ms).into(),
            );
            fields.insert(
                format!("raw_{shape}_b64_pairs_per_s"),
                round1(raw.b64_pairs_per_s).into(),
            );
        }
        for l in &self.levels {
            let c = l.concurrency;
            fields.insert(format!("p50_ms_c{c}"), round3(l.p50_ms).into());
            fields.insert(format!("p99_ms_c{c}"), round3(l.p99_ms).into());
            fields.insert(format!("pairs_per_s_c{c}"), round1(l.pairs_per_s).into());
            fields.insert(format!("errors_c{c}"), l.errors.into());
            if let Some(b) = l.mean_batch {
                fields.insert(format!("mean_batch_c{c}"), round1(b).into());
            }
        }
        if let Some(r) = self.ratio_p99_c1() {
            fields.insert("ratio_p99_c1".into(), round3(r).into());
        }
        if let Some(r) = self.ratio_p99_c1_to_raw_p99() {
            fields.insert("ratio_p99_c1_to_raw_p99".into(), round3(r).into());
        }
        if let Some(split) = self.raw_split {
            fields.insert("raw_split_ms".into(), round3(split.median_ms).into());
        }
        if let Some(r) = self.ratio_p99_c1_to_split() {
            fields.insert("ratio_p99_c1_to_split".into(), round3(r).into());
        }
        if let Some(r) = self.ratio_c32() {
            fields.insert("ratio_c32".into(), round3(r).into());
        }
        for s in &self.subjects {
            let n = s.references;
            fields.insert(format!("subject_p50_ms_r{n}"), round3(s.p50_ms).into());
            fields.insert(format!("subject_p99_ms_r{n}"), round3(s.p99_ms).into());
            fields.insert(format!("subject_errors_r{n}"), s.errors.into());
        }
        for (n, r) in self.ratio_subject_p99() {
            fields.insert(format!("ratio_subject_p99_r{n}"), round3(r).into());
        }
        if let Some(without) = &self.without_audit {
            fields.insert(
                "p99_ms_c1_without_audit".into(),
                round3(without.p99_ms).into(),
            );
        }
        if let Some(r) = self.ratio_audit_p99_c1() {
            fields.insert("ratio_audit_p99_c1".into(), round3(r).into());
        }
        serde_json::Value::Object(fields).to_string()
    }
}

fn verdict(pass: bool) -> &'static str {
    if pass {
        "PASS"
    } else {
        "FAIL"
    }
}

fn ratio(numerator: f64, denominator: f64) -> Option<f64> {
    (denominator > 0.0).then(|| numerator / denominator)
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The value at quantile `q` (nearest rank) of sorted durations, in milliseconds.
fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

/// A gateway started by the benchmark, on its own runtime, and how to stop it.
struct EmbeddedGateway {
    runtime: tokio::runtime::Runtime,
    state: AppState,
    feed: twin_queue::StatusFeed,
    stop: tokio::sync::oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<Result<(), ServeError>>,
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl EmbeddedGateway {
    fn start(config: &TwinConfig) -> Result<Self, BenchError> {
        let dir = tempfile::tempdir().map_err(setup("temporary directory"))?;
        let mut config = config.clone();
        config.use_embedded(dir.path());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("twin-bench-gateway")
            .build()
            .map_err(setup("the gateway's runtime"))?;
        let (state, feed) = runtime.block_on(AppState::open(&config))?;
        let bound = runtime.block_on(BoundGateway::bind("127.0.0.1:0"))?;
        let addr = bound.addr;
        let metrics = GatewayMetrics::new().map_err(setup("metrics registry"))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let gateway = config.gateway.clone();
        let served = state.clone();
        let serving = runtime.spawn(async move {
            bound
                .serve(served, &gateway, metrics, async move {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(Self {
            runtime,
            state,
            feed,
            stop,
            serving,
            addr,
            _dir: dir,
        })
    }

    /// Stores `count` references of the subject case straight into the gateway's store
    /// (no worker runs here), embedded from the pool's images.
    fn store_references(
        &self,
        embedder: &Embedder,
        count: usize,
        pairs: &[(Input, Input)],
    ) -> Result<(), BenchError> {
        let model = self.state.models.default_model().clone();
        let collection = AppState::collection(&model).name;
        let subject = bench_subject(count);
        let points = self.runtime.block_on(async {
            let mut points = Vec::with_capacity(count);
            for i in 0..count {
                let (sample, _) = &pairs[i % pairs.len()];
                let vector = embedder.embed_input(sample.clone()).await?;
                points.push(twin_store::Point::new(
                    vector,
                    twin_store::PointPayload {
                        subject_id: subject.clone(),
                        // Distinct per reference even when the pool has fewer images.
                        image_sha256: twin_core::ids::sha256_hex(
                            format!("{subject}-{i}").as_bytes(),
                        ),
                        model_id: embedder.manifest().id.clone(),
                        source: format!("bench-reference-{i}"),
                        ..twin_store::PointPayload::default()
                    },
                ));
            }
            Ok::<_, EmbedError>(points)
        })?;
        self.runtime
            .block_on(self.state.store.upsert(&collection, &points))
            .map_err(setup("storing the subject case's references"))
    }

    fn stop(self) -> Result<(), BenchError> {
        let _ = self.stop.send(());
        let served = self.runtime.block_on(self.serving);
        self.runtime.block_on(async {
            self.feed.stop().await;
            self.state.queue.close().await;
        });
        served.map_err(setup("the gateway task"))??;
        Ok(())
    }
}

/// Runs the benchmark with `pairs` (encoded images) on the model `config.models`
/// names first. Creates its own runtimes: call it from synchronous code.
pub fn run_verify_bench(
    config: &TwinConfig,
    target: &VerifyTarget,
    pairs: &[(Input, Input)],
    options: &VerifyBenchOptions,
) -> Result<VerifyReport, BenchError> {
    if pairs.is_empty() {
        return Err(BenchError::Setup("no pairs to send".into()));
    }
    let seconds = Duration::from_secs_f64(options.seconds.max(0.1));
    let warmup = Duration::from_secs_f64((options.seconds / 5.0).clamp(0.2, 2.0));

    let gateway = match target {
        VerifyTarget::Embedded => Some(EmbeddedGateway::start(config)?),
        VerifyTarget::Remote(_) => None,
    };
    // The raw lane runs the gateway's own model when the gateway is here, else the same
    // model directory loaded locally.
    let embedder = match &gateway {
        Some(g) => g.state.models.default_model().clone(),
        None => load_local(config)?,
    };
    let (addr, target_name) = match (&gateway, target) {
        (Some(g), _) => (
            format!("http://{}", g.addr),
            format!("embedded ({})", g.addr),
        ),
        (None, VerifyTarget::Remote(url)) => (url.clone(), url.clone()),
        (None, VerifyTarget::Embedded) => {
            return Err(BenchError::Setup("no gateway to measure".into()))
        }
    };
    let tensors = pairs
        .iter()
        .map(|(a, b)| Ok((embedder.prepare(a)?, embedder.prepare(b)?)))
        .collect::<Result<Vec<_>, twin_core::preprocess::PreprocessError>>()
        .map_err(EmbedError::Preprocess)?;
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("twin-bench-client")
        .build()
        .map_err(setup("the clients' runtime"))?;
    let max_clients = options.concurrency.iter().copied().max().unwrap_or(1);
    let load = clients.block_on(LoadGenerator::connect(
        &addr,
        &embedder,
        pairs,
        options.api_key.as_deref(),
        max_clients,
    ))?;
    // The embedder's counters are the gateway's only when it runs in this process.
    let counters = gateway.as_ref().map(|_| &embedder);
    // The subject case needs the references stored: only where the store is ours.
    let subject_counts: Vec<usize> = match &gateway {
        Some(g) => {
            for &count in &options.subject_references {
                g.store_references(&embedder, count, pairs)?;
            }
            options.subject_references.clone()
        }
        None => Vec::new(),
    };
    let load = load.with_subjects(&embedder, pairs, &subject_counts);

    // Rounds of: preprocessing and raw inference alone, the load level after level,
    // then the raw figures again. Each figure keeps its best, so that a burst of other
    // work on a shared machine does not land on one side only (the raw side gets two
    // chances per round: if anything, that favours the baseline).
    let mut preprocess_ms = f64::INFINITY;
    let mut raw_shapes: Vec<RawFigures> = Vec::new();
    let mut raw_split: Option<Latency> = None;
    let mut raw_phase = |round: usize| -> Result<(), BenchError> {
        preprocess_ms = preprocess_ms.min(median_preprocess_ms(
            &embedder,
            pairs,
            seconds.min(Duration::from_secs(2)),
        )?);
        let (shapes, split) = measure_raw(&embedder, &tensors, warmup, seconds)?;
        if let Some(split) = split {
            raw_split = Some(raw_split.map_or(split, |best| best.best(split)));
        }
        for measured in shapes {
            tracing::info!(
                round,
                preprocess_ms,
                sessions = measured.shape.sessions,
                intra_threads = measured.shape.intra_threads,
                raw_b2_ms = measured.b2.median_ms,
                raw_b64_pairs_per_s = measured.b64_pairs_per_s,
                "verify bench raw figures"
            );
            match raw_shapes.iter_mut().find(|r| r.shape == measured.shape) {
                Some(best) => best.keep_best(&measured),
                None => raw_shapes.push(measured),
            }
        }
        Ok(())
    };
    let mut levels: Vec<LevelFigures> = Vec::new();
    let mut subjects: Vec<SubjectFigures> = Vec::new();
    let mut without_audit: Option<LevelFigures> = None;
    // The trail the gateway records into, when it runs here with one.
    let trail = gateway.as_ref().and_then(|g| g.state.audit.clone());
    for round in 1..=options.rounds.max(1) {
        raw_phase(round)?;
        if let Some(trail) = trail.as_ref().filter(|_| options.concurrency.contains(&1)) {
            trail.set_recording(false);
            let figures = clients.block_on(load.level(1, counters, warmup, seconds));
            trail.set_recording(true);
            let figures = figures?;
            match without_audit.as_mut() {
                Some(best) => best.merge(figures),
                None => without_audit = Some(figures),
            }
        }
        for &references in &subject_counts {
            let figures = clients.block_on(load.subject_level(references, warmup, seconds))?;
            tracing::info!(
                round,
                references,
                p50_ms = figures.p50_ms,
                p99_ms = figures.p99_ms,
                errors = figures.errors,
                "verify bench subject case"
            );
            match subjects.iter_mut().find(|s| s.references == references) {
                Some(best) => {
                    best.requests += figures.requests;
                    best.errors += figures.errors;
                    best.p50_ms = best.p50_ms.min(figures.p50_ms);
                    best.p99_ms = best.p99_ms.min(figures.p99_ms);
                }
                None => subjects.push(figures),
            }
        }
        for &concurrency in &options.concurrency {
            let figures =
                clients.block_on(load.level(concurrency.max(1), counters, warmup, seconds))?;
            tracing::info!(
                round,
                concurrency = figures.concurrency,
                requests = figures.requests,
                errors = figures.errors,
                p50_ms = figures.p50_ms,
                p99_ms = figures.p99_ms,
                pairs_per_s = figures.pairs_per_s,
                "verify bench level"
            );
            match levels
                .iter_mut()
                .find(|l| l.concurrency == figures.concurrency)
            {
                Some(best) => best.merge(figures),
                None => levels.push(figures),
            }
        }
        raw_phase(round)?;
    }
    drop(load);
    drop(clients);
    if let Some(gateway) = gateway {
        gateway.stop()?;
    }
    let raw_b2 = raw_shapes
        .iter()
        .map(|r| r.b2)
        .reduce(Latency::best)
        .ok_or_else(|| BenchError::Setup("no round was measured".into()))?;
    let raw_b64_pairs_per_s = raw_shapes
        .iter()
        .map(|r| r.b64_pairs_per_s)
        .fold(0.0, f64::max);

    Ok(VerifyReport {
        model: embedder.manifest().name.clone(),
        input_kind: embedder.input_kind().name().to_owned(),
        model_trained: embedder.manifest().trained,
        provider: embedder.provider().clone(),
        pool: embedder.pool(),
        max_batch: embedder.max_batch(),
        max_wait_us: embedder.config().max_wait_us,
        express_linger_us: embedder.config().express_linger_us,
        target: target_name,
        pairs: pairs.len(),
        seconds: options.seconds,
        rounds: options.rounds.max(1),
        preprocess_ms,
        raw_b2,
        raw_b64_pairs_per_s,
        raw_shapes,
        raw_split,
        levels,
        subjects,
        without_audit,
    })
}

/// The subject of the subject case with `count` references.
fn bench_subject(count: usize) -> String {
    format!("bench-subject-{count}")
}

impl LevelFigures {
    /// Keeps the best of two rounds figure by figure; counts add up.
    fn merge(&mut self, other: LevelFigures) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.p50_ms = self.p50_ms.min(other.p50_ms);
        self.p99_ms = self.p99_ms.min(other.p99_ms);
        if other.pairs_per_s > self.pairs_per_s {
            self.pairs_per_s = other.pairs_per_s;
            self.mean_batch = other.mean_batch;
        }
    }
}

fn load_local(config: &TwinConfig) -> Result<Embedder, BenchError> {
    let dir = config
        .models
        .dirs
        .first()
        .ok_or_else(|| BenchError::Setup("no model directory configured".into()))?;
    Ok(Embedder::load(dir, &config.embed)?)
}

/// Median time of one image's preprocessing on this thread, over the pool, for about
/// `duration`.
fn median_preprocess_ms(
    embedder: &Embedder,
    pairs: &[(Input, Input)],
    duration: Duration,
) -> Result<f64, BenchError> {
    let deadline = Instant::now() + duration;
    let mut times = Vec::new();
    for (a, _) in pairs.iter().cycle() {
        let started = Instant::now();
        embedder.prepare(a).map_err(EmbedError::Preprocess)?;
        times.push(started.elapsed());
        if Instant::now() >= deadline {
            break;
        }
    }
    times.sort_unstable();
    Ok(quantile_ms(&times, 0.5))
}

/// Raw inference figures of one shape of sessions.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RawFigures {
    pub shape: PoolSize,
    /// One run of a batch of 2.
    pub b2: Latency,
    /// Pairs/s with every session running batches of 64 images.
    pub b64_pairs_per_s: f64,
}

impl RawFigures {
    /// Keeps the better of each figure over rounds.
    fn keep_best(&mut self, other: &RawFigures) {
        self.b2 = self.b2.best(other.b2);
        self.b64_pairs_per_s = self.b64_pairs_per_s.max(other.b64_pairs_per_s);
    }
}

/// Median and 99th percentile of a latency, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Latency {
    pub median_ms: f64,
    pub p99_ms: f64,
}

impl Latency {
    /// The better (lower) of each figure.
    fn best(self, other: Latency) -> Latency {
        Latency {
            median_ms: self.median_ms.min(other.median_ms),
            p99_ms: self.p99_ms.min(other.p99_ms),
        }
    }
}

/// One run of a pair (a batch of 2) and pairs/s at a batch of 64, on the pool's shape
/// and on one session with a thread per core; and, with two or more pool sessions, a pair
/// split over them (median, p99). Lanes are made for this round: their sessions and
/// threads are gone before the load starts.
fn measure_raw(
    embedder: &Embedder,
    tensors: &[(Prepared, Prepared)],
    warmup: Duration,
    duration: Duration,
) -> Result<(Vec<RawFigures>, Option<Latency>), BenchError> {
    let mut lanes = vec![RawLane::new(embedder)?];
    lanes.extend(RawLane::wide(embedder)?);
    // The very pairs the clients send: inference time depends on the pixels (some images
    // run up to 1.5x slower than others).
    let pairs: Vec<Batch> = tensors
        .iter()
        .map(|(a, b)| Batch::of(&[a.clone(), b.clone()]))
        .collect::<Result<_, _>>()?;
    let samples: Vec<Prepared> = tensors
        .iter()
        .cycle()
        .take(32)
        .flat_map(|(a, b)| [a.clone(), b.clone()])
        .collect();
    let batch = Batch::of(&samples)?;
    let mut figures = Vec::with_capacity(lanes.len());
    let mut split = None;
    for lane in &mut lanes {
        let b2 = pair_times(lane, &pairs, 1, warmup, duration)?;
        if lane.shape().sessions > 1 && split.is_none() {
            split = Some(pair_times(lane, &pairs, 2, warmup, duration)?);
        }
        lane.images_per_second(&batch, warmup)?;
        let images_per_s = lane.images_per_second(&batch, duration)?;
        figures.push(RawFigures {
            shape: lane.shape(),
            b2,
            b64_pairs_per_s: images_per_s / 2.0,
        });
    }
    Ok((figures, split))
}

/// Median and p99 of a pair's inference spread over `spread` sessions, after a warm-up.
fn pair_times(
    lane: &mut RawLane,
    pairs: &[Batch],
    spread: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<Latency, BenchError> {
    lane.run_times(pairs, spread, warmup)?;
    let mut times = lane.run_times(pairs, spread, duration)?;
    times.sort_unstable();
    Ok(Latency {
        median_ms: quantile_ms(&times, 0.5),
        p99_ms: quantile_ms(&times, 0.99),
    })
}

/// The request message of a sample.
fn message(sample: &Input, source: String) -> pb::Image {
    match sample {
        Input::Image(bytes) => pb::Image::from_bytes(bytes.clone(), source),
        Input::Text(text) => pb::Image::from_text(text.clone(), source),
    }
}

/// What one client task saw.
#[derive(Default)]
struct ClientTally {
    latencies: Vec<Duration>,
    errors: u64,
    first_error: Option<tonic::Status>,
}

async fn connect(addr: &str) -> Result<Channel, BenchError> {
    Endpoint::from_shared(addr.to_owned())
        .map_err(setup("invalid gateway address"))?
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(|e| BenchError::Setup(format!("cannot connect to the gateway at {addr}: {e}")))
}

/// Clients, one connection each, and the requests they cycle through.
struct LoadGenerator {
    channels: Vec<Channel>,
    requests: Arc<[pb::VerifyRequest]>,
    /// The subject case's requests per reference count.
    subject_requests: Vec<(usize, Arc<[pb::VerifySubjectRequest]>)>,
    authorization: Option<MetadataValue<Ascii>>,
}

impl LoadGenerator {
    /// Connects `max concurrency` clients to `addr` and checks that the gateway serves
    /// the embedder's very model (requests name it by id).
    async fn connect(
        addr: &str,
        embedder: &Embedder,
        pairs: &[(Input, Input)],
        api_key: Option<&str>,
        max_clients: usize,
    ) -> Result<Self, BenchError> {
        let authorization = match api_key.filter(|k| !k.is_empty()) {
            Some(key) => Some(
                MetadataValue::<Ascii>::try_from(format!("Bearer {key}"))
                    .map_err(setup("invalid api key"))?,
            ),
            None => None,
        };
        let model_id = embedder.manifest().id.clone();
        let mut models = ModelsClient::new(connect(addr).await?);
        let mut request = tonic::Request::new(pb::GetModelRequest {
            model: model_id.clone(),
        });
        if let Some(value) = &authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        models
            .get_model(request)
            .await
            .map_err(|status| BenchError::Call {
                what: format!(
                    "the gateway at {addr} does not serve model {} ({model_id})",
                    embedder.manifest().name
                ),
                status: Box::new(status),
            })?;
        let requests: Arc<[pb::VerifyRequest]> = pairs
            .iter()
            .enumerate()
            .map(|(i, (a, b))| pb::VerifyRequest {
                a: Some(message(a, format!("bench-pair-{i}-a"))),
                b: Some(message(b, format!("bench-pair-{i}-b"))),
                model: model_id.clone(),
                ..Default::default()
            })
            .collect();
        let mut channels = Vec::with_capacity(max_clients);
        for _ in 0..max_clients.max(1) {
            channels.push(connect(addr).await?);
        }
        Ok(Self {
            channels,
            requests,
            subject_requests: Vec::new(),
            authorization,
        })
    }

    /// Adds the subject case's requests: each pair's second image as the probe.
    fn with_subjects(
        mut self,
        embedder: &Embedder,
        pairs: &[(Input, Input)],
        counts: &[usize],
    ) -> Self {
        let model_id = embedder.manifest().id.clone();
        for &count in counts {
            let requests: Arc<[pb::VerifySubjectRequest]> = pairs
                .iter()
                .enumerate()
                .map(|(i, (_, probe))| pb::VerifySubjectRequest {
                    subject_id: bench_subject(count),
                    probe: Some(message(probe, format!("bench-probe-{i}"))),
                    model: model_id.clone(),
                    aggregation: pb::Aggregation::Adapted as i32,
                    policy: Some(pb::DecisionPolicy {
                        threshold: Some(pb::decision_policy::Threshold::ExplicitThreshold(0.0)),
                    }),
                    ..Default::default()
                })
                .collect();
            self.subject_requests.push((count, requests));
        }
        self
    }

    /// The subject case with `references` references: one client, a warm-up, then the
    /// measured `duration`.
    async fn subject_level(
        &self,
        references: usize,
        warmup: Duration,
        duration: Duration,
    ) -> Result<SubjectFigures, BenchError> {
        let requests = self
            .subject_requests
            .iter()
            .find(|(count, _)| *count == references)
            .map(|(_, r)| Arc::clone(r))
            .ok_or_else(|| BenchError::Setup(format!("no subject with {references} references")))?;
        let channel = self
            .channels
            .first()
            .cloned()
            .ok_or_else(|| BenchError::Setup("no client connection".into()))?;
        let mut client = VerificationClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let mut latencies = Vec::new();
        let mut errors = 0u64;
        let mut first_error = None;
        let mut next = 0usize;
        for (phase, length) in [(false, warmup), (true, duration)] {
            let deadline = Instant::now() + length;
            while Instant::now() < deadline {
                let mut request = tonic::Request::new(requests[next % requests.len()].clone());
                next += 1;
                if let Some(value) = &self.authorization {
                    request
                        .metadata_mut()
                        .insert("authorization", value.clone());
                }
                request.set_timeout(Duration::from_secs(60));
                let sent = Instant::now();
                match client.verify_subject(request).await {
                    Ok(answer) if answer.get_ref().references as usize == references => {
                        if phase {
                            latencies.push(sent.elapsed());
                        }
                    }
                    Ok(answer) => {
                        return Err(BenchError::Setup(format!(
                            "VerifySubject compared {} references, not the {references} stored",
                            answer.get_ref().references
                        )))
                    }
                    Err(status) => {
                        errors += u64::from(phase);
                        first_error.get_or_insert(status);
                    }
                }
            }
        }
        if latencies.is_empty() {
            return Err(BenchError::Call {
                what: format!("every VerifySubject with {references} references failed"),
                status: Box::new(
                    first_error.unwrap_or_else(|| tonic::Status::unknown("no request finished")),
                ),
            });
        }
        latencies.sort_unstable();
        Ok(SubjectFigures {
            references,
            requests: latencies.len() as u64,
            errors,
            p50_ms: quantile_ms(&latencies, 0.5),
            p99_ms: quantile_ms(&latencies, 0.99),
        })
    }

    /// One level: `concurrency` clients send Verify back to back, a warm-up, then the
    /// measured `duration`. `counters`: the gateway's embedder when it runs here.
    async fn level(
        &self,
        concurrency: usize,
        counters: Option<&Embedder>,
        warmup: Duration,
        duration: Duration,
    ) -> Result<LevelFigures, BenchError> {
        self.run_clients(concurrency, warmup).await?;
        let before = counters.map(Embedder::stats);
        let (tallies, elapsed) = self.run_clients(concurrency, duration).await?;
        let after = counters.map(Embedder::stats);
        let mut latencies: Vec<Duration> = Vec::new();
        let mut errors = 0;
        let mut first_error = None;
        for tally in tallies {
            latencies.extend(tally.latencies);
            errors += tally.errors;
            first_error = first_error.or(tally.first_error);
        }
        if latencies.is_empty() {
            return Err(BenchError::Call {
                what: format!("every Verify at concurrency {concurrency} failed"),
                status: Box::new(
                    first_error.unwrap_or_else(|| tonic::Status::unknown("no request finished")),
                ),
            });
        }
        if let Some(status) = &first_error {
            tracing::warn!(concurrency, errors, code = ?status.code(), message = status.message(), "some Verify calls failed");
        }
        latencies.sort_unstable();
        let mean_batch = match (before, after) {
            (Some(before), Some(after)) if after.batches > before.batches => Some(
                after.images.saturating_sub(before.images) as f64
                    / (after.batches - before.batches) as f64,
            ),
            _ => None,
        };
        Ok(LevelFigures {
            concurrency,
            requests: latencies.len() as u64,
            errors,
            p50_ms: quantile_ms(&latencies, 0.5),
            p99_ms: quantile_ms(&latencies, 0.99),
            pairs_per_s: latencies.len() as f64 / elapsed.as_secs_f64(),
            mean_batch,
        })
    }

    /// `concurrency` tasks, one per connection, send Verify back to back until
    /// `duration` has passed, each starting at a different pair. Returns the tallies and
    /// the wall time until the last in-flight call finished.
    async fn run_clients(
        &self,
        concurrency: usize,
        duration: Duration,
    ) -> Result<(Vec<ClientTally>, Duration), BenchError> {
        let started = Instant::now();
        let deadline = started + duration;
        let mut tasks = tokio::task::JoinSet::new();
        for (index, channel) in self.channels.iter().cycle().take(concurrency).enumerate() {
            let mut client = VerificationClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES);
            let requests = Arc::clone(&self.requests);
            let authorization = self.authorization.clone();
            tasks.spawn(async move {
                let mut tally = ClientTally::default();
                let mut next = index * 7;
                while Instant::now() < deadline {
                    let message = requests[next % requests.len()].clone();
                    next += 1;
                    let mut request = tonic::Request::new(message);
                    if let Some(value) = &authorization {
                        request
                            .metadata_mut()
                            .insert("authorization", value.clone());
                    }
                    request.set_timeout(Duration::from_secs(60));
                    let sent = Instant::now();
                    match client.verify(request).await {
                        Ok(_) => tally.latencies.push(sent.elapsed()),
                        Err(status) => {
                            tally.errors += 1;
                            tally.first_error.get_or_insert(status);
                        }
                    }
                }
                tally
            });
        }
        let mut tallies = Vec::with_capacity(concurrency);
        while let Some(joined) = tasks.join_next().await {
            tallies.push(joined.map_err(setup("a benchmark client"))?);
        }
        Ok((tallies, started.elapsed()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_nearest_rank() {
        let ms = |v: u64| Duration::from_millis(v);
        let sorted: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(quantile_ms(&sorted, 0.5), 50.0);
        assert_eq!(quantile_ms(&sorted, 0.99), 99.0);
        assert_eq!(quantile_ms(&sorted[..1], 0.99), 1.0);
        assert_eq!(quantile_ms(&[], 0.5), 0.0);
    }
}
